//! A mesh of real processes on loopback: a control plane on a runtime of its own, sidecars as
//! `trellis-proxy` processes configured by it, and upstreams on chosen addresses.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use tokio::net::TcpListener;
use trellis_testkit::{Upstream, UpstreamConfig};

/// The sidecars' admin port, on their workloads' addresses.
pub const ADMIN_PORT: u16 = 15000;

/// A child process, killed when dropped.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A control plane on a runtime of its own; dropping it kills it.
pub struct ControlPlane {
    runtime: Option<tokio::runtime::Runtime>,
    _stop: tokio::sync::watch::Sender<bool>,
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Starts a control plane for `dir` (on `xds`, or a free port); returns it with its xDS and
/// debug addresses.
pub fn control_plane(
    dir: &Path,
    xds: Option<SocketAddr>,
) -> (ControlPlane, SocketAddr, SocketAddr) {
    let dir = dir.to_owned();
    // Built on a thread of its own: the test's runtime cannot start another on its threads.
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let (xds, debug) = runtime.block_on(async move {
            let options = trellis_control::Options::new(dir);
            let plane = trellis_control::ControlPlane::start(&options, stopped.clone()).unwrap();
            let xds = TcpListener::bind(xds.unwrap_or_else(|| "127.0.0.1:0".parse().unwrap()))
                .await
                .unwrap();
            let debug = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addresses = (xds.local_addr().unwrap(), debug.local_addr().unwrap());
            tokio::spawn(plane.serve(xds, debug, stopped));
            addresses
        });
        let plane = ControlPlane {
            runtime: Some(runtime),
            _stop: stop,
        };
        (plane, xds, debug)
    })
    .join()
    .unwrap()
}

/// Starts a sidecar for `workload`; returns it and the address its outbound listener bound (it
/// listens on port 0 of the workload's address, its admin endpoints on [`ADMIN_PORT`]).
pub fn sidecar(
    workload: &str,
    xds: SocketAddr,
    outbound_ip: &str,
    app_ip: &str,
) -> (Process, SocketAddr) {
    sidecar_with(workload, xds, outbound_ip, app_ip, None)
}

/// [`sidecar`], with the bootstrap token in `token` (the proxy then gets its certificate from
/// the control plane's CA).
pub fn sidecar_with(
    workload: &str,
    xds: SocketAddr,
    outbound_ip: &str,
    app_ip: &str,
    token: Option<&Path>,
) -> (Process, SocketAddr) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_trellis-proxy"));
    command
        .args(["--xds", &xds.to_string(), "--workload", workload])
        .args(["--outbound-address", &format!("{outbound_ip}:0")])
        .args(["--app-ip", app_ip, "--concurrency", "1"])
        .args(["--admin-address", &format!("{outbound_ip}:{ADMIN_PORT}")])
        .env("TRELLIS_LOG", "info")
        .stderr(Stdio::piped());
    if let Some(token) = token {
        command.arg("--token-file").arg(token);
    }
    let mut child = command.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let outbound = lines
        .find_map(|l| {
            let l = l.ok()?;
            (l.contains("listening") && l.contains("listener=outbound"))
                .then(|| {
                    l.split("address=")
                        .nth(1)?
                        .split_whitespace()
                        .next()?
                        .parse()
                        .ok()
                })
                .flatten()
        })
        .expect("the sidecar binds its outbound listener");
    // The sidecar's warnings and errors go to the test's output, where a failure shows them.
    #[allow(clippy::print_stderr)]
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if line.contains("ERROR") || line.contains("WARN") {
                eprintln!("[sidecar] {line}");
            }
        }
    });
    (Process(child), outbound)
}

pub async fn upstream(ip: &str, port: u16, name: &str) -> Upstream {
    let listener = TcpListener::bind((ip.parse::<IpAddr>().unwrap(), port))
        .await
        .unwrap();
    let config = UpstreamConfig {
        name: Some(name.parse().unwrap()),
        ..UpstreamConfig::default()
    };
    Upstream::spawn_on(listener, config).unwrap()
}
