//! How fast a change reaches many proxies:
//!
//! ```text
//! cargo bench -p trellis-control --bench push [-- --proxies 100,1000,5000 --services 50]
//! ```
//!
//! For each count N: a control plane runs as a process of its own (this binary, started again
//! with `--serve`) on a generated mesh of S services (two endpoints each) and N workloads; N
//! simulated proxies connect over real gRPC, each running the proxy's own xDS client
//! (`trellis_proxy::xds`), takes its configuration and asks for the virtual host of service
//! 0, as a request to it would. Then one VirtualService file is edited (the timeout of the
//! route to service 0), and the time from the edit until each proxy has applied (and so ACKs)
//! the new virtual host is recorded: p50, p99 and max, with the share of those under 1 s. Also
//! printed: what the first proxy holds (virtual hosts and clusters), the bytes the control
//! plane pushed for the change, its CPU time for it, and its resident memory with N proxies
//! connected.
//! The time includes the control plane noticing the edit (it polls files every 200 ms and
//! waits 100 ms for more changes). A measurement, not a test: it asserts nothing.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use trellis_proto::node;
use trellis_proxy::on_demand::OnDemand;
use trellis_proxy::xds::{XdsOptions, run};
use trellis_proxy_config::{Action, Config, Duration as ConfigDuration};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--serve") {
        return serve(PathBuf::from(&args[at + 1]));
    }
    let value = |flag: &str, default: &str| -> String {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
            .unwrap_or_else(|| default.to_owned())
    };
    let counts: Vec<usize> = value("--proxies", "100,1000,5000")
        .split(',')
        .map(|n| {
            n.trim()
                .parse()
                .expect("--proxies takes counts such as 100,1000")
        })
        .collect();
    let services: usize = value("--services", "50")
        .parse()
        .expect("--services takes a count");
    println!(
        "| proxies | services | each proxy holds | ACK p50 | p99 | max | within 1 s | pushed | control plane CPU | RSS |"
    );
    println!("|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for n in counts {
        let row = measure(n, services);
        println!("{row}");
    }
}

/// The control plane process: serves `dir` on free ports, prints them, runs until killed.
fn serve(dir: PathBuf) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async move {
        let (_stop, stopped) = watch::channel(false);
        let options = trellis_control::Options::new(dir);
        let plane =
            trellis_control::ControlPlane::start(&options, stopped.clone()).expect("starts");
        let xds = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let debug = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        println!(
            "xds={} debug={}",
            xds.local_addr().unwrap(),
            debug.local_addr().unwrap()
        );
        plane.serve(xds, debug, stopped).await.expect("serves");
    });
}

fn virtual_service(timeout: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: svc-0, namespace: default}}\n\
         spec: {{hosts: [svc-0], http: [{{timeout: {timeout}, route: [{{destination: {{host: svc-0}}}}]}}]}}\n"
    )
}

fn mesh(dir: &Path, services: usize, proxies: usize) {
    let mut text = String::new();
    for s in 0..services {
        text += &format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: svc-{s}, namespace: default}}\n\
             spec: {{selector: {{app: svc-{s}}}, ports: [{{name: http, port: 8080}}]}}\n---\n"
        );
        for e in 0..2 {
            text += &format!(
                "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n\
                 metadata: {{name: svc-{s}-{e}, namespace: default}}\n\
                 spec: {{address: 10.{}.{}.{}, labels: {{app: svc-{s}}}}}\n---\n",
                10 + s / 250,
                s % 250,
                e + 1
            );
        }
    }
    for p in 0..proxies {
        text += &format!(
            "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n\
             metadata: {{name: client-{p}, namespace: default}}\n\
             spec: {{address: 10.2.{}.{}, labels: {{app: client}}}}\n---\n",
            p / 250,
            p % 250 + 1
        );
    }
    std::fs::write(dir.join("mesh.yaml"), text).unwrap();
    std::fs::write(dir.join("svc-0.yaml"), virtual_service("1s")).unwrap();
}

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// CPU seconds (user + system) and resident KiB of a process.
fn usage(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: f64 = fields
        .get(11)
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    (ticks / 100.0, rss)
}

fn stats(debug: SocketAddr) -> serde_json::Value {
    let mut stream = std::net::TcpStream::connect(debug).unwrap();
    write!(
        stream,
        "GET /debug/stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    serde_json::from_str(text.split_once("\r\n\r\n").unwrap().1).unwrap()
}

/// The timeout of the route to service 0 in a configuration, if it has it.
fn svc0_timeout(config: &Config) -> Option<ConfigDuration> {
    let table = config.routes.get("outbound")?;
    let host = table
        .virtual_hosts
        .iter()
        .find(|h| h.name.starts_with("svc-0.default."))?;
    match &host.routes.first()?.action {
        Action::Forward(f) => f.timeout,
        _ => None,
    }
}

fn measure(proxies: usize, services: usize) -> String {
    let dir = std::env::temp_dir().join(format!("trellis-push-{proxies}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    mesh(&dir, services, proxies);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("--serve")
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next().unwrap().unwrap();
    let control = Process(child);
    let pid = control.0.id();
    let mut words = line.split_whitespace();
    let xds: SocketAddr = words.next().unwrap()["xds=".len()..].parse().unwrap();
    let debug: SocketAddr = words.next().unwrap()["debug=".len()..].parse().unwrap();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let changed_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let latencies: Arc<Mutex<Vec<Duration>>> = Arc::default();
    // What the first proxy holds: (virtual hosts, clusters).
    let holds: Arc<Mutex<(usize, usize)>> = Arc::default();
    let (_drain, draining) = watch::channel(false);
    let mut ready = Vec::new();
    runtime.block_on(async {
        for p in 0..proxies {
            let (configured, configured_rx) = watch::channel(false);
            let (has_svc0, has_svc0_rx) = watch::channel(false);
            ready.push(has_svc0_rx);
            let options = XdsOptions {
                address: format!("http://{xds}"),
                node: node::node(&format!("client-{p}"), "default", &[]),
            };
            let (changed_at, latencies) = (changed_at.clone(), latencies.clone());
            let holds = (p == 0).then(|| holds.clone());
            let mut seen_change = false;
            let apply = Box::new(move |config: Config| {
                let timeout = svc0_timeout(&config);
                if timeout.is_some() {
                    has_svc0.send_replace(true);
                }
                if !seen_change && timeout == Some(ConfigDuration::from_millis(2000)) {
                    seen_change = true;
                    if let Some(at) = *changed_at.lock().unwrap() {
                        latencies.lock().unwrap().push(at.elapsed());
                    }
                }
                if let Some(holds) = &holds {
                    let hosts = config.routes.values().map(|t| t.virtual_hosts.len());
                    *holds.lock().unwrap() = (hosts.sum(), config.clusters.len());
                }
                Ok(())
            });
            let on_demand = Arc::new(OnDemand::default());
            tokio::spawn(run(
                options,
                apply,
                configured,
                on_demand.clone(),
                draining.clone(),
            ));
            // Once configured, the first request to service 0 asks for its host.
            let mut configured_rx = configured_rx;
            tokio::spawn(async move {
                if configured_rx.wait_for(|c| *c).await.is_ok() {
                    on_demand.ask("outbound", "svc-0:8080");
                }
            });
            if p % 100 == 99 {
                tokio::task::yield_now().await;
            }
        }
        let deadline = Instant::now() + Duration::from_secs(600);
        for r in &mut ready {
            while !*r.borrow() {
                assert!(
                    Instant::now() < deadline,
                    "proxies not configured within 10 minutes"
                );
                let _ = tokio::time::timeout(Duration::from_millis(100), r.changed()).await;
            }
        }
    });
    // Settled: every proxy has its configuration.
    std::thread::sleep(Duration::from_millis(500));
    let (cpu_before, rss) = usage(pid);
    let before = stats(debug);
    *changed_at.lock().unwrap() = Some(Instant::now());
    std::fs::write(dir.join("svc-0.yaml"), virtual_service("2s")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(600);
    while latencies.lock().unwrap().len() < proxies {
        assert!(
            Instant::now() < deadline,
            "the change did not reach every proxy in 10 minutes"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let (cpu_after, _) = usage(pid);
    let after = stats(debug);
    drop(runtime);
    drop(control);
    let _ = std::fs::remove_dir_all(&dir);

    let mut all = latencies.lock().unwrap().clone();
    all.sort();
    let at = |q: f64| all[((all.len() as f64 * q).ceil() as usize).clamp(1, all.len()) - 1];
    let within = all.iter().filter(|d| **d <= Duration::from_secs(1)).count();
    let bytes =
        after["pushed_bytes"].as_u64().unwrap_or(0) - before["pushed_bytes"].as_u64().unwrap_or(0);
    let (hosts, clusters) = *holds.lock().unwrap();
    format!(
        "| {proxies} | {services} | {hosts} hosts, {clusters} clusters | {:.0} ms | {:.0} ms | {:.0} ms | {:.1}% | {:.1} KiB ({} B each) | {:.2} s | {:.1} MiB |",
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        all.last().unwrap().as_secs_f64() * 1e3,
        within as f64 * 100.0 / proxies as f64,
        bytes as f64 / 1024.0,
        bytes / proxies as u64,
        cpu_after - cpu_before,
        rss as f64 / 1024.0,
    )
}
