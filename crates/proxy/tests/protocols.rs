//! The protocols the proxy speaks, through real sockets: HTTP/1.1 keep-alive and connection
//! pooling, HTTP/2 (prior knowledge) on both sides, bodies far larger than any buffer streamed
//! both ways, WebSocket upgrades, the TCP proxy, and protocol detection.

mod support;

use std::net::SocketAddr;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use trellis_proxy_config::{
    Duration, HeaderMatch, ListenerProtocol, LoadBalancer, RouteMatch, StringMatch,
};

/// Growth of the process's resident memory that streaming may cause: buffers, not bodies.
const MEMORY_BOUND: u64 = 15 << 20;

fn prefix(p: &str) -> Vec<RouteMatch> {
    vec![RouteMatch {
        path: Some(StringMatch::Prefix(p.into())),
        ..RouteMatch::default()
    }]
}

fn header_is(name: &str, value: &str) -> Vec<RouteMatch> {
    vec![RouteMatch {
        headers: vec![HeaderMatch {
            name: name.into(),
            value: StringMatch::Exact(value.into()),
            absent: false,
        }],
        ..RouteMatch::default()
    }]
}

async fn json_of(response: http::Response<hyper::body::Incoming>) -> serde_json::Value {
    assert_eq!(response.status(), StatusCode::OK);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("the body arrives")
        .to_bytes();
    serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&body)))
}

#[tokio::test]
async fn http1_keep_alive_reuses_both_connections() {
    track_panics();
    let recorder = Recorder::start().await;
    let clusters = vec![cluster("c", &[recorder.address], LoadBalancer::RoundRobin)];
    let proxy = start(http_config(
        vec![forward("all", vec![], &[("c", 100)])],
        clusters,
    ))
    .await;
    let pool = proxy
        .proxy
        .config
        .load()
        .cluster("c")
        .expect("cluster c")
        .1
        .pool(0)
        .clone();
    let mut sender = connect_h1::<Empty<Bytes>>(proxy.address).await;
    for i in 0..5 {
        sender
            .ready()
            .await
            .expect("the downstream connection stays open");
        let request = Request::get(format!("/keep/{i}"))
            .header("host", "web")
            .body(Empty::new())
            .unwrap();
        let answer = json_of(sender.send_request(request).await.expect("a response")).await;
        assert_eq!(answer["path"], format!("/keep/{i}"));
        assert_eq!(
            answer["connection"], 1,
            "every request reuses the first upstream connection"
        );
        // The upstream connection goes back to the pool once the response has been read.
        eventually("the upstream connection is idle in the pool", || {
            pool.idle_connections() == 1
        })
        .await;
    }
    assert_eq!(recorder.connections(), 1);
    assert_eq!(
        proxy.proxy.connections.open(),
        1,
        "one downstream connection carried everything"
    );
    assert_no_task_panicked();
}

#[tokio::test]
async fn http2_clients_reach_http1_and_http2_upstreams() {
    track_panics();
    let recorder = Recorder::start().await;
    let clusters = vec![
        cluster("h1", &[recorder.address], LoadBalancer::RoundRobin),
        h2_cluster("h2", &[recorder.address]),
    ];
    let routes = vec![
        forward("one", prefix("/one"), &[("h1", 100)]),
        forward("two", prefix("/two"), &[("h2", 100)]),
    ];
    let proxy = start(http_config(routes, clusters)).await;
    let client = h2_client();
    let requests = (0..10).flat_map(|i| {
        ["/one", "/two"].map(|path| {
            let request = Request::post(proxy.url(&format!("{path}/{i}")))
                .body(Full::new(Bytes::from_static(b"hello")))
                .unwrap();
            let client = client.clone();
            async move { (path, send(&client, request).await) }
        })
    });
    let answers = futures_util::future::join_all(requests).await;
    let mut h2_connections = std::collections::BTreeSet::new();
    for (path, got) in answers {
        assert_eq!(got.status, 200, "{}", got.body);
        let answer = got.json();
        assert_eq!(answer["bytes"], 5, "the request body arrives");
        match path {
            "/one" => assert_eq!(answer["version"], "HTTP/1.1"),
            _ => {
                assert_eq!(answer["version"], "HTTP/2.0");
                h2_connections.insert(answer["connection"].as_u64());
            }
        }
    }
    assert_eq!(
        h2_connections.len(),
        1,
        "HTTP/2 requests share one upstream connection: {h2_connections:?}"
    );
    assert_eq!(
        proxy.proxy.connections.open(),
        1,
        "the HTTP/2 client multiplexed one connection"
    );
    assert_no_task_panicked();
}

#[tokio::test]
async fn large_responses_stream_through_without_buffering() {
    track_panics();
    let _serial = memory_lock().await;
    const SIZE: u64 = 50 << 20;
    let upstream = upstreams("big", 1).await;
    let clusters = vec![
        cluster("h1", &[upstream[0].addr()], LoadBalancer::RoundRobin),
        h2_cluster("h2", &[upstream[0].addr()]),
    ];
    let routes = vec![
        forward("h2", header_is("x-leg", "h2"), &[("h2", 100)]),
        forward("h1", vec![], &[("h1", 100)]),
    ];
    let proxy = start(http_config(routes, clusters)).await;
    for (leg, client) in [("h1", client()), ("h2", h2_client())] {
        let request = Request::get(proxy.url(&format!("/stream/{SIZE}")))
            .header("x-leg", leg)
            .body(Full::default())
            .unwrap();
        let watch = MemoryWatch::start();
        let response = client.request(request).await.expect("the proxy answers");
        assert_eq!(response.status(), 200);
        let received = drain_body(response.into_body())
            .await
            .expect("the body arrives whole");
        let growth = watch.finish();
        assert_eq!(received, SIZE, "{leg}");
        assert!(
            growth < MEMORY_BOUND,
            "{leg}: memory grew by {} MiB while streaming {} MiB",
            growth >> 20,
            SIZE >> 20
        );
    }
    assert_no_task_panicked();
}

#[tokio::test]
async fn large_request_bodies_stream_through_without_buffering() {
    track_panics();
    let _serial = memory_lock().await;
    const SIZE: u64 = 20 << 20;
    let recorder = Recorder::start().await;
    let clusters = vec![
        cluster("h1", &[recorder.address], LoadBalancer::RoundRobin),
        h2_cluster("h2", &[recorder.address]),
    ];
    let routes = vec![
        forward("h2", header_is("x-leg", "h2"), &[("h2", 100)]),
        forward("h1", vec![], &[("h1", 100)]),
    ];
    let proxy = start(http_config(routes, clusters)).await;

    let watch = MemoryWatch::start();
    let mut h1 = connect_h1::<Chunks>(proxy.address).await;
    let request = Request::post("/upload")
        .header("host", "web")
        .header("content-length", SIZE)
        .body(Chunks::new(Some(SIZE)))
        .unwrap();
    let answer = json_of(h1.send_request(request).await.expect("a response")).await;
    let growth = watch.finish();
    assert_eq!(
        (answer["bytes"].as_u64(), answer["version"].as_str()),
        (Some(SIZE), Some("HTTP/1.1"))
    );
    assert!(
        growth < MEMORY_BOUND,
        "h1: memory grew by {} MiB while uploading {} MiB",
        growth >> 20,
        SIZE >> 20
    );

    let watch = MemoryWatch::start();
    let mut h2 = connect_h2::<Chunks>(proxy.address).await;
    let request = Request::post(proxy.url("/upload"))
        .header("x-leg", "h2")
        .body(Chunks::new(Some(SIZE)))
        .unwrap();
    let answer = json_of(h2.send_request(request).await.expect("a response")).await;
    let growth = watch.finish();
    assert_eq!(
        (answer["bytes"].as_u64(), answer["version"].as_str()),
        (Some(SIZE), Some("HTTP/2.0"))
    );
    assert!(
        growth < MEMORY_BOUND,
        "h2: memory grew by {} MiB while uploading {} MiB",
        growth >> 20,
        SIZE >> 20
    );
    assert_no_task_panicked();
}

/// A WebSocket server that greets each client, then echoes what it gets until the client
/// closes.
async fn websocket_echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                let _ = socket.send(Message::text("welcome")).await;
                while let Some(Ok(message)) = socket.next().await {
                    if message.is_text() || message.is_binary() {
                        let _ = socket.send(message).await;
                    }
                }
            });
        }
    });
    address
}

#[tokio::test]
async fn websockets_carry_messages_both_ways() {
    track_panics();
    let server = websocket_echo().await;
    let clusters = vec![cluster("ws", &[server], LoadBalancer::RoundRobin)];
    let proxy = start(http_config(
        vec![forward("ws", prefix("/chat"), &[("ws", 100)])],
        clusters,
    ))
    .await;
    let stream = TcpStream::connect(proxy.address).await.unwrap();
    let url = format!("ws://{}/chat", proxy.address);
    let (mut socket, response) = tokio_tungstenite::client_async(url, stream)
        .await
        .expect("the upgrade goes through");
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);

    let next = |message: Option<Result<Message, _>>| {
        message.expect("the socket is open").expect("a message")
    };
    assert_eq!(
        next(socket.next().await),
        Message::text("welcome"),
        "the server speaks first"
    );
    for i in 0..20 {
        socket
            .send(Message::text(format!("message {i}")))
            .await
            .unwrap();
        assert_eq!(
            next(socket.next().await),
            Message::text(format!("message {i}"))
        );
    }
    let large = vec![7u8; 1 << 20];
    socket.send(Message::binary(large.clone())).await.unwrap();
    assert_eq!(next(socket.next().await), Message::binary(large));
    socket.close(None).await.unwrap();
    while let Some(Ok(message)) = socket.next().await {
        assert!(
            message.is_close(),
            "only the close handshake is left: {message:?}"
        );
    }
    eventually("the upgraded connection ends", || {
        proxy.proxy.connections.open() == 0
    })
    .await;
    assert_no_task_panicked();
}

/// A TCP server that sends `greeting` first (if any), then echoes what it reads; it closes the
/// connection after echoing data that ends in `bye`.
async fn tcp_echo(greeting: Option<&'static [u8]>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Some(greeting) = greeting {
                    let _ = stream.write_all(greeting).await;
                }
                let mut buffer = vec![0u8; 64 * 1024];
                loop {
                    let n = match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if stream.write_all(&buffer[..n]).await.is_err() {
                        return;
                    }
                    if buffer[..n].ends_with(b"bye") {
                        return; // dropping the stream closes the connection
                    }
                }
            });
        }
    });
    address
}

fn tcp_cluster(name: &str, address: SocketAddr) -> trellis_proxy_config::Cluster {
    cluster(name, &[address], LoadBalancer::RoundRobin)
}

#[tokio::test]
async fn the_tcp_proxy_round_trips_bytes_and_closes_with_the_upstream() {
    track_panics();
    let echo = tcp_echo(None).await;
    let config = listener_config(
        ListenerProtocol::Tcp {
            cluster: "echo".into(),
        },
        vec![],
        vec![tcp_cluster("echo", echo)],
    );
    let proxy = start(config).await;
    let mut stream = TcpStream::connect(proxy.address).await.unwrap();
    stream.write_all(b"hello").await.unwrap();
    let mut hello = [0u8; 5];
    stream.read_exact(&mut hello).await.unwrap();
    assert_eq!(&hello, b"hello");

    let payload: Vec<u8> = (0..4 << 20).map(|i: u32| (i % 251) as u8).collect();
    let (mut read, mut write) = stream.into_split();
    let sent = payload.clone();
    let writer = tokio::spawn(async move {
        write.write_all(&sent).await.unwrap();
        write
    });
    let mut echoed = vec![0u8; payload.len()];
    read.read_exact(&mut echoed).await.unwrap();
    assert!(echoed == payload, "4 MiB come back unchanged");
    let mut write = writer.await.unwrap();

    write.write_all(b"bye").await.unwrap();
    assert_eq!(
        read_until_closed(&mut read).await,
        b"bye",
        "the upstream's close reaches the client"
    );
    drop((read, write));
    eventually("the proxy lets go of the connection", || {
        proxy.proxy.connections.open() == 0
    })
    .await;
    assert_no_task_panicked();
}

#[tokio::test]
async fn detection_sends_http_to_the_routes_and_anything_else_to_the_tcp_cluster() {
    track_panics();
    let echo = tcp_echo(Some(b"hi:")).await;
    let protocol = ListenerProtocol::Detect {
        route_table: "routes".into(),
        tcp_cluster: Some("echo".into()),
        detection_timeout: Some(Duration::from_millis(200)),
    };
    let config = listener_config(
        protocol,
        vec![direct("web", vec![], 200, "routed")],
        vec![tcp_cluster("echo", echo)],
    );
    let proxy = start(config).await;

    assert_eq!(get(&proxy.url("/"), &[]).await.body, "routed", "HTTP/1.1");
    let got = send(
        &h2_client(),
        Request::get(proxy.url("/")).body(Full::default()).unwrap(),
    )
    .await;
    assert_eq!(got.body, "routed", "HTTP/2 with prior knowledge");

    // A client that speaks first, in something that is not HTTP.
    let mut stream = TcpStream::connect(proxy.address).await.unwrap();
    stream.write_all(b"\x00\x01opaque bye").await.unwrap();
    assert_eq!(
        read_until_closed(&mut stream).await,
        b"hi:\x00\x01opaque bye"
    );

    // A client that waits for the server (as MySQL clients do): after the detection timeout the
    // connection goes to the TCP cluster, whose greeting arrives.
    let mut stream = TcpStream::connect(proxy.address).await.unwrap();
    let mut greeting = [0u8; 3];
    stream.read_exact(&mut greeting).await.unwrap();
    assert_eq!(&greeting, b"hi:");
    stream.write_all(b"late bye").await.unwrap();
    assert_eq!(read_until_closed(&mut stream).await, b"late bye");
    assert_no_task_panicked();
}
