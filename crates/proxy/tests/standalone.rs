//! `trellis-proxy --standalone` run as a process, as an operator runs it: Istio YAML in, a
//! gateway out; the admin endpoints; SIGHUP reloads (a broken file keeps the configuration in
//! force); SIGTERM drains; a broken configuration at start is refused with every problem.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

/// A free loopback port (bound and released; the proxy binds it next).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn gateway_yaml(port: u16, upstream: std::net::SocketAddr, greeting: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: edge, namespace: istio-system}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: {port}, name: http, protocol: HTTP}}
    hosts: [\"*\"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: edge, namespace: istio-system}}
spec:
  hosts: [\"*\"]
  gateways: [edge]
  http:
  - match: [{{uri: {{exact: /hello}}}}]
    directResponse: {{status: 200, body: {{string: \"{greeting}\"}}}}
  - route:
    - destination: {{host: web.example.com, port: {{number: {}}}}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: web, namespace: istio-system}}
spec:
  hosts: [web.example.com]
  ports: [{{number: {}, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints: [{{address: {}}}]
",
        upstream.port(),
        upstream.port(),
        upstream.ip()
    )
}

struct Process {
    child: Child,
    admin: u16,
}

impl Process {
    fn start(dir: &Path, extra: &[&str]) -> Self {
        let admin = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_trellis-proxy"))
            .arg("--standalone")
            .arg(dir)
            .args([
                "--listen-address",
                "127.0.0.1",
                "--admin-address",
                &format!("127.0.0.1:{admin}"),
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("trellis-proxy starts");
        Self { child, admin }
    }

    fn admin(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin)
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit; its status code.
    fn wait(&mut self) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "trellis-proxy did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn until_ready(process: &Process) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = client()
            .request(
                http::Request::get(process.admin("/ready"))
                    .body(Default::default())
                    .unwrap(),
            )
            .await;
        if ready.is_ok_and(|r| r.status() == 200) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "trellis-proxy never became ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn serves_a_gateway_from_istio_yaml_and_reloads_on_sighup() {
    let upstream = upstreams("web", 1).await;
    let dir = std::env::temp_dir().join(format!("trellis-standalone-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    std::fs::write(
        dir.join("gateway.yaml"),
        gateway_yaml(port, upstream[0].addr(), "hello"),
    )
    .unwrap();
    let mut process = Process::start(&dir, &["--concurrency", "2"]);
    until_ready(&process).await;

    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    assert_eq!(get(&url("/hello"), &[]).await.body, "hello");
    let got = get(&url("/anything"), &[]).await;
    assert_eq!((got.status, got.upstream()), (200, Some("web-0")));
    let dump = get(&process.admin("/config_dump"), &[]).await.json();
    assert_eq!(dump["version"], 1);
    assert!(
        dump["config"]["clusters"]
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.contains("web.example.com")),
        "{dump}"
    );
    let metrics = get(&process.admin("/stats/prometheus"), &[]).await.body;
    assert!(
        metrics.contains(
            "istio_requests_total{reporter=\"source\",source_workload=\"istio-ingressgateway\""
        ),
        "{metrics}"
    );

    // A good change is applied on SIGHUP...
    std::fs::write(
        dir.join("gateway.yaml"),
        gateway_yaml(port, upstream[0].addr(), "hello again"),
    )
    .unwrap();
    process.signal("HUP");
    eventually_async(|| async { get(&url("/hello"), &[]).await.body == "hello again" }).await;
    // ...and a broken one is refused, leaving the configuration in force.
    std::fs::write(dir.join("gateway.yaml"), "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: edge}\nspec: {servers: [{port: {number: 0}}]}\n").unwrap();
    process.signal("HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(get(&url("/hello"), &[]).await.body, "hello again");
    assert_eq!(
        get(&process.admin("/config_dump"), &[]).await.json()["version"],
        2
    );

    // SIGTERM drains and exits cleanly.
    process.signal("TERM");
    assert_eq!(process.wait(), Some(0));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn quitquitquit_drains_and_exits() {
    let upstream = upstreams("web", 1).await;
    let dir = std::env::temp_dir().join(format!("trellis-quit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("gateway.yaml"),
        gateway_yaml(free_port(), upstream[0].addr(), "hi"),
    )
    .unwrap();
    let mut process = Process::start(&dir, &[]);
    until_ready(&process).await;
    let response = send(
        &client(),
        http::Request::post(process.admin("/quitquitquit"))
            .body(Default::default())
            .unwrap(),
    )
    .await;
    assert_eq!(response.status, 200);
    assert_eq!(process.wait(), Some(0));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_broken_configuration_is_refused_with_every_problem() {
    let dir = std::env::temp_dir().join(format!("trellis-broken-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("broken.yaml"),
        "apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  servers:
  - port: {number: 80800, name: http, protocol: HTTP}
    hosts: [\"*\"]
    tsl: {}
",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_trellis-proxy"))
        .arg("--standalone")
        .arg(&dir)
        .args(["--admin-address", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("2 problem(s)"), "{stderr}");
    assert!(
        stderr.contains("broken.yaml:6: Gateway default/edge: spec.servers[0].port.number"),
        "{stderr}"
    );
    assert!(
        stderr.contains("spec.servers[0].tsl: unknown field \"tsl\""),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Polls an async condition with a deadline.
async fn eventually_async<F, Fut>(mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !condition().await {
        assert!(
            Instant::now() < deadline,
            "condition still false after 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
