//! A control plane and two real `trellis-proxy` processes configured by it over xDS: a client
//! sidecar (productpage) and the sidecar of reviews v1; reviews v2 and a WebSocket chat service
//! run without sidecars. While HTTP/1.1 requests (a few hundred a second), an HTTP/2 connection
//! and a WebSocket run through the client sidecar:
//!
//! 1. editing the VirtualService file moves reviews traffic from v1 to v2;
//! 2. an invalid edit is refused with its field path, and traffic stays on v2;
//! 3. the control plane dies and is started again, and a later edit still arrives;
//!
//! and no request fails, and the HTTP/2 and WebSocket connections live through it all. The
//! client sidecar holds the virtual hosts and clusters of the services it sent requests to,
//! not those of a third service (ratings) it never called; a name no service has gets 404 NR.
//!
//! The control plane runs on a tokio runtime of its own; it dies by that runtime being dropped,
//! which ends all of its tasks and closes all of its connections at once, as a crash does.

// The test reports its timings.
#![allow(clippy::print_stderr)]

mod support;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::Request;
use http_body_util::Full;
use support::*;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

const PRODUCTPAGE: &str = "127.0.0.30";
const REVIEWS_V1: &str = "127.0.0.31";
const REVIEWS_V2: &str = "127.0.0.32";
const CHAT: &str = "127.0.0.33";
/// Where reviews v1's application listens, behind its sidecar.
const REVIEWS_V1_APP: &str = "127.0.0.41";

fn mesh(reviews_port: u16, chat_port: u16) -> String {
    format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: reviews, namespace: default}}
spec: {{selector: {{app: reviews}}, ports: [{{name: http, port: 9080, targetPort: {reviews_port}}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: ratings, namespace: default}}
spec: {{selector: {{app: ratings}}, ports: [{{name: http, port: 9080}}]}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: ratings, namespace: default}}
spec: {{address: 127.0.0.34, labels: {{app: ratings}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: chat, namespace: default}}
spec: {{selector: {{app: chat}}, ports: [{{name: http, port: 8000, targetPort: {chat_port}}}]}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: productpage, namespace: default}}
spec: {{address: {PRODUCTPAGE}, labels: {{app: productpage}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: reviews-v1, namespace: default}}
spec: {{address: {REVIEWS_V1}, labels: {{app: reviews, version: v1}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: reviews-v2, namespace: default}}
spec: {{address: {REVIEWS_V2}, labels: {{app: reviews, version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: chat, namespace: default}}
spec: {{address: {CHAT}, labels: {{app: chat}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews, namespace: default}}
spec: {{host: reviews, subsets: [{{name: v1, labels: {{version: v1}}}}, {{name: v2, labels: {{version: v2}}}}]}}
"#
    )
}

fn route_to(subset: &str, weight: i64) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\n\
         metadata: {{name: reviews, namespace: default}}\n\
         spec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {{host: reviews, subset: {subset}}}\n      weight: {weight}\n"
    )
}

/// A WebSocket server that echoes, on `ip`, any port.
async fn chat(ip: &str) -> u16 {
    let listener = TcpListener::bind((ip.parse::<IpAddr>().unwrap(), 0))
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(message)) = socket.next().await {
                    if message.is_text() && socket.send(message).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// Which step of the test is running, to say where a failure happened.
static PHASE: AtomicU64 = AtomicU64::new(0);

/// What the load saw.
#[derive(Debug, Default)]
struct Seen {
    ok: AtomicU64,
    failed: Mutex<Vec<String>>,
    /// The upstream of the latest answer, per client kind.
    latest_h1: Mutex<String>,
    latest_h2: Mutex<String>,
    ws_echoes: AtomicU64,
}

impl Seen {
    async fn fail(&self, what: String) {
        let phase = PHASE.load(Ordering::Relaxed);
        self.failed
            .lock()
            .await
            .push(format!("phase {phase}: {what}"));
    }
}

fn request(outbound: SocketAddr) -> Request<Full<Bytes>> {
    Request::get(format!("http://{outbound}/reviews/1"))
        .header("host", "reviews:9080")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// Runs the HTTP/1.1 clients, the HTTP/2 client and the WebSocket until `stop`.
fn load(
    outbound: SocketAddr,
    seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    // Four HTTP/1.1 clients with keep-alive, about 75 requests a second each.
    for _ in 0..4 {
        let (seen, stop) = (seen.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let client = client();
            let mut tick = tokio::time::interval(Duration::from_millis(13));
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                match client.request(request(outbound)).await {
                    Ok(response) if response.status() == 200 => {
                        let name = response
                            .headers()
                            .get(NAME_HEADER)
                            .map(|v| v.to_str().unwrap_or("").to_owned());
                        *seen.latest_h1.lock().await = name.unwrap_or_default();
                        seen.ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(response) => seen.fail(format!("h1: {}", response.status())).await,
                    Err(error) => seen.fail(format!("h1: {error}")).await,
                }
            }
        }));
    }
    // One HTTP/2 connection, kept for the whole test.
    {
        let (seen, stop) = (seen.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let stream = TcpStream::connect(outbound).await.unwrap();
            let (mut sender, connection) = hyper::client::conn::http2::handshake(
                hyper_util::rt::TokioExecutor::new(),
                hyper_util::rt::TokioIo::new(stream),
            )
            .await
            .unwrap();
            tokio::spawn(connection);
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let request = Request::get("http://reviews:9080/reviews/1")
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                match sender.send_request(request).await {
                    Ok(response) if response.status() == 200 => {
                        let name = response
                            .headers()
                            .get(NAME_HEADER)
                            .map(|v| v.to_str().unwrap_or("").to_owned());
                        *seen.latest_h2.lock().await = name.unwrap_or_default();
                        seen.ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(response) => seen.fail(format!("h2: {}", response.status())).await,
                    Err(error) => {
                        seen.fail(format!("h2 (the connection is kept): {error}"))
                            .await
                    }
                }
            }
        }));
    }
    // One WebSocket, kept for the whole test.
    tasks.push(tokio::spawn(async move {
        let stream = TcpStream::connect(outbound).await.unwrap();
        let url = "ws://chat:8000/room";
        let (mut socket, _) = match tokio_tungstenite::client_async(url, stream).await {
            Ok(upgraded) => upgraded,
            Err(error) => return seen.fail(format!("ws upgrade: {error}")).await,
        };
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            i += 1;
            let text = format!("message {i}");
            if let Err(error) = socket.send(Message::text(text.clone())).await {
                return seen.fail(format!("ws send: {error}")).await;
            }
            match socket.next().await {
                Some(Ok(message)) if message == Message::text(text) => {
                    seen.ws_echoes.fetch_add(1, Ordering::Relaxed);
                }
                other => return seen.fail(format!("ws: {other:?}")).await,
            }
        }
        let _ = socket.close(None).await;
    }));
    tasks
}

/// Waits until both HTTP clients' latest answers come from `upstream`; how long that took.
async fn until_served_by(seen: &Seen, upstream: &str) -> Duration {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(20);
    loop {
        if *seen.latest_h1.lock().await == upstream && *seen.latest_h2.lock().await == upstream {
            return started.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "traffic did not move to {upstream} within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until `count` more requests have succeeded.
async fn more_requests(seen: &Seen, count: u64) {
    let target = seen.ok.load(Ordering::Relaxed) + count;
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.ok.load(Ordering::Relaxed) < target {
        assert!(Instant::now() < deadline, "requests stalled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn write(dir: &Path, file: &str, text: &str) {
    // Through a temporary file and a rename, as editors and `kubectl`-style tools do.
    let temporary = dir.join(format!(".{file}.tmp"));
    std::fs::write(&temporary, text).unwrap();
    std::fs::rename(&temporary, dir.join(file)).unwrap();
}

fn get_json(address: SocketAddr, path: &str) -> serde_json::Value {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    serde_json::from_str(text.split_once("\r\n\r\n").unwrap().1).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_changes_invalid_files_and_a_control_plane_restart_lose_no_request() {
    let dir: PathBuf = std::env::temp_dir().join(format!("trellis-xds-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    // Applications: reviews v1 (behind its sidecar), v2 and chat (without).
    let v1 = upstream(REVIEWS_V1_APP, 0, "v1").await;
    let port = v1.addr().port();
    let _v2 = upstream(REVIEWS_V2, port, "v2").await;
    let chat_port = chat(CHAT).await;
    std::fs::write(dir.join("mesh.yaml"), mesh(port, chat_port)).unwrap();
    write(&dir, "reviews.yaml", &route_to("v1", 100));

    let (control, xds, debug) = control_plane(&dir, None);
    let (_reviews_sidecar, _) = sidecar("reviews-v1", xds, REVIEWS_V1, REVIEWS_V1_APP);
    let (_productpage_sidecar, outbound) = sidecar("productpage", xds, PRODUCTPAGE, "127.0.0.1");

    // Configured: v1 answers through both sidecars.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(response) = client().request(request(outbound)).await
            && response
                .headers()
                .get(NAME_HEADER)
                .is_some_and(|v| v == "v1")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the sidecars were not configured within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let seen = Arc::new(Seen::default());
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = load(outbound, seen.clone(), stop.clone());
    until_served_by(&seen, "v1").await;
    more_requests(&seen, 100).await;

    PHASE.store(1, Ordering::Relaxed);
    // 1. An edit moves the traffic.
    write(&dir, "reviews.yaml", &route_to("v2", 100));
    let moved = until_served_by(&seen, "v2").await;
    eprintln!("an edit moved the traffic in {moved:?}");
    more_requests(&seen, 100).await;

    PHASE.store(2, Ordering::Relaxed);
    // 2. An invalid edit is refused with its field path; the traffic stays.
    write(&dir, "reviews.yaml", &route_to("v1", -5));
    let deadline = Instant::now() + Duration::from_secs(20);
    let refused = loop {
        let config = get_json(debug, "/debug/config");
        if let Some(errors) = config["refused"]
            .as_object()
            .and_then(|r| r.values().next())
            .cloned()
        {
            break errors;
        }
        assert!(
            Instant::now() < deadline,
            "the invalid edit was not refused within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        refused.to_string().contains("spec.http[0].route[0].weight"),
        "{refused}"
    );
    more_requests(&seen, 300).await;
    assert_eq!(*seen.latest_h1.lock().await, "v2");

    PHASE.store(3, Ordering::Relaxed);
    // 3. The control plane dies; the sidecars keep serving; it comes back and pushes again.
    drop(control);
    more_requests(&seen, 300).await;
    let (_control, _, _) = control_plane(&dir, Some(xds));
    PHASE.store(4, Ordering::Relaxed);
    PHASE.store(5, Ordering::Relaxed);
    write(&dir, "reviews.yaml", &route_to("v1", 100));
    let moved = until_served_by(&seen, "v1").await;
    eprintln!("after the restart, an edit moved the traffic in {moved:?}");
    more_requests(&seen, 100).await;

    PHASE.store(6, Ordering::Relaxed);
    // 6. On demand: the client sidecar holds what it used, and a name no service has is a 404.
    let mut unknown = request(outbound);
    unknown
        .headers_mut()
        .insert(http::header::HOST, "nowhere:9080".parse().unwrap());
    let response = client().request(unknown).await.unwrap();
    assert_eq!(response.status(), http::StatusCode::NOT_FOUND);
    let admin: SocketAddr = format!("{PRODUCTPAGE}:{ADMIN_PORT}").parse().unwrap();
    let dump = get_json(admin, "/config_dump");
    let config = &dump["config"];
    let hosts: Vec<&str> = config["routes"]["outbound"]["virtual_hosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["name"].as_str())
        .collect();
    assert!(hosts.iter().any(|h| h.starts_with("reviews.")), "{hosts:?}");
    assert!(
        hosts.iter().all(|h| !h.starts_with("ratings.")),
        "{hosts:?}"
    );
    let clusters: Vec<&String> = config["clusters"].as_object().unwrap().keys().collect();
    assert!(
        clusters.iter().all(|c| !c.contains("ratings")),
        "{clusters:?}"
    );

    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    let failed = seen.failed.lock().await.clone();
    let ok = seen.ok.load(Ordering::Relaxed);
    eprintln!(
        "{ok} requests succeeded, {} WebSocket echoes",
        seen.ws_echoes.load(Ordering::Relaxed)
    );
    assert!(failed.is_empty(), "{} failed: {failed:#?}", failed.len());
    assert!(seen.ws_echoes.load(Ordering::Relaxed) > 20);
    let _ = std::fs::remove_dir_all(&dir);
}
