//! What HTTP/1.1 clients may do that a well-behaved library client seldom does, over raw
//! sockets: pipelining, `expect: 100-continue`, HTTP/1.0, chunked uploads, and hanging up while
//! the request is in progress.

mod support;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use trellis_proxy_config::LoadBalancer;

/// One response as read off the wire.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// Reads one response with a `content-length` from `stream`, keeping what follows it in
/// `buffer`.
async fn read_answer(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Answer {
    let read = async {
        loop {
            let mut fields = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut fields);
            if let httparse::Status::Complete(length) =
                response.parse(buffer).expect("a valid response head")
            {
                let headers: Vec<(String, String)> = response
                    .headers
                    .iter()
                    .map(|h| {
                        let value = String::from_utf8_lossy(h.value).into_owned();
                        (h.name.to_owned(), value)
                    })
                    .collect();
                let status = response.code.expect("a status");
                let body_length: usize = headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                    .map_or(0, |(_, v)| v.parse().expect("a length"));
                if buffer.len() >= length + body_length {
                    let body = buffer[length..length + body_length].to_vec();
                    buffer.drain(..length + body_length);
                    return Answer {
                        status,
                        headers,
                        body,
                    };
                }
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.expect("the proxy answers");
            assert!(n > 0, "closed with {:?}", String::from_utf8_lossy(buffer));
            buffer.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .expect("an answer in time")
}

async fn recording_proxy() -> (Running, Recorder) {
    let recorder = Recorder::start().await;
    let clusters = vec![cluster("c", &[recorder.address], LoadBalancer::RoundRobin)];
    let proxy = start(http_config(
        vec![forward("all", vec![], &[("c", 100)])],
        clusters,
    ))
    .await;
    (proxy, recorder)
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    track_panics();
    let (proxy, _recorder) = recording_proxy().await;
    let mut stream = TcpStream::connect(proxy.address).await.unwrap();
    stream
        .write_all(
            b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n\
              POST /second HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
              GET /third HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        .await
        .unwrap();
    let mut buffer = Vec::new();
    for (path, bytes) in [("/first", 0), ("/second", 5), ("/third", 0)] {
        let answer = read_answer(&mut stream, &mut buffer).await;
        assert_eq!(answer.status, 200, "{path}");
        let json = answer.json();
        assert_eq!(
            (json["path"].as_str(), json["bytes"].as_u64()),
            (Some(path), Some(bytes))
        );
    }
    assert_no_task_panicked();
}

#[tokio::test]
async fn a_client_that_expects_100_continue_is_told_to_send_its_body() {
    track_panics();
    let (proxy, _recorder) = recording_proxy().await;
    let mut stream = TcpStream::connect(proxy.address).await.unwrap();
    stream
        .write_all(
            b"PUT /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
        )
        .await
        .unwrap();
    let mut interim = Vec::new();
    let wait = async {
        while !interim.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            assert_eq!(
                stream.read(&mut byte).await.unwrap(),
                1,
                "the connection closed"
            );
            interim.push(byte[0]);
        }
    };
    tokio::time::timeout(PATIENCE, wait)
        .await
        .expect("100 Continue in time");
    assert_eq!(interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(b"body").await.unwrap();
    let answer = read_answer(&mut stream, &mut Vec::new()).await;
    assert_eq!(
        (answer.status, answer.json()["bytes"].as_u64()),
        (200, Some(4))
    );
    assert_no_task_panicked();
}

#[tokio::test]
async fn http10_connections_stay_open_only_when_the_client_asks() {
    track_panics();
    let (proxy, _recorder) = recording_proxy().await;
    let mut stream = TcpStream::connect(proxy.address).await.unwrap();
    stream
        .write_all(b"GET /once HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut stream).await;
    assert_eq!(
        status_of(&answer),
        Some(200),
        "{}",
        String::from_utf8_lossy(&answer)
    );

    let mut stream = TcpStream::connect(proxy.address).await.unwrap();
    let mut buffer = Vec::new();
    for path in ["/a", "/b"] {
        let request = format!("GET {path} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let answer = read_answer(&mut stream, &mut buffer).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("connection"), Some("keep-alive"));
        assert_eq!(answer.json()["path"], path);
    }
    assert_no_task_panicked();
}

#[tokio::test]
async fn chunked_uploads_reach_the_endpoint_and_the_connection_goes_on() {
    track_panics();
    let (proxy, recorder) = recording_proxy().await;
    let mut stream = TcpStream::connect(proxy.address).await.unwrap();
    stream
        .write_all(
            b"POST /chunks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
              5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n",
        )
        .await
        .unwrap();
    let mut buffer = Vec::new();
    let answer = read_answer(&mut stream, &mut buffer).await;
    assert_eq!(
        (answer.status, answer.json()["bytes"].as_u64()),
        (200, Some(11))
    );
    stream
        .write_all(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_answer(&mut stream, &mut buffer).await;
    assert_eq!(answer.json()["path"], "/next");
    assert_eq!(recorder.body_bytes(), 11);
    assert_no_task_panicked();
}

#[tokio::test]
async fn a_client_that_hangs_up_cancels_its_request_upstream() {
    track_panics();
    // An endpoint that reads the request and never answers; it reports when the proxy closes
    // the connection.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = silent.local_addr().unwrap();
    let (arrived_tx, arrived_rx) = tokio::sync::oneshot::channel();
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut connection, _) = silent.accept().await.unwrap();
        let mut sink = [0u8; 4096];
        let mut arrived = Some(arrived_tx);
        while connection.read(&mut sink).await.is_ok_and(|n| n > 0) {
            if let Some(arrived) = arrived.take() {
                let _ = arrived.send(());
            }
        }
        let _ = closed_tx.send(());
    });
    let clusters = vec![cluster("c", &[address], LoadBalancer::RoundRobin)];
    let proxy = start(http_config(
        vec![forward("all", vec![], &[("c", 100)])],
        clusters,
    ))
    .await;
    let mut stream = TcpStream::connect(proxy.address).await.unwrap();
    stream
        .write_all(b"GET /never HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::timeout(PATIENCE, arrived_rx)
        .await
        .expect("the request reaches the endpoint")
        .expect("the endpoint says so");
    drop(stream);
    tokio::time::timeout(PATIENCE, closed_rx)
        .await
        .expect("the proxy closes the upstream connection")
        .expect("the endpoint saw it");
    eventually("the client's connection is gone", || {
        proxy.proxy.connections.open() == 0
    })
    .await;
    assert_no_task_panicked();
}
