//! `trellis up`: starts the control plane, the pods and the ingress gateway, keeps them
//! running until asked to stop, then stops them and removes everything it created.
//!
//! Start order, per pod and all pods at once: network namespace and capture rules; the pod
//! registered with the control plane and a bootstrap token issued for its service account;
//! the sidecar, as uid 1337, until its admin endpoint says it has its configuration; then the
//! application's containers, until the ports they declare are listening. When an application
//! exits, its sidecar is drained and stopped and the pod shows `Exited`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch};
use trellis_control::ControlPlane;
use trellis_control::registry::Workload;

use crate::net::{self, Capture, Cidr, Names, PodNetwork};
use crate::plan::{self, Pod, PodRole, ServiceVip};
use crate::process;
use crate::state::{Mode, Phase, PodState, Recorded, State};
use crate::{Error, config_dir};

/// Where the control plane takes proxies' xDS streams and CSRs, on the bridge's address.
pub const XDS_PORT: u16 = 15010;
/// The ingress gateway's HTTP port inside its pod (Istio's gateway pods listen on 8080 behind
/// their Service's port 80), published on the host at [`Options::ingress`].
pub const GATEWAY_HTTP_PORT: u16 = 8080;
/// How long a pod's sidecar or application has to become ready.
const READY_DEADLINE: Duration = Duration::from_secs(20);
/// How long stopping processes may take before they are killed.
const STOP_DEADLINE: Duration = Duration::from_secs(4);
/// The sidecars' drain deadline on SIGTERM (below [`STOP_DEADLINE`]).
const PROXY_DRAIN: &str = "2s";
/// The control plane's log, in the logs directory (written by whoever runs [`up`]).
pub const CONTROL_LOG: &str = "control.log";
/// The sidecar's container name, in logs and `trellis logs -c`.
pub const PROXY_CONTAINER: &str = "istio-proxy";

/// How to run a mesh.
#[derive(Debug, Clone)]
pub struct Options {
    /// Files and directories of Services, Deployments and Istio resources.
    pub sources: Vec<PathBuf>,
    pub mode: Mode,
    pub names: Names,
    /// State, configuration and logs.
    pub run_dir: PathBuf,
    /// The pods' addresses; the first is the control plane's (the bridge's, with namespaces).
    /// On loopback the upper half of the range holds the applications' addresses.
    pub pod_cidr: Cidr,
    pub service_cidr: Cidr,
    /// Where the ingress gateway's port 8080 is published on the host.
    pub ingress: SocketAddr,
    /// Where the control plane's debug API listens (on the host).
    pub debug_listen: SocketAddr,
    /// Where `trellis-proxy` and pods' commands are looked for first (default: beside this
    /// executable).
    pub bin_dir: Option<PathBuf>,
    /// The sidecars' log filter.
    pub proxy_log_level: String,
}

/// Runs the mesh until `shutdown` turns true; `progress` hears each step. Whatever happens,
/// everything the mesh created is removed before this returns.
pub async fn up(
    options: Options,
    progress: &(dyn Fn(&str) + Sync),
    shutdown: watch::Receiver<bool>,
) -> Result<(), Error> {
    preflight(&options, progress)?;
    let plan = load(&options)?;
    let outcome = run(&options, plan, progress, shutdown).await;
    let cleaned = match options.mode {
        Mode::Namespaces => tokio::task::spawn_blocking({
            let names = options.names.clone();
            move || net::sweep(&names).map(drop)
        })
        .await
        .map_err(|e| Error::Other(format!("cleanup: {e}")))?,
        // Each pod's supervisor has stopped its processes; there is nothing else.
        Mode::Loopback => Ok(()),
    };
    let _ = std::fs::remove_file(State::file(&options.run_dir));
    outcome?;
    cleaned?;
    progress("stopped; nothing left behind");
    Ok(())
}

/// Root and the tools (with namespaces), the address ranges, and no mesh of that name
/// running; what a crashed run left behind is removed.
fn preflight(options: &Options, progress: &(dyn Fn(&str) + Sync)) -> Result<(), Error> {
    match options.mode {
        Mode::Namespaces => {
            if !process::is_root() {
                return Err(Error::Other(
                    "network namespaces and the iptables rules that capture pods' traffic need \
                     root (CAP_NET_ADMIN); run as root, or on loopback addresses without \
                     capture (trellis up --loopback)"
                        .to_owned(),
                ));
            }
            let missing = net::missing_tools();
            if !missing.is_empty() {
                return Err(Error::Other(format!(
                    "missing {}: install iproute2, iptables, util-linux and procps (apt-get install iproute2 iptables util-linux procps)",
                    missing.join(", ")
                )));
            }
        }
        Mode::Loopback => {
            let loopback: Cidr = "127.0.0.0/8".parse().expect("a network");
            if !(loopback.contains(options.pod_cidr.network) && options.pod_cidr.prefix >= 8)
                || options.pod_cidr.prefix > 24
            {
                return Err(Error::Other(format!(
                    "--pod-cidr {}: on loopback the pods' range is inside 127.0.0.0/8, a /24 or larger (such as 127.1.0.0/16)",
                    options.pod_cidr
                )));
            }
        }
    }
    if options.pod_cidr.overlaps(options.service_cidr) {
        return Err(Error::Other(format!(
            "--pod-cidr {} and --service-cidr {} overlap",
            options.pod_cidr, options.service_cidr
        )));
    }
    if let Some(state) = State::read(&options.run_dir)? {
        if state.is_live() {
            return Err(Error::Other(format!(
                "mesh {:?} is already running (trellis up, pid {}); stop it with `trellis down`",
                state.mesh, state.pid
            )));
        }
        let killed = state.kill_recorded();
        if killed > 0 {
            progress(&format!("stopped {killed} processes a previous run left"));
        }
    }
    if options.mode == Mode::Namespaces {
        let left = net::sweep(&options.names)?;
        if !left.is_empty() {
            progress(&format!("removed what a previous run left: {left}"));
        }
        for (flag, cidr) in [
            ("--pod-cidr", options.pod_cidr),
            ("--service-cidr", options.service_cidr),
        ] {
            if let Some(taken) = host_networks().into_iter().find(|n| n.overlaps(cidr)) {
                return Err(Error::Other(format!(
                    "{flag} {cidr} overlaps {taken}, a network of this machine; choose another range"
                )));
            }
        }
    }
    Ok(())
}

/// Where a pod's application listens: inside a namespace the sidecar reaches it on loopback;
/// on loopback, at the pod's address in the upper half of the range.
fn app_address(mode: Mode, cidr: Cidr, pod: Ipv4Addr) -> Ipv4Addr {
    match mode {
        Mode::Namespaces => Ipv4Addr::LOCALHOST,
        Mode::Loopback => Ipv4Addr::from(u32::from(pod) + (1 << (31 - u32::from(cidr.prefix)))),
    }
}

/// The IPv4 networks this machine's interfaces are on.
fn host_networks() -> Vec<Cidr> {
    net::run("ip", &["-o", "-4", "addr", "show"])
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            words.find(|w| *w == "inet")?;
            let (address, prefix) = words.next()?.split_once('/')?;
            let address: Ipv4Addr = address.parse().ok()?;
            let prefix: u8 = prefix.parse().ok()?;
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix))
            };
            Some(Cidr {
                network: Ipv4Addr::from(u32::from(address) & mask),
                prefix,
            })
        })
        .filter(|n| !n.network.is_loopback())
        .collect()
}

/// Reads the sources and plans the mesh; every problem is reported, with its file and field.
fn load(options: &Options) -> Result<plan::Plan, Error> {
    let loaded =
        trellis_api::fs::load_all(&options.sources, &Default::default()).map_err(Error::Config)?;
    let resources = trellis_api::latest_definitions(loaded.into_iter().map(|l| l.resource));
    plan::plan(resources, options.service_cidr).map_err(Error::Config)
}

/// The mesh while it runs: what `state.json` says, shared with the pods' supervisors.
#[derive(Debug, Clone)]
struct Shared {
    state: Arc<Mutex<State>>,
    run_dir: PathBuf,
}

impl Shared {
    fn set_running(&self, index: usize, processes: Vec<Recorded>) {
        self.state.lock().expect("state lock").pods[index].processes = processes;
        self.set_phase(index, Phase::Running);
    }

    fn set_phase(&self, index: usize, phase: Phase) {
        let mut state = self.state.lock().expect("state lock");
        state.pods[index].phase = phase;
        if let Err(error) = state.write(&self.run_dir) {
            tracing::warn!(%error, "cannot write the mesh's state");
        }
    }
}

/// What every pod's start needs.
#[derive(Debug)]
struct Context {
    mode: Mode,
    names: Names,
    plane: Arc<ControlPlane>,
    xds: SocketAddr,
    bridge: Ipv4Addr,
    pod_cidr: Cidr,
    services: Vec<ServiceVip>,
    proxy: PathBuf,
    bin_dir: Option<PathBuf>,
    logs: PathBuf,
    proxy_log_level: String,
}

async fn run(
    options: &Options,
    plan: plan::Plan,
    progress: &(dyn Fn(&str) + Sync),
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), Error> {
    let started = Instant::now();
    let (stop, stopping) = watch::channel(false);
    let proxy = process::find_program("trellis-proxy", options.bin_dir.as_deref()).ok_or_else(|| {
        Error::Other(
            "trellis-proxy not found beside trellis nor on PATH; build it (cargo build --release --bins)"
                .to_owned(),
        )
    })?;
    let mut pods = plan.pods.clone();
    pods.push(plan::gateway_pod());
    let mut addresses = options.pod_cidr.hosts();
    let bridge = addresses
        .next()
        .ok_or_else(|| Error::Other("--pod-cidr has no addresses".to_owned()))?;
    let room = match options.mode {
        Mode::Namespaces => usize::MAX,
        // The upper half holds the applications' addresses.
        Mode::Loopback => (1usize << (31 - u32::from(options.pod_cidr.prefix))) - 2,
    };
    let addresses: Vec<Ipv4Addr> = addresses.take(pods.len().min(room)).collect();
    if addresses.len() < pods.len() {
        return Err(Error::Other(format!(
            "--pod-cidr {} has room for {} pods, not {}",
            options.pod_cidr,
            addresses.len(),
            pods.len()
        )));
    }

    // The run directory: the control plane's configuration and CA, and every process's log.
    let config = options.run_dir.join("config");
    let logs = options.run_dir.join("logs");
    let _ = std::fs::remove_dir_all(&config);
    for dir in [&config, &logs] {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    // The previous run's logs go, but the control plane's own: it is already being written.
    for entry in std::fs::read_dir(&logs).into_iter().flatten().flatten() {
        if entry.file_name() != CONTROL_LOG {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    for resource in &plan.config {
        config_dir::write(&config, resource)?;
    }
    let ingress = TcpListener::bind(options.ingress)
        .await
        .map_err(|e| Error::io(format!("--ingress {}", options.ingress), e))?;
    let ingress_address = ingress
        .local_addr()
        .map_err(|e| Error::io("--ingress", e))?;

    if options.mode == Mode::Namespaces {
        let (names, cidr) = (options.names.clone(), options.pod_cidr);
        blocking(move || net::create_bridge(&names, bridge, cidr)).await?;
    }

    // The control plane, in this process: xDS and the CA on the bridge, where the pods reach
    // it; the debug API on the host only (it issues tokens).
    let (plane_stop, plane_stopped) = watch::channel(false);
    let control = trellis_control::Options {
        state_dir: Some(options.run_dir.join("control")),
        ..trellis_control::Options::new(config.clone())
    };
    let plane = ControlPlane::start(&control, plane_stopped.clone())
        .map_err(|e| Error::io("starting the control plane", e))?;
    let xds = SocketAddr::new(IpAddr::V4(bridge), XDS_PORT);
    let xds_listener = TcpListener::bind(xds)
        .await
        .map_err(|e| Error::io(format!("control plane xDS on {xds}"), e))?;
    let debug_listener = TcpListener::bind(options.debug_listen)
        .await
        .map_err(|e| Error::io(format!("--debug-listen {}", options.debug_listen), e))?;
    let debug = debug_listener
        .local_addr()
        .map_err(|e| Error::io("--debug-listen", e))?;
    let server = tokio::spawn(
        plane
            .clone()
            .serve(xds_listener, debug_listener, plane_stopped),
    );
    progress(&format!(
        "control plane: xDS and CA at {xds}, debug API at {debug} ({} resources)",
        plan.config.len()
    ));

    let state = State {
        mesh: options.names.mesh.clone(),
        mode: options.mode,
        pid: std::process::id(),
        config_dir: config.clone(),
        logs_dir: logs.clone(),
        pod_cidr: options.pod_cidr,
        service_cidr: options.service_cidr,
        xds,
        debug,
        ingress: ingress_address,
        services: plan.services.clone(),
        pods: pods
            .iter()
            .zip(&addresses)
            .map(|(pod, address)| PodState {
                name: pod.name.clone(),
                namespace: pod.namespace.clone(),
                workload: pod.workload.clone(),
                role: pod.role,
                labels: pod.labels.clone(),
                address: IpAddr::V4(*address),
                processes: Vec::new(),
                netns: options.names.netns(&pod.namespace, &pod.name),
                containers: containers_of(pod),
                phase: Phase::Starting,
            })
            .collect(),
    };
    state.write(&options.run_dir)?;
    let shared = Shared {
        state: Arc::new(Mutex::new(state)),
        run_dir: options.run_dir.clone(),
    };
    let context = Arc::new(Context {
        mode: options.mode,
        names: options.names.clone(),
        plane: plane.clone(),
        xds,
        bridge,
        pod_cidr: options.pod_cidr,
        services: plan.services.clone(),
        proxy,
        bin_dir: options.bin_dir.clone(),
        logs,
        proxy_log_level: options.proxy_log_level.clone(),
    });

    // Every pod at once; each reports when it runs.
    let mut starting = tokio::task::JoinSet::new();
    for (index, (pod, address)) in pods.iter().cloned().zip(addresses).enumerate() {
        let context = context.clone();
        starting.spawn(async move {
            let started = start_pod(&context, index, &pod, address).await;
            (index, pod, started)
        });
    }
    let mut supervisors = tokio::task::JoinSet::new();
    let mut failure = None;
    while let Some(joined) = starting.join_next().await {
        let (index, pod, started) = joined.map_err(|e| Error::Other(e.to_string()))?;
        match started {
            Ok(running) => {
                shared.set_running(index, running.recorded());
                progress(&format!(
                    "pod {}/{} running at {}",
                    pod.namespace, pod.name, running.address
                ));
                supervisors.spawn(supervise(running, index, shared.clone(), stopping.clone()));
            }
            Err(error) => {
                shared.set_phase(
                    index,
                    Phase::Failed {
                        reason: error.to_string(),
                    },
                );
                failure.get_or_insert(Error::Other(format!(
                    "pod {}/{}: {error}",
                    pod.namespace, pod.name
                )));
            }
        }
    }
    let outcome = match failure {
        Some(error) => Err(error),
        None => {
            let gateway = shared
                .state
                .lock()
                .expect("state lock")
                .pods
                .iter()
                .find(|p| p.role == PodRole::Gateway)
                .map(|p| SocketAddr::new(p.address, GATEWAY_HTTP_PORT))
                .expect("the mesh has its gateway");
            let proxies = pods.iter().filter(|p| p.role != PodRole::Plain).count();
            if let Err(behind) = settled(&plane, proxies).await {
                progress(&format!(
                    "the proxies have not all acknowledged the latest configuration yet: {behind}"
                ));
            }
            tokio::spawn(forward(ingress, gateway, stopping.clone()));
            progress(&format!(
                "ready in {:.1} s: ingress gateway at http://{ingress_address}",
                started.elapsed().as_secs_f64()
            ));
            let _ = shutdown.wait_for(|stop| *stop).await;
            Ok(())
        }
    };
    // The pods first (each supervisor stops its processes), then the control plane.
    progress("stopping");
    let _ = stop.send(true);
    drop(starting);
    while supervisors.join_next().await.is_some() {}
    let _ = plane_stop.send(true);
    let _ = server.await;
    outcome
}

/// Waits until every proxy has acknowledged the configuration of the mesh as it is now, with
/// every pod registered (each registration changes every proxy's view); the proxies that have
/// not, after [`READY_DEADLINE`].
async fn settled(plane: &ControlPlane, proxies: usize) -> Result<(), String> {
    let deadline = Instant::now() + READY_DEADLINE;
    loop {
        let version = plane.mesh().version;
        let statuses = plane.proxies();
        let behind: Vec<String> = statuses
            .iter()
            .filter_map(|p| {
                let mut why: Vec<String> = p
                    .types
                    .iter()
                    .filter(|(_, t)| t.sent != t.acked || t.nacked.is_some())
                    .map(|(kind, t)| {
                        let kind = kind.rsplit(['.', '/']).next().unwrap_or(kind);
                        format!("{kind} sent {:?} acked {:?}", t.sent, t.acked)
                    })
                    .collect();
                if p.mesh_version != version {
                    why.push(format!("at mesh version {} of {version}", p.mesh_version));
                }
                (!why.is_empty()).then(|| format!("{} ({})", p.id, why.join(", ")))
            })
            .collect();
        if statuses.len() >= proxies && behind.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{} of {proxies} connected; behind: {}",
                statuses.len(),
                behind.join(", ")
            ));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn containers_of(pod: &Pod) -> Vec<String> {
    let mut containers: Vec<String> = pod.containers.iter().map(|c| c.name.clone()).collect();
    if pod.role != PodRole::Plain {
        containers.push(PROXY_CONTAINER.to_owned());
    }
    containers
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Other(e.to_string()))?
}

/// A process of a pod, and how it ended once it has.
#[derive(Debug)]
struct Proc {
    name: String,
    pid: u32,
    program: PathBuf,
    /// `Some(code)` once exited (`Some(None)`: killed by a signal).
    exited: watch::Receiver<Option<Option<i32>>>,
}

impl Proc {
    /// Watches a child until it exits.
    fn watch(name: &str, program: &Path, mut child: Child) -> Self {
        let pid = child.id().unwrap_or(0);
        let (exit, exited) = watch::channel(None);
        tokio::spawn(async move {
            let status = child.wait().await;
            let _ = exit.send(Some(status.ok().and_then(|s| s.code())));
        });
        Self {
            name: name.to_owned(),
            pid,
            program: program.to_owned(),
            exited,
        }
    }

    fn has_exited(&self) -> bool {
        self.exited.borrow().is_some()
    }

    /// Waits for the process to exit; its exit code (`None`: a signal).
    async fn wait(&mut self) -> Option<i32> {
        match self.exited.wait_for(Option::is_some).await {
            Ok(code) => code.flatten(),
            Err(_) => None,
        }
    }

    /// SIGTERM, then SIGKILL if it is still here after [`STOP_DEADLINE`].
    async fn stop(&mut self) {
        if self.has_exited() {
            return;
        }
        process::signal(self.pid, "TERM");
        if tokio::time::timeout(STOP_DEADLINE, self.wait())
            .await
            .is_err()
        {
            tracing::warn!(process = %self.name, pid = self.pid, "did not stop in time; killed");
            process::signal(self.pid, "KILL");
            self.wait().await;
        }
    }
}

/// A pod whose processes run.
#[derive(Debug)]
struct Running {
    address: Ipv4Addr,
    proxy: Option<Proc>,
    apps: Vec<Proc>,
}

impl Running {
    fn recorded(&self) -> Vec<Recorded> {
        self.proxy
            .iter()
            .chain(&self.apps)
            .map(|p| Recorded {
                pid: p.pid,
                program: p.program.clone(),
            })
            .collect()
    }

    /// The applications first, then the sidecar (which drains what is in flight).
    async fn stop(&mut self) {
        for app in &mut self.apps {
            process::signal(app.pid, "TERM");
        }
        for app in &mut self.apps {
            app.stop().await;
        }
        if let Some(proxy) = &mut self.proxy {
            proxy.stop().await;
        }
    }
}

/// Starts one pod: its network, its sidecar (ready), then its applications (listening).
async fn start_pod(
    cx: &Context,
    index: usize,
    pod: &Pod,
    address: Ipv4Addr,
) -> Result<Running, Error> {
    let netns = cx.names.netns(&pod.namespace, &pod.name);
    let entries: Vec<(Ipv4Addr, Vec<String>)> = cx
        .services
        .iter()
        .map(|s| (s.vip, s.names(&pod.namespace)))
        .collect();
    let hosts = net::hosts_file(&pod.name, address, &entries);
    let capture = (pod.role == PodRole::Sidecar).then(|| {
        net::capture_rules(&Capture {
            exclude_inbound_ports: pod.exclude_inbound_ports.clone(),
            exclude_outbound_ports: pod.exclude_outbound_ports.clone(),
            exclude_outbound_ranges: pod.exclude_outbound_ranges.clone(),
        })
    });
    if cx.mode == Mode::Namespaces {
        let (names, netns, veth) = (cx.names.clone(), netns.clone(), cx.names.veth(index));
        let (gateway, cidr) = (cx.bridge, cx.pod_cidr);
        blocking(move || {
            net::create_pod(
                &names,
                &PodNetwork {
                    netns: &netns,
                    veth: &veth,
                    address,
                    cidr,
                    gateway,
                    hosts: &hosts,
                    capture: capture.as_deref(),
                },
            )
        })
        .await?;
    }
    cx.plane.registered.register(Workload {
        name: pod.name.clone(),
        namespace: pod.namespace.clone(),
        labels: pod.labels.clone(),
        address: IpAddr::V4(address),
        service_account: Some(pod.service_account.clone()),
    });
    let mut running = Running {
        address,
        proxy: None,
        apps: Vec::new(),
    };
    let started = start_processes(cx, pod, &netns, &mut running).await;
    if let Err(error) = started {
        running.stop().await;
        return Err(error);
    }
    Ok(running)
}

async fn start_processes(
    cx: &Context,
    pod: &Pod,
    netns: &str,
    running: &mut Running,
) -> Result<(), Error> {
    let address = running.address;
    let app = app_address(cx.mode, cx.pod_cidr, address);
    // Inside a namespace a program starts through `ip netns exec` (the sidecar, further,
    // through `setpriv` as uid 1337); on loopback it starts as it is.
    let command_for = |program: &Path, sidecar: bool| {
        let mut command = match cx.mode {
            Mode::Namespaces => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", netns]);
                if sidecar {
                    command
                        .arg("setpriv")
                        .arg(format!("--reuid={}", net::PROXY_UID))
                        .arg(format!("--regid={}", net::PROXY_UID))
                        .args(["--clear-groups", "--"]);
                }
                command.arg(program);
                command
            }
            Mode::Loopback => Command::new(program),
        };
        command.env("HOSTNAME", &pod.name);
        command
    };
    if pod.role != PodRole::Plain {
        let id = trellis_identity::SpiffeId::new(
            &cx.plane.trust_domain,
            &pod.namespace,
            &pod.service_account,
        )
        .map_err(|e| Error::Other(format!("service account {:?}: {e}", pod.service_account)))?;
        let token = cx
            .plane
            .identity
            .tokens
            .issue(&id, Duration::from_secs(30 * 24 * 3600));
        let log = cx.log_of(pod, PROXY_CONTAINER);
        let mut command = command_for(&cx.proxy, true);
        command
            .args(["--xds", &cx.xds.to_string()])
            .args(["--workload", &pod.name, "--namespace", &pod.namespace])
            .args(["--admin-address", &format!("{address}:{}", net::ADMIN_PORT)])
            .args(["--concurrency", "1", "--drain-timeout", PROXY_DRAIN])
            .args(["--access-log", "text", "--log-level", &cx.proxy_log_level])
            .env("TRELLIS_TOKEN", token);
        match (pod.role, cx.mode) {
            (PodRole::Gateway, Mode::Namespaces) => {
                command.args(["--role", "gateway", "--listen-address", "0.0.0.0"])
            }
            (PodRole::Gateway, Mode::Loopback) => command
                .args(["--role", "gateway", "--listen-address"])
                .arg(address.to_string()),
            (_, Mode::Namespaces) => command.args([
                "--role",
                "sidecar",
                "--inbound-capture",
                &format!("0.0.0.0:{}", net::INBOUND_CAPTURE_PORT),
            ]),
            (_, Mode::Loopback) => command
                .args(["--role", "sidecar", "--outbound-address"])
                .arg(format!("{address}:{}", net::OUTBOUND_CAPTURE_PORT))
                .arg("--app-ip")
                .arg(app.to_string()),
        };
        let child = spawn(&mut command, &log, PROXY_CONTAINER)?;
        let mut proxy = Proc::watch(PROXY_CONTAINER, &cx.proxy, child);
        let admin = SocketAddr::new(IpAddr::V4(address), net::ADMIN_PORT);
        let ready = wait_until(&mut proxy, &log, || async {
            http_status(admin, "/ready").await == Some(200)
        })
        .await;
        running.proxy = Some(proxy);
        ready.map_err(|e| Error::Other(format!("sidecar not ready: {e}")))?;
    }
    for container in &pod.containers {
        let mut env = container.env.clone();
        env.push(("POD_NAME".to_owned(), pod.name.clone()));
        env.push(("POD_NAMESPACE".to_owned(), pod.namespace.clone()));
        if cx.mode == Mode::Loopback {
            // Where to listen, and how to reach services: through the sidecar.
            env.push((LISTEN_IP_ENV.to_owned(), app.to_string()));
            if pod.role == PodRole::Sidecar {
                env.extend(through_sidecar(IpAddr::V4(address)));
            }
        }
        let command_line: Vec<String> = container
            .command
            .iter()
            .map(|arg| expand(arg, &env))
            .collect();
        let (program, args) = command_line
            .split_first()
            .ok_or_else(|| Error::Other(format!("container {} has no command", container.name)))?;
        let program = process::find_program(program, cx.bin_dir.as_deref()).ok_or_else(|| {
            Error::Other(format!(
                "container {}: {program:?} not found (beside trellis, or on PATH)",
                container.name
            ))
        })?;
        let log = cx.log_of(pod, &container.name);
        let mut command = command_for(&program, false);
        command.args(args).envs(env.iter().map(|(k, v)| (k, v)));
        if let Some(dir) = &container.working_dir {
            command.current_dir(dir);
        }
        let child = spawn(&mut command, &log, &container.name)?;
        running
            .apps
            .push(Proc::watch(&container.name, &program, child));
    }
    if let Some(first) = running.apps.first_mut() {
        let pid = first.pid;
        let wanted = pod.ports.clone();
        let log = cx.log_of(pod, &first.name.clone());
        // With namespaces the pod's own sockets are all there is; on loopback the port must be
        // the application's, at its address.
        let mode = cx.mode;
        wait_until(first, &log, || {
            let wanted = wanted.clone();
            async move {
                let listening = process::listening(pid);
                wanted.iter().all(|port| {
                    listening.iter().any(|at| {
                        at.port() == *port
                            && (mode == Mode::Namespaces
                                || at.ip() == IpAddr::V4(app)
                                || at.ip().is_unspecified())
                    })
                })
            }
        })
        .await
        .map_err(|e| Error::Other(format!("application not listening on {:?}: {e}", pod.ports)))?;
    }
    Ok(())
}

/// On loopback, how a pod's processes reach services: through its sidecar's outbound
/// listener, named in the proxy variables HTTP clients honour.
pub fn through_sidecar(pod: IpAddr) -> Vec<(String, String)> {
    let via = format!("http://{pod}:{}", net::OUTBOUND_CAPTURE_PORT);
    let local = "localhost,127.0.0.1".to_owned();
    vec![
        ("HTTP_PROXY".to_owned(), via.clone()),
        ("http_proxy".to_owned(), via),
        ("NO_PROXY".to_owned(), local.clone()),
        ("no_proxy".to_owned(), local),
    ]
}

/// On loopback, the address an application is to listen on (also `$(TRELLIS_LISTEN_IP)` in
/// its command and args).
pub const LISTEN_IP_ENV: &str = "TRELLIS_LISTEN_IP";

/// Kubernetes' expansion of `$(VAR)` in a command or argument: a variable of the container's
/// environment is replaced by its value, an unknown one is left as written, and `$$` is `$`.
pub fn expand(text: &str, env: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(open) = after.strip_prefix('(')
            && let Some(close) = open.find(')')
            && let Some((_, value)) = env.iter().rev().find(|(k, _)| *k == open[..close])
        {
            out.push_str(value);
            rest = &open[close + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

impl Context {
    fn log_of(&self, pod: &Pod, container: &str) -> PathBuf {
        log_path(&self.logs, &pod.namespace, &pod.name, container)
    }
}

/// Where a container's output goes: `<logs>/<namespace>_<pod>_<container>.log`, as the kubelet
/// names them.
pub fn log_path(logs: &Path, namespace: &str, pod: &str, container: &str) -> PathBuf {
    logs.join(format!("{namespace}_{pod}_{container}.log"))
}

fn spawn(command: &mut Command, log: &Path, what: &str) -> Result<Child, Error> {
    let file = std::fs::File::create(log)
        .map_err(|e| Error::io(format!("creating {}", log.display()), e))?;
    let err = file
        .try_clone()
        .map_err(|e| Error::io(format!("opening {}", log.display()), e))?;
    command
        .stdin(Stdio::null())
        .stdout(Stdio::from(file))
        .stderr(Stdio::from(err))
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::io(format!("starting {what}"), e))
}

/// Polls `ready` until it holds, the process exits (an error with the end of its log), or
/// [`READY_DEADLINE`] passes.
async fn wait_until<F, Fut>(proc: &mut Proc, log: &Path, ready: F) -> Result<(), String>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + READY_DEADLINE;
    loop {
        if ready().await {
            return Ok(());
        }
        if proc.has_exited() {
            let how = match proc.wait().await {
                Some(code) => format!("status {code}"),
                None => "killed by a signal".to_owned(),
            };
            return Err(format!(
                "{} exited ({how}); the end of {}:\n{}",
                proc.name,
                log.display(),
                tail(log, 10)
            ));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{} not ready after {} s; see {}",
                proc.name,
                READY_DEADLINE.as_secs(),
                log.display()
            ));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The last `lines` lines of a file.
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The status code a plain HTTP GET gets, if any.
async fn http_status(address: SocketAddr, path: &str) -> Option<u16> {
    let exchange = async {
        let mut stream = TcpStream::connect(address).await.ok()?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        let head = String::from_utf8_lossy(&response[..response.len().min(32)]).into_owned();
        head.split_whitespace().nth(1)?.parse().ok()
    };
    tokio::time::timeout(Duration::from_secs(1), exchange)
        .await
        .ok()
        .flatten()
}

/// Keeps a running pod's processes, until the mesh stops or its application exits: then the
/// rest of the pod is stopped (the sidecar drains) and its phase says how it ended.
async fn supervise(
    mut running: Running,
    index: usize,
    shared: Shared,
    mut stopping: watch::Receiver<bool>,
) {
    let (exits, mut exited) = mpsc::unbounded_channel();
    for (i, proc) in running.apps.iter().chain(&running.proxy).enumerate() {
        let (exits, mut watching) = (exits.clone(), proc.exited.clone());
        tokio::spawn(async move {
            if let Ok(code) = watching.wait_for(Option::is_some).await {
                let _ = exits.send((i, code.flatten()));
            }
        });
    }
    drop(exits);
    let stopped = async {
        let _ = stopping.wait_for(|stop| *stop).await;
    };
    tokio::select! {
        () = stopped => running.stop().await,
        Some((i, code)) = exited.recv() => {
            let is_app = i < running.apps.len();
            let name = if is_app { running.apps[i].name.clone() } else { PROXY_CONTAINER.to_owned() };
            tracing::info!(container = %name, ?code, "exited; stopping the rest of its pod");
            running.stop().await;
            shared.set_phase(index, if is_app {
                Phase::Exited { code }
            } else {
                Phase::Failed { reason: format!("{PROXY_CONTAINER} exited ({code:?})") }
            });
        }
    }
}

/// Publishes the ingress gateway on the host: every connection to the listener is relayed to
/// the gateway pod.
async fn forward(listener: TcpListener, to: SocketAddr, mut stopping: watch::Receiver<bool>) {
    loop {
        let stopped = async {
            let _ = stopping.wait_for(|stop| *stop).await;
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stopped => return,
        };
        let Ok((mut client, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        tokio::spawn(async move {
            let Ok(mut upstream) = TcpStream::connect(to).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = upstream.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_expand_as_kubernetes_expands_them() {
        let env = vec![
            ("TRELLIS_LISTEN_IP".to_owned(), "127.1.128.2".to_owned()),
            ("PORT".to_owned(), "9080".to_owned()),
        ];
        assert_eq!(
            expand("$(TRELLIS_LISTEN_IP):$(PORT)", &env),
            "127.1.128.2:9080"
        );
        assert_eq!(
            expand("$(UNKNOWN)", &env),
            "$(UNKNOWN)",
            "unknown: left as written"
        );
        assert_eq!(expand("$$(PORT)", &env), "$(PORT)", "escaped");
        assert_eq!(expand("cost: $5 $(PORT", &env), "cost: $5 $(PORT");
        assert_eq!(expand("plain", &env), "plain");
    }

    #[test]
    fn on_loopback_applications_listen_in_the_upper_half_of_the_range() {
        let cidr: Cidr = "127.1.0.0/16".parse().unwrap();
        let pod = "127.1.0.2".parse().unwrap();
        assert_eq!(
            app_address(Mode::Loopback, cidr, pod),
            "127.1.128.2".parse::<Ipv4Addr>().unwrap()
        );
        assert_eq!(
            app_address(Mode::Namespaces, cidr, pod),
            Ipv4Addr::LOCALHOST
        );
    }
}
