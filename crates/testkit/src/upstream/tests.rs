//! The upstream through real sockets on `127.0.0.1`, with hyper's client over HTTP/1.1 and h2c.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::*;

/// Long enough for anything in these tests on a loaded machine; only a hang reaches it.
const DEADLINE: Duration = Duration::from_secs(20);

async fn h1(addr: SocketAddr) -> (http1::SendRequest<Full<Bytes>>, JoinHandle<()>) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .expect("h1 handshake");
    let task = tokio::spawn(async move {
        let _ = connection.await;
    });
    (sender, task)
}

async fn h2(addr: SocketAddr) -> http2::SendRequest<Full<Bytes>> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (sender, connection) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
        .await
        .expect("h2 handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    sender
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header("host", "upstream.test")
        .body(Full::default())
        .expect("request")
}

struct Answer {
    status: StatusCode,
    version: Version,
    headers: http::HeaderMap,
    body: Bytes,
    frames: usize,
}

async fn read(response: http::Response<hyper::body::Incoming>) -> Answer {
    let (head, mut body) = response.into_parts();
    let mut bytes = Vec::new();
    let mut frames = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("body frame").into_data() {
            frames += 1;
            bytes.extend_from_slice(&data);
        }
    }
    Answer {
        status: head.status,
        version: head.version,
        headers: head.headers,
        body: bytes.into(),
        frames,
    }
}

async fn send_h1(
    sender: &mut http1::SendRequest<Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> Answer {
    sender.ready().await.expect("connection ready");
    read(sender.send_request(request).await.expect("response")).await
}

fn json(answer: &Answer) -> serde_json::Value {
    serde_json::from_slice(&answer.body).expect("echo answers JSON")
}

#[tokio::test]
async fn plain_answers_keep_the_http1_connection_alive() {
    let upstream = Upstream::spawn(UpstreamConfig {
        body_size: 100,
        ..Default::default()
    })
    .await
    .expect("spawn");
    let (mut sender, _connection) = h1(upstream.addr()).await;
    for _ in 0..3 {
        let answer = send_h1(&mut sender, get("/anything")).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.body, Bytes::from(vec![b'x'; 100]));
        assert_eq!(answer.headers["content-length"], "100");
        assert!(answer.headers.get("connection").is_none());
    }
    assert_eq!(upstream.requests(), 3);
}

#[tokio::test]
async fn h2c_is_served_on_the_same_port() {
    let upstream = Upstream::spawn(UpstreamConfig {
        body_size: 7,
        ..Default::default()
    })
    .await
    .expect("spawn");
    let sender = h2(upstream.addr()).await;
    let requests = (0..10).map(|_| {
        let mut sender = sender.clone();
        async move { read(sender.send_request(get("/")).await.expect("response")).await }
    });
    let answers: Vec<Answer> = futures_join_all(requests).await;
    for answer in answers {
        assert_eq!(answer.version, Version::HTTP_2);
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.body, Bytes::from_static(b"xxxxxxx"));
    }
    assert_eq!(upstream.requests(), 10);
}

/// Runs futures concurrently on this task, keeping their order.
async fn futures_join_all<F: Future<Output = Answer> + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<Answer> {
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut answers = Vec::new();
    for handle in handles {
        answers.push(handle.await.expect("request task"));
    }
    answers
}

#[tokio::test]
async fn echo_describes_the_http1_request() {
    let config = UpstreamConfig {
        name: Some(HeaderValue::from_static("v2")),
        ..Default::default()
    };
    let upstream = Upstream::spawn(config).await.expect("spawn");
    let (mut sender, _connection) = h1(upstream.addr()).await;
    let request = Request::post("/echo/deep?q=1&r=2")
        .header("host", "shop.test:8080")
        .header("x-thing", "a")
        .header("x-thing", "b")
        .body(Full::new(Bytes::from_static(b"hello")))
        .expect("request");
    let answer = send_h1(&mut sender, request).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers[NAME_HEADER], "v2");
    assert_eq!(answer.headers["content-type"], "application/json");
    let echo = json(&answer);
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/echo/deep");
    assert_eq!(echo["query"], "q=1&r=2");
    assert_eq!(echo["authority"], "shop.test:8080");
    assert_eq!(echo["version"], "HTTP/1.1");
    assert_eq!(echo["headers"]["x-thing"], "a, b");
    assert_eq!(echo["body"], "hello");
    assert_eq!(echo["upstream"], "v2");
}

#[tokio::test]
async fn echo_reports_the_h2_authority() {
    let upstream = Upstream::spawn(UpstreamConfig::default())
        .await
        .expect("spawn");
    let mut sender = h2(upstream.addr()).await;
    let request = Request::get("http://reviews.test/echo")
        .body(Full::default())
        .expect("request");
    let answer = read(sender.send_request(request).await.expect("response")).await;
    let echo = json(&answer);
    assert_eq!(echo["version"], "HTTP/2.0");
    assert_eq!(echo["authority"], "reviews.test");
    assert_eq!(echo["upstream"], serde_json::Value::Null);
}

#[tokio::test]
async fn status_answers_the_code_asked_for() {
    let upstream = Upstream::spawn(UpstreamConfig::default())
        .await
        .expect("spawn");
    let (mut sender, _connection) = h1(upstream.addr()).await;
    for (path, status) in [
        ("/status/503", 503),
        ("/status/204", 204),
        ("/status/418", 418),
        ("/status/x", 400),
    ] {
        let answer = send_h1(&mut sender, get(path)).await;
        assert_eq!(answer.status.as_u16(), status, "{path}");
        if status != 400 {
            assert!(answer.body.is_empty(), "{path}");
        }
    }
}

#[tokio::test]
async fn delay_answers_no_sooner_than_asked() {
    let upstream = Upstream::spawn(UpstreamConfig {
        body_size: 3,
        ..Default::default()
    })
    .await
    .expect("spawn");
    let (mut sender, _connection) = h1(upstream.addr()).await;
    let started = Instant::now();
    let answer = send_h1(&mut sender, get("/delay/50")).await;
    // A lower bound only: a timer never fires early, however loaded the machine is.
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, Bytes::from_static(b"xxx"));
}

#[tokio::test]
async fn stream_sends_exactly_the_bytes_asked_for_in_chunks() {
    let upstream = Upstream::spawn(UpstreamConfig::default())
        .await
        .expect("spawn");
    let (mut sender, _connection) = h1(upstream.addr()).await;
    let answer = send_h1(&mut sender, get("/stream/100000")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body.len(), 100_000);
    assert!(answer.headers.get("content-length").is_none());
    assert_eq!(answer.headers["transfer-encoding"], "chunked");
    assert!(answer.frames > 1);
    let empty = send_h1(&mut sender, get("/stream/0")).await;
    assert!(empty.body.is_empty());
    let answer = read(
        h2(upstream.addr())
            .await
            .send_request(get("/stream/40000"))
            .await
            .expect("h2"),
    )
    .await;
    assert_eq!(answer.body.len(), 40_000);
}

#[tokio::test]
async fn shutdown_finishes_requests_in_flight_and_closes_idle_connections() {
    let upstream = Upstream::spawn(UpstreamConfig::default())
        .await
        .expect("spawn");
    let (mut idle, idle_connection) = h1(upstream.addr()).await;
    send_h1(&mut idle, get("/")).await;
    let (mut busy, _busy_connection) = h1(upstream.addr()).await;
    let in_flight = tokio::spawn(async move { send_h1(&mut busy, get("/delay/300")).await.status });
    let deadline = Instant::now() + DEADLINE;
    while upstream.requests() < 2 {
        assert!(
            Instant::now() < deadline,
            "the delayed request never arrived"
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::timeout(DEADLINE, upstream.shutdown())
        .await
        .expect("shutdown drains");
    let status = tokio::time::timeout(DEADLINE, in_flight)
        .await
        .expect("in flight")
        .expect("task");
    assert_eq!(status, StatusCode::OK);
    tokio::time::timeout(DEADLINE, idle_connection)
        .await
        .expect("idle connection closed")
        .expect("task");
}

#[tokio::test]
async fn serve_returns_when_its_shutdown_signal_fires() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, UpstreamConfig::default(), async {
        let _ = stopped.await;
    }));
    let (mut sender, _connection) = h1(addr).await;
    assert_eq!(send_h1(&mut sender, get("/")).await.status, StatusCode::OK);
    stop.send(()).expect("server running");
    tokio::time::timeout(DEADLINE, server)
        .await
        .expect("serve returned")
        .expect("task");
}
