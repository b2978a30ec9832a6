//! The local mesh end to end, as a user runs it: `trellis up` with the demo application in
//! real network namespaces with iptables capture (root, as CI runs), then the traffic tasks
//! of Istio's Bookinfo through the ingress gateway, mutual TLS seen on the bridge by tcpdump,
//! a STRICT PeerAuthentication against a pod without a sidecar, and `trellis down` leaving
//! nothing behind.
//!
//! One mesh serves every scenario, in order (each takes the configuration the last left).
//! `trellis-proxy` and `trellis-demo` are looked up beside `trellis`, where `cargo test
//! --workspace` builds them.

#![allow(clippy::print_stderr)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");
const BOOKINFO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../demo/bookinfo");
const POD_CIDR: &str = "10.251.0.0/24";
const BRIDGE_IP: &str = "10.251.0.1";
const SERVICE_CIDR: &str = "10.251.128.0/24";

/// A pod without a sidecar, to call others directly.
const CLIENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: client}
spec:
  selector: {matchLabels: {app: client}}
  template:
    metadata:
      labels: {app: client}
      annotations: {sidecar.istio.io/inject: "false"}
    spec:
      containers:
      - {name: sleep, image: sleep, command: [sleep, infinity]}
"#;

/// A service whose port is TCP (its name says so): reached through its virtual IP by the
/// original destination, not by an HTTP authority.
const FILES: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: files}
spec:
  selector: {app: files}
  ports: [{name: tcp-files, port: 8000}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: files}
spec:
  selector: {matchLabels: {app: files}}
  template:
    metadata:
      labels: {app: files}
    spec:
      containers:
      - name: files
        image: python
        command: [python3, -m, http.server, "8000"]
        ports: [{containerPort: 8000}]
"#;

const STRICT: &str = r#"
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec:
  mtls: {mode: STRICT}
"#;

/// The mesh under test: `trellis up` running; stopped with `trellis down` when dropped, so a
/// failing test leaves nothing behind either.
struct Mesh {
    name: String,
    run_dir: PathBuf,
    up: Child,
}

impl Mesh {
    fn trellis(&self, args: &[&str]) -> Output {
        Command::new(TRELLIS)
            .args(args)
            .args(["--mesh", &self.name])
            .arg("--run-dir")
            .arg(&self.run_dir)
            .output()
            .expect("trellis runs")
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.trellis(args);
        assert!(
            output.status.success(),
            "trellis {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn status(&self) -> Option<Value> {
        let output = self.trellis(&["status", "-o", "json"]);
        output
            .status
            .success()
            .then(|| serde_json::from_slice(&output.stdout).ok())
            .flatten()
    }

    fn apply(&self, file: &Path) {
        let out = self.ok(&["apply", "-f", file.to_str().unwrap()]);
        eprintln!("applied {}: {}", file.display(), out.trim());
    }

    /// Runs a command inside a pod's network.
    fn exec(&self, pod: &str, command: &[&str]) -> Output {
        let mut args = vec!["exec", pod, "--mesh", &self.name];
        let run_dir = self.run_dir.to_str().unwrap();
        args.extend(["--run-dir", run_dir, "--"]);
        args.extend(command);
        Command::new(TRELLIS)
            .args(&args)
            .output()
            .expect("trellis exec runs")
    }

    /// The status code `curl` gets inside a pod (`000`: no HTTP answer within 3 s).
    fn curl(&self, pod: &str, url: &str) -> String {
        let out = self.exec(
            pod,
            &[
                "curl",
                "-s",
                "-m",
                "3",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                url,
            ],
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn down(&mut self) -> String {
        let out = self.ok(&["down"]);
        let _ = self.up.wait();
        out
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        let _ = self.trellis(&["down"]);
        let _ = self.up.kill();
        let _ = self.up.wait();
    }
}

/// A helper process, killed if the test ends before it is stopped.
struct Stopped(Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 exchange on a new connection: the status and body.
fn get(address: SocketAddr, path: &str, cookie: Option<&str>) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\n{cookie}Connection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

/// Which reviews version served the page (`None`: the page failed or shows no reviews).
fn reviews_version(body: &str) -> Option<String> {
    let shown = body.split("<p class=\"reviews-version\">reviews-").nth(1)?;
    Some(shown.split('<').next()?.to_owned())
}

/// Polls `check` until it holds, or panics with `what` after `limit`.
fn eventually(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn is_root() -> bool {
    run("id", &["-u"]).trim() == "0"
}

/// `trellis up` with the mesh's files, until it says it is ready.
fn start(name: &str, files: &Path, run_dir: PathBuf, extra: &[&str]) -> Mesh {
    let started = Instant::now();
    let up = Command::new(TRELLIS)
        .arg("up")
        .arg(files)
        .args(["--mesh", name])
        .args(["--ingress", "127.0.0.1:0", "--debug-listen", "127.0.0.1:0"])
        .args(extra)
        .arg("--run-dir")
        .arg(&run_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("trellis up starts");
    let mut mesh = Mesh {
        name: name.to_owned(),
        run_dir,
        up,
    };
    let stdout = mesh.up.stdout.take().unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut said = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            eprintln!("{line}");
            said.push(line.clone());
            if line.starts_with("trellis up: ready in") {
                let _ = ready_tx.send(said.clone());
            }
        }
    });
    let said = ready_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("trellis up says it is ready");
    assert!(
        !said.iter().any(|l| l.contains("have not all acknowledged")),
        "every proxy has the mesh as started: {said:#?}"
    );
    eprintln!(
        "mesh {name} started in {:.2} s (process start to ready)",
        started.elapsed().as_secs_f64()
    );
    mesh
}

/// The demo's files, and a client pod without a sidecar, in a directory of their own.
fn demo_files(dir: &Path) -> PathBuf {
    let _ = std::fs::remove_dir_all(dir);
    let files = dir.join("mesh");
    std::fs::create_dir_all(&files).unwrap();
    for file in [
        "bookinfo.yaml",
        "gateway.yaml",
        "traffic/destination-rules.yaml",
    ] {
        let name = Path::new(file).file_name().unwrap();
        std::fs::copy(Path::new(BOOKINFO).join(file), files.join(name)).unwrap();
    }
    std::fs::write(files.join("client.yaml"), CLIENT).unwrap();
    std::fs::write(dir.join("strict.yaml"), STRICT).unwrap();
    files
}

fn traffic(name: &str) -> PathBuf {
    Path::new(BOOKINFO).join("traffic").join(name)
}

/// Root (network namespaces, iptables; CI runs as root), and `trellis-proxy` and
/// `trellis-demo` built beside `trellis`.
fn can_run() {
    assert!(
        is_root(),
        "the local mesh's tests need root (network namespaces, iptables); CI runs as root"
    );
    let bin = Path::new(TRELLIS).parent().unwrap();
    for program in ["trellis-proxy", "trellis-demo"] {
        assert!(
            bin.join(program).is_file(),
            "{program} is not built beside trellis; run `cargo build --workspace --bins`"
        );
    }
}

#[test]
fn the_demo_mesh_routes_secures_and_cleans_up() {
    can_run();
    let dir = std::env::temp_dir().join(format!("trellis-local-mesh-{}", std::process::id()));
    let files = demo_files(&dir);
    std::fs::write(files.join("files.yaml"), FILES).unwrap();
    let strict = dir.join("strict.yaml");

    // Up.
    let name = format!("t{}", std::process::id() % 100_000_000);
    let mut mesh = start(
        &name,
        &files,
        dir.join("run"),
        &["--pod-cidr", POD_CIDR, "--service-cidr", SERVICE_CIDR],
    );
    let status = mesh.status().expect("trellis status -o json");
    let pods = status["pods"].as_array().unwrap();
    assert_eq!(
        pods.len(),
        9,
        "six demo pods, files, the client and the gateway: {status:#}"
    );
    for pod in pods {
        assert_eq!(pod["phase"], "running", "{pod:#}");
    }
    let ingress: SocketAddr = status["ingress"].as_str().unwrap().parse().unwrap();
    let address_of = |workload: &str| -> String {
        pods.iter()
            .find(|p| p["workload"] == workload)
            .and_then(|p| p["address"].as_str())
            .unwrap()
            .to_owned()
    };
    let table = mesh.ok(&["status"]);
    assert!(table.contains("productpage-v1-0"), "{table}");

    // productpage answers through the ingress gateway, calling details and reviews by name.
    let (code, body) = get(ingress, "/productpage", None).expect("productpage answers");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("Book Details"), "{body}");
    assert!(reviews_version(&body).is_some(), "{body}");

    // Between pods there is only TLS: tcpdump on the bridge's ports (frames the bridge
    // forwards between pods do not pass its own interface), while pages are served.
    let capture = dir.join("bridge.pcap");
    let filter =
        format!("(tcp port 9080 or tcp port 8000) and net {POD_CIDR} and not host {BRIDGE_IP}");
    let mut tcpdump = Stopped(
        Command::new("tcpdump")
            .args(["-i", "any", "--immediate-mode", "-U", "-nn", "-w"])
            .arg(&capture)
            .arg(&filter)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tcpdump runs"),
    );
    let mut stderr = BufReader::new(tcpdump.0.stderr.take().unwrap());
    let mut said = String::new();
    while !said.contains("listening on") {
        let before = said.len();
        stderr.read_line(&mut said).unwrap();
        assert!(said.len() > before, "tcpdump did not start: {said}");
    }
    for _ in 0..10 {
        let (code, _) = get(ingress, "/productpage", None).unwrap();
        assert_eq!(code, 200);
    }
    // A new connection too, from an application's own call (captured by its pod's rules).
    let called = mesh.curl("productpage-v1", "http://details:9080/details/0");
    assert_eq!(called, "200");
    // And by the service's virtual IP, as a client that resolved the name would.
    let vip = status["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "details")
        .and_then(|s| s["vip"].as_str())
        .unwrap()
        .to_owned();
    let called = mesh.curl("productpage-v1", &format!("http://{vip}:9080/details/0"));
    assert_eq!(called, "200", "details by its virtual IP");
    // A TCP service: by its original destination, over mutual TLS like the rest.
    let called = mesh.curl("productpage-v1", "http://files:8000/");
    assert_eq!(called, "200", "files' TCP port");
    let files_log = mesh.ok(&["logs", "productpage-v1", "-c", "istio-proxy"]);
    assert!(
        files_log.contains("outbound|8000||files.default.svc.cluster.local"),
        "{files_log}"
    );
    std::thread::sleep(Duration::from_millis(300));
    run("kill", &["-INT", &tcpdump.0.id().to_string()]);
    tcpdump.0.wait().unwrap();
    stderr.read_to_string(&mut said).unwrap();
    eprintln!("{said}");
    let read = |extra: &str| -> usize {
        let filter = format!("{filter} and {extra}");
        run(
            "tcpdump",
            &["-r", capture.to_str().unwrap(), "-nn", &filter],
        )
        .lines()
        .count()
    };
    let payload = "tcp[((tcp[12:1] & 0xf0) >> 2)";
    let handshakes = read(&format!("{payload}:1] = 0x16"));
    let records = read(&format!("{payload}:1] = 0x17"));
    let plaintext = read(&format!(
        "({payload}:4] = 0x47455420 or {payload}:4] = 0x48545450)"
    ));
    let dump = run("tcpdump", &["-r", capture.to_str().unwrap(), "-nn", "-A"]);
    eprintln!(
        "bridge capture: {} packets, {handshakes} TLS handshake and {records} TLS application data segments, {plaintext} plaintext HTTP",
        dump.lines().filter(|l| l.contains(" IP ")).count()
    );
    assert!(records > 0, "TLS application data between pods");
    assert!(handshakes > 0, "the new connection's TLS handshake");
    assert_eq!(
        plaintext, 0,
        "no segment between pods starts with GET or HTTP"
    );
    assert!(!dump.contains("HTTP/1.1"), "no plaintext HTTP between pods");

    // All to v1, then the 90/10 canary over 2,000 requests.
    mesh.apply(&traffic("all-v1.yaml"));
    let mut in_a_row = 0;
    eventually("all traffic to reviews v1", Duration::from_secs(30), || {
        let version = get(ingress, "/productpage", None).and_then(|(_, b)| reviews_version(&b));
        in_a_row = if version.as_deref() == Some("v1") {
            in_a_row + 1
        } else {
            0
        };
        in_a_row >= 30
    });
    mesh.apply(&traffic("reviews-90-10.yaml"));
    eventually("the canary's v3", Duration::from_secs(30), || {
        get(ingress, "/productpage", None).and_then(|(_, b)| reviews_version(&b))
            == Some("v3".to_owned())
    });
    let (mut v1, mut v3) = (0, 0);
    let counting = Instant::now();
    for _ in 0..2000 {
        let (code, body) = get(ingress, "/productpage", None).expect("productpage answers");
        assert_eq!(code, 200, "{body}");
        match reviews_version(&body).as_deref() {
            Some("v1") => v1 += 1,
            Some("v3") => v3 += 1,
            other => panic!("reviews {other:?} under the 90/10 canary"),
        }
    }
    let share = f64::from(v1) / 20.0;
    eprintln!(
        "canary: {v1} v1 / {v3} v3 ({share:.1}% v1) in {:.1} s",
        counting.elapsed().as_secs_f64()
    );
    assert!(
        (87.0..=93.0).contains(&share),
        "90/10 within 3 points: {share}% to v1"
    );

    // Jason to v2, everyone else to v1.
    mesh.apply(&traffic("reviews-jason-v2.yaml"));
    let jason = Some("user=jason");
    eventually("jason's route to v2", Duration::from_secs(30), || {
        get(ingress, "/productpage", jason).and_then(|(_, b)| reviews_version(&b))
            == Some("v2".to_owned())
    });
    for _ in 0..50 {
        let version =
            |cookie| get(ingress, "/productpage", cookie).and_then(|(_, b)| reviews_version(&b));
        assert_eq!(version(jason).as_deref(), Some("v2"), "jason sees v2");
        assert_eq!(version(None).as_deref(), Some("v1"), "others see v1");
        assert_eq!(
            version(Some("user=alice")).as_deref(),
            Some("v1"),
            "alice sees v1"
        );
    }

    // A ratings abort for jason: the page shows the application's error path.
    mesh.apply(&traffic("ratings-abort.yaml"));
    eventually(
        "the ratings abort for jason",
        Duration::from_secs(30),
        || {
            get(ingress, "/productpage", jason).is_some_and(|(code, b)| {
                code == 200 && b.contains("Ratings service is currently unavailable")
            })
        },
    );
    let (_, body) = get(ingress, "/productpage", None).unwrap();
    assert!(
        !body.contains("unavailable"),
        "others are not affected: {body}"
    );

    // STRICT: a pod without a sidecar reaches details in plaintext until the policy holds.
    let details = format!("http://{}:9080/details/0", address_of("details-v1"));
    let from_client = || mesh.curl("client", &details);
    assert_eq!(
        from_client(),
        "200",
        "PERMISSIVE (the default) accepts plaintext"
    );
    mesh.apply(&strict);
    eventually("STRICT refusing plaintext", Duration::from_secs(30), || {
        from_client() != "200"
    });
    assert_eq!(
        from_client(),
        "000",
        "no HTTP answer at all without mutual TLS"
    );
    let (code, body) = get(ingress, "/productpage", None).unwrap();
    assert_eq!(code, 200, "pods with sidecars still talk: {body}");
    assert!(
        body.contains("Book Details") && reviews_version(&body).is_some(),
        "{body}"
    );

    // Logs are kept per container.
    let logs = mesh.ok(&["logs", "productpage-v1", "-c", "istio-proxy"]);
    assert!(
        logs.contains("outbound|9080||reviews.default.svc.cluster.local"),
        "{logs}"
    );

    // Down: nothing left.
    let before: Vec<String> = run("ip", &["-o", "netns", "list"])
        .lines()
        .filter(|l| l.starts_with(&format!("{name}-")))
        .map(|l| l.split_whitespace().next().unwrap().to_owned())
        .collect();
    assert_eq!(before.len(), 9, "a namespace per pod");
    let pids: Vec<String> = before
        .iter()
        .flat_map(|ns| {
            run("ip", &["netns", "pids", ns])
                .split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(
        pids.len(),
        16,
        "an application and a sidecar in each demo pod and files, the client alone, the gateway alone: {pids:?}"
    );
    // An application that exits takes its sidecar with it (drained), and its pod says so.
    let ratings = pods.iter().find(|p| p["workload"] == "ratings-v1").unwrap();
    let recorded = ratings["processes"].as_array().unwrap();
    assert_eq!(
        recorded.len(),
        2,
        "the sidecar, then the application: {ratings:#}"
    );
    let (proxy, app) = (&recorded[0]["pid"], &recorded[1]["pid"]);
    run("kill", &["-TERM", &app.to_string()]);
    eventually(
        "ratings' pod to show its application exited",
        Duration::from_secs(15),
        || {
            mesh.status().is_some_and(|status| {
                status["pods"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| p["workload"] == "ratings-v1" && p["phase"] == "exited")
            })
        },
    );
    assert!(
        !Path::new(&format!("/proc/{proxy}")).exists(),
        "ratings' sidecar stopped too"
    );
    assert!(mesh.ok(&["status"]).contains("Exited("));

    let up_pid = mesh.up.id();
    let said = mesh.down();
    assert!(said.contains("is down"), "{said}");
    let namespaces = run("ip", &["-o", "netns", "list"]);
    assert!(
        !namespaces.contains(&format!("{name}-")),
        "namespaces left: {namespaces}"
    );
    let links = run("ip", &["-o", "link", "show"]);
    assert!(
        !links.contains(&format!("{name}0")) && !links.contains(&format!("{name}v")),
        "links left: {links}"
    );
    let hosts = std::fs::read_dir("/etc/netns")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with(&format!("{name}-"))
                })
                .count()
        })
        .unwrap_or(0);
    assert_eq!(hosts, 0, "hosts files left");
    for pid in pids.iter().chain([&up_pid.to_string()]) {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} left"
        );
    }
    let rules = run("iptables-save", &[]);
    assert!(
        !rules.contains("TRELLIS_"),
        "capture rules on the host: {rules}"
    );
    assert!(!mesh.run_dir.join("state.json").exists());
    drop(mesh);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_capture_the_mesh_runs_on_loopback_with_the_same_routing_and_policies() {
    can_run();
    let dir = std::env::temp_dir().join(format!("trellis-loopback-mesh-{}", std::process::id()));
    let files = demo_files(&dir);
    let name = format!("l{}", std::process::id() % 100_000_000);
    let mut mesh = start(
        &name,
        &files,
        dir.join("run"),
        &[
            "--loopback",
            "--pod-cidr",
            "127.3.0.0/16",
            "--service-cidr",
            "10.253.0.0/24",
        ],
    );
    let status = mesh.status().expect("trellis status -o json");
    assert_eq!(status["mode"], "loopback", "{status:#}");
    let pods = status["pods"].as_array().unwrap().clone();
    assert_eq!(pods.len(), 8, "{status:#}");
    for pod in &pods {
        assert_eq!(pod["phase"], "running", "{pod:#}");
        assert!(
            pod["address"].as_str().unwrap().starts_with("127.3."),
            "{pod:#}"
        );
    }
    let ingress: SocketAddr = status["ingress"].as_str().unwrap().parse().unwrap();

    // The page, its calls made through each application's sidecar (HTTP_PROXY).
    let (code, body) = get(ingress, "/productpage", None).expect("productpage answers");
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("Book Details") && reviews_version(&body).is_some(),
        "{body}"
    );
    let called = mesh.curl("productpage-v1", "http://details:9080/details/0");
    assert_eq!(called, "200", "curl through HTTP_PROXY");

    // The same routing: jason to v2, everyone else to v1 (before the rule, reviews
    // answers round robin, so one v2 proves nothing: ten in a row do).
    mesh.apply(&traffic("reviews-jason-v2.yaml"));
    let jason = Some("user=jason");
    let mut in_a_row = 0;
    eventually("jason's route to v2", Duration::from_secs(30), || {
        let version = get(ingress, "/productpage", jason).and_then(|(_, b)| reviews_version(&b));
        in_a_row = if version.as_deref() == Some("v2") {
            in_a_row + 1
        } else {
            0
        };
        in_a_row >= 10
    });
    for _ in 0..20 {
        let version =
            |cookie| get(ingress, "/productpage", cookie).and_then(|(_, b)| reviews_version(&b));
        assert_eq!(version(jason).as_deref(), Some("v2"));
        assert_eq!(version(None).as_deref(), Some("v1"));
    }

    // The same policies: a plaintext client reaches details' sidecar until STRICT holds.
    let details: SocketAddr = format!(
        "{}:9080",
        pods.iter().find(|p| p["workload"] == "details-v1").unwrap()["address"]
            .as_str()
            .unwrap()
    )
    .parse()
    .unwrap();
    assert_eq!(
        get(details, "/details/0", None).map(|(c, _)| c),
        Some(200),
        "PERMISSIVE"
    );
    mesh.apply(&dir.join("strict.yaml"));
    eventually("STRICT refusing plaintext", Duration::from_secs(30), || {
        get(details, "/details/0", None).is_none()
    });
    let (code, body) = get(ingress, "/productpage", None).unwrap();
    assert_eq!(code, 200, "sidecars still talk: {body}");
    assert!(
        body.contains("Book Details") && reviews_version(&body).is_some(),
        "{body}"
    );

    // Down: no process left.
    let recorded: Vec<u64> = pods_processes(&mesh);
    assert_eq!(recorded.len(), 14, "{recorded:?}");
    let up_pid = u64::from(mesh.up.id());
    let said = mesh.down();
    assert!(said.contains("is down"), "{said}");
    for pid in recorded.iter().chain([&up_pid]) {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} left"
        );
    }
    assert!(!mesh.run_dir.join("state.json").exists());
    drop(mesh);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The pids `trellis status -o json` records for the pods' processes.
fn pods_processes(mesh: &Mesh) -> Vec<u64> {
    let status = mesh.status().expect("trellis status -o json");
    status["pods"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["processes"].as_array().unwrap().clone())
        .map(|p| p["pid"].as_u64().unwrap())
        .collect()
}
