//! The local mesh's commands: `trellis up`, `down`, `status`, `apply`, `delete`, `logs` and
//! `exec`. `up` runs the mesh in the foreground; the others find it through its run directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use trellis_runner::mesh::{CONTROL_LOG, PROXY_CONTAINER, log_path};
use trellis_runner::state::{PodState, default_run_dir};
use trellis_runner::{Cidr, Mode, Names, Phase, State, config_dir};

/// The demo application, bundled: what `trellis up` runs without a directory.
const DEMO_FILES: [(&str, &str); 2] = [
    (
        "bookinfo.yaml",
        include_str!("../../demo/bookinfo/bookinfo.yaml"),
    ),
    (
        "gateway.yaml",
        include_str!("../../demo/bookinfo/gateway.yaml"),
    ),
];

/// Which mesh a command is about.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Which {
    /// The mesh's name: its network namespaces, links and run directory are named after it.
    #[arg(
        long = "mesh",
        value_name = "NAME",
        default_value = "trellis",
        env = "TRELLIS_MESH"
    )]
    mesh: String,
    /// Where the mesh keeps its state, configuration and logs (default: /run/trellis/<mesh>
    /// for root).
    #[arg(long, value_name = "DIR", env = "TRELLIS_RUN_DIR")]
    run_dir: Option<PathBuf>,
}

impl Which {
    fn names(&self) -> anyhow::Result<Names> {
        Names::new(&self.mesh).map_err(anyhow::Error::msg)
    }

    fn run_dir(&self) -> PathBuf {
        self.run_dir
            .clone()
            .unwrap_or_else(|| default_run_dir(&self.mesh))
    }

    /// The running mesh's state; an error saying so when none runs.
    fn running(&self) -> anyhow::Result<State> {
        match State::read(&self.run_dir())? {
            Some(state) if state.is_live() => Ok(state),
            _ => bail!(
                "mesh {:?} is not running (start it with `trellis up`)",
                self.mesh
            ),
        }
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct UpArgs {
    /// Files or directories of Services, Deployments and Istio resources (default: the
    /// bundled demo application, Bookinfo, with its ingress Gateway).
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
    #[command(flatten)]
    which: Which,
    /// Run on loopback addresses without network namespaces or traffic capture: each
    /// application listens on its own address (TRELLIS_LISTEN_IP) and reaches services through
    /// its sidecar (HTTP_PROXY). The mode without root.
    #[arg(long)]
    loopback: bool,
    /// The pods' addresses; the first is the control plane's (the host's end of the bridge).
    /// Default: 10.244.0.0/16, or 127.1.0.0/16 on loopback.
    #[arg(long, value_name = "CIDR")]
    pod_cidr: Option<Cidr>,
    /// The services' virtual IPs.
    #[arg(long, value_name = "CIDR", default_value = "10.96.0.0/16")]
    service_cidr: Cidr,
    /// Where the ingress gateway is published on this machine.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    ingress: SocketAddr,
    /// Where the control plane's debug API listens (what `trellis proxy-status` reads).
    #[arg(long, value_name = "ADDR", default_value = crate::control::DEBUG_ADDRESS)]
    debug_listen: SocketAddr,
    /// The sidecars' log filter.
    #[arg(long, value_name = "FILTER", default_value = "info")]
    proxy_log_level: String,
    /// The control plane's log filter.
    #[arg(
        long,
        value_name = "FILTER",
        default_value = "info",
        env = "TRELLIS_LOG"
    )]
    log_level: String,
}

pub(crate) fn up(args: UpArgs) -> anyhow::Result<ExitCode> {
    let names = args.which.names()?;
    let run_dir = args.which.run_dir();
    let mode = if args.loopback {
        Mode::Loopback
    } else if trellis_runner::process::is_root() {
        Mode::Namespaces
    } else {
        println!(
            "trellis up: not root, so no network namespaces or traffic capture: running on loopback \
             addresses, where each application listens on TRELLIS_LISTEN_IP and reaches services \
             through its sidecar (HTTP_PROXY); run as root for the full mesh (docs/local-mesh.md)"
        );
        Mode::Loopback
    };
    let pod_cidr = args.pod_cidr.unwrap_or_else(|| {
        match mode {
            Mode::Namespaces => "10.244.0.0/16",
            Mode::Loopback => "127.1.0.0/16",
        }
        .parse()
        .expect("a network")
    });
    let logs = run_dir.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let control_log = std::fs::File::create(logs.join(CONTROL_LOG))
        .with_context(|| format!("creating {}", logs.join(CONTROL_LOG).display()))?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&args.log_level)
                .with_context(|| format!("--log-level {:?}", args.log_level))?,
        )
        .with_writer(std::sync::Mutex::new(control_log))
        .with_ansi(false)
        .init();
    let sources = if args.paths.is_empty() {
        let demo = run_dir.join("demo");
        std::fs::create_dir_all(&demo).with_context(|| format!("creating {}", demo.display()))?;
        for (name, text) in DEMO_FILES {
            std::fs::write(demo.join(name), text)
                .with_context(|| format!("writing {}", demo.join(name).display()))?;
        }
        vec![demo]
    } else {
        args.paths.clone()
    };
    let demo = args.paths.is_empty();
    let options = trellis_runner::Options {
        sources,
        mode,
        names,
        run_dir,
        pod_cidr,
        service_cidr: args.service_cidr,
        ingress: args.ingress,
        debug_listen: args.debug_listen,
        bin_dir: None,
        proxy_log_level: args.proxy_log_level.clone(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let mesh = args.which.mesh.clone();
    runtime.block_on(async move {
        let (stop, shutdown) = watch::channel(false);
        let mut terminate = signal(SignalKind::terminate())
            .map_err(|e| trellis_runner::Error::io("SIGTERM handler", e))?;
        let mut interrupt = signal(SignalKind::interrupt())
            .map_err(|e| trellis_runner::Error::io("SIGINT handler", e))?;
        tokio::spawn(async move {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
            let _ = stop.send(true);
        });
        let progress = |line: &str| {
            println!("trellis up: {line}");
            if let Some(url) = line
                .strip_prefix("ready in ")
                .and_then(|l| l.split("at ").nth(1))
            {
                if demo {
                    println!();
                    println!("  the demo application:   {url}/productpage");
                    println!("  sign in as jason:       {url}/login?user=jason");
                }
                println!("  pods and services:      trellis status");
                println!(
                    "  a pod's logs:           trellis logs <workload> [-c {PROXY_CONTAINER}]"
                );
                println!("  change the routing:     trellis apply -f <file>");
                println!("  stop (or Ctrl-C):       trellis down");
                if mesh != "trellis" {
                    println!("  (add --mesh {mesh} to each)");
                }
                println!();
            }
        };
        trellis_runner::up(options, &progress, shutdown).await
    })?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
pub(crate) struct DownArgs {
    #[command(flatten)]
    which: Which,
}

/// Stops the mesh's `trellis up` (which stops its pods and removes what it created), then
/// removes whatever is still there.
pub(crate) fn down(args: DownArgs) -> anyhow::Result<ExitCode> {
    let names = args.which.names()?;
    let run_dir = args.which.run_dir();
    if let Some(state) = State::read(&run_dir)?
        && state.is_live()
    {
        println!(
            "stopping mesh {:?} (trellis up, pid {})",
            state.mesh, state.pid
        );
        trellis_runner::process::signal(state.pid, "TERM");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while state.is_live() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        if state.is_live() {
            println!("it did not stop within 30 s; killing it");
            trellis_runner::process::signal(state.pid, "KILL");
        }
    }
    let state = State::read(&run_dir)?;
    if let Some(state) = &state {
        let killed = state.kill_recorded();
        if killed > 0 {
            println!("stopped {killed} processes it left");
        }
    }
    let loopback = state.as_ref().is_some_and(|s| s.mode == Mode::Loopback);
    let left = if trellis_runner::process::is_root() {
        trellis_runner::net::sweep(&names)?
    } else if loopback || state.is_none() {
        trellis_runner::net::Leftovers::default()
    } else {
        bail!("removing network namespaces needs root (sudo trellis down)");
    };
    let _ = std::fs::remove_file(State::file(&run_dir));
    if left.is_empty() {
        println!("mesh {:?} is down; nothing left behind", args.which.mesh);
    } else {
        println!("removed what was left: {left}");
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    which: Which,
    /// `json` for scripts (the mesh's whole state).
    #[arg(short, long, value_name = "FORMAT")]
    output: Option<String>,
}

pub(crate) fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let state = args.which.running()?;
    match args.output.as_deref() {
        Some("json") => {
            println!("{}", serde_json::to_string_pretty(&state)?);
            return Ok(ExitCode::SUCCESS);
        }
        Some(other) => bail!("--output {other:?}: the formats are json and (without it) a table"),
        None => {}
    }
    println!(
        "mesh {:?} ({}): control plane {} (debug API {}), ingress gateway http://{}",
        state.mesh, state.mode, state.xds, state.debug, state.ingress
    );
    println!();
    let mut rows = vec![[
        "NAMESPACE".to_owned(),
        "POD".to_owned(),
        "READY".to_owned(),
        "STATUS".to_owned(),
        "ADDRESS".to_owned(),
        "SIDECAR".to_owned(),
    ]];
    for pod in &state.pods {
        rows.push([
            pod.namespace.clone(),
            pod.name.clone(),
            ready(pod),
            pod.phase.to_string(),
            pod.address.to_string(),
            match pod.role {
                trellis_runner::plan::PodRole::Sidecar => "yes",
                trellis_runner::plan::PodRole::Plain => "no",
                trellis_runner::plan::PodRole::Gateway => "gateway",
            }
            .to_owned(),
        ]);
    }
    print_table(&rows);
    println!();
    let mut rows = vec![[
        "NAMESPACE".to_owned(),
        "SERVICE".to_owned(),
        "CLUSTER-IP".to_owned(),
        "PORTS".to_owned(),
    ]];
    for service in &state.services {
        let ports: Vec<String> = service.ports.iter().map(u16::to_string).collect();
        rows.push([
            service.namespace.clone(),
            service.name.clone(),
            service.vip.to_string(),
            ports.join(","),
        ]);
    }
    print_table(&rows);
    Ok(ExitCode::SUCCESS)
}

fn ready(pod: &PodState) -> String {
    let total = pod.containers.len();
    let up = if pod.phase == Phase::Running {
        total
    } else {
        0
    };
    format!("{up}/{total}")
}

fn print_table<const N: usize>(rows: &[[String; N]]) {
    let mut widths = [0; N];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:width$}"))
            .collect();
        println!("{}", cells.join("   ").trim_end());
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct ApplyArgs {
    /// Files or directories of Istio resources.
    #[arg(short = 'f', long = "filename", value_name = "PATH", required = true)]
    files: Vec<PathBuf>,
    #[command(flatten)]
    which: Which,
}

/// Reads the files whole; a single error refuses them all (nothing changes).
fn read_istio(files: &[PathBuf], verb: &str) -> anyhow::Result<Vec<trellis_api::Resource>> {
    let (mut errors, loaded) = match trellis_api::fs::load_all(files, &Default::default()) {
        Ok(loaded) => (Vec::new(), loaded),
        Err(errors) => (errors, Vec::new()),
    };
    let mut resources = Vec::new();
    for loaded in loaded {
        if loaded.resource.kind().is_istio() {
            resources.push(loaded.resource);
        } else {
            errors.push(format!(
                "{}: {} {}: `trellis {verb}` changes Istio configuration; Services and Deployments are read by `trellis up`",
                loaded.origin.location(),
                loaded.resource.kind().name(),
                loaded.resource.display_name()
            ));
        }
    }
    if !errors.is_empty() {
        bail!(
            "nothing {verb}d; fix these first:\n  {}",
            errors.join("\n  ")
        );
    }
    if resources.is_empty() {
        bail!("no resources found in {}", display_paths(files));
    }
    Ok(resources)
}

fn display_paths(paths: &[PathBuf]) -> String {
    let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    shown.join(", ")
}

fn describe(resource: &trellis_api::Resource) -> String {
    let info = resource.kind().info();
    format!(
        "{}.{}/{}",
        resource.kind().name().to_lowercase(),
        info.group,
        resource.meta().name
    )
}

pub(crate) fn apply(args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let state = args.which.running()?;
    for resource in read_istio(&args.files, "apply")? {
        let replaced = config_dir::write(&state.config_dir, &resource)?;
        let verb = if replaced { "configured" } else { "created" };
        println!("{} {verb}", describe(&resource));
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn delete(args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let state = args.which.running()?;
    for resource in read_istio(&args.files, "delete")? {
        let verb = if config_dir::remove(&state.config_dir, &resource)? {
            "deleted"
        } else {
            "not found"
        };
        println!("{} {verb}", describe(&resource));
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
pub(crate) struct LogsArgs {
    /// A pod, a workload (all its pods), or `control` for the control plane.
    #[arg(value_name = "NAME")]
    name: String,
    /// The container (default: the pod's first; `istio-proxy` is the sidecar).
    #[arg(short, long, value_name = "CONTAINER")]
    container: Option<String>,
    #[command(flatten)]
    which: Which,
}

pub(crate) fn logs(args: LogsArgs) -> anyhow::Result<ExitCode> {
    let run_dir = args.which.run_dir();
    let Some(state) = State::read(&run_dir)? else {
        bail!(
            "mesh {:?} has no logs at {} (start it with `trellis up`)",
            args.which.mesh,
            run_dir.display()
        );
    };
    if args.name == "control" {
        print_file(&state.logs_dir.join(CONTROL_LOG))?;
        return Ok(ExitCode::SUCCESS);
    }
    let pods = state.pods_named(&args.name);
    if pods.is_empty() {
        let known: Vec<&str> = state.pods.iter().map(|p| p.name.as_str()).collect();
        bail!(
            "no pod or workload {:?}; the pods are {} (and `control`)",
            args.name,
            known.join(", ")
        );
    }
    for pod in &pods {
        let container = match &args.container {
            Some(container) if pod.containers.contains(container) => container.clone(),
            Some(container) => bail!(
                "pod {} has no container {container:?}; it has {}",
                pod.name,
                pod.containers.join(", ")
            ),
            None => pod.containers.first().cloned().unwrap_or_default(),
        };
        if pods.len() > 1 {
            println!("==> {}/{} {container} <==", pod.namespace, pod.name);
        }
        print_file(&log_path(
            &state.logs_dir,
            &pod.namespace,
            &pod.name,
            &container,
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_file(path: &Path) -> anyhow::Result<()> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    use std::io::Write as _;
    std::io::stdout().write_all(&text)?;
    Ok(())
}

#[derive(Debug, clap::Args)]
pub(crate) struct ExecArgs {
    /// The pod (or a workload: its first pod).
    #[arg(value_name = "POD")]
    pod: String,
    /// The command, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<String>,
    #[command(flatten)]
    which: Which,
}

/// Runs a command inside a pod's network, as its application runs (its traffic captured, the
/// pod's hosts file in place).
pub(crate) fn exec(args: ExecArgs) -> anyhow::Result<ExitCode> {
    let state = args.which.running()?;
    let Some(pod) = state.pods_named(&args.pod).into_iter().next() else {
        bail!("no pod or workload {:?}", args.pod);
    };
    let status = match state.mode {
        Mode::Namespaces => std::process::Command::new("ip")
            .args(["netns", "exec", &pod.netns])
            .args(&args.command)
            .status()
            .context("running ip netns exec")?,
        // No namespace to enter: the pod's environment is its way to its sidecar.
        Mode::Loopback => {
            let (program, rest) = args.command.split_first().expect("a command is required");
            let mut command = std::process::Command::new(program);
            command.args(rest);
            if pod.role == trellis_runner::plan::PodRole::Sidecar {
                command.envs(trellis_runner::mesh::through_sidecar(pod.address));
            }
            command
                .status()
                .with_context(|| format!("running {program}"))?
        }
    };
    Ok(ExitCode::from(
        u8::try_from(status.code().unwrap_or(1)).unwrap_or(1),
    ))
}
