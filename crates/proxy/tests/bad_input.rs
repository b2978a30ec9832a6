//! Input a well-behaved client or upstream would never send, through real sockets: malformed
//! requests, oversized and endless headers, clients that stall, upstreams that reset, and
//! bodies that never end. The proxy answers what can be answered, closes what must be closed,
//! never panics, never buffers without bound, and goes on serving.

mod support;

use std::net::SocketAddr;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use trellis_proxy::listener::Limits;
use trellis_proxy::upstream::Stat;
use trellis_proxy_config::{LoadBalancer, RouteMatch, StringMatch};

const UPSTREAM_FAILED: &str = "upstream connect error or disconnect/reset before headers";

fn prefix(p: &str) -> Vec<RouteMatch> {
    vec![RouteMatch {
        path: Some(StringMatch::Prefix(p.into())),
        ..RouteMatch::default()
    }]
}

/// A proxy that answers `ok` itself on every path.
async fn answering_proxy(limits: Limits) -> Running {
    start_with(
        http_config(vec![direct("ok", vec![], 200, "ok")], vec![]),
        limits,
    )
    .await
}

async fn still_serves(proxy: &Running) {
    let got = get(&proxy.url("/after"), &[]).await;
    assert_eq!(
        (got.status, got.body.as_str()),
        (200, "ok"),
        "the proxy goes on serving"
    );
}

fn text(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

#[tokio::test]
async fn malformed_requests_get_400_and_their_connection_closes() {
    track_panics();
    let proxy = answering_proxy(Limits::default()).await;
    let inputs: [&[u8]; 10] = [
        b"\x01\x02\x03 garbage\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nx(y): 1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nx-bad: a\x00b\r\n\r\n",
        b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy",
        // Framing a request two ways, or in a way the proxy cannot read, is refused.
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
    ];
    for input in inputs {
        let answer = exchange_raw(proxy.address, input.to_vec()).await;
        assert_eq!(
            status_of(&answer),
            Some(400),
            "{:?} got {:?}",
            text(input),
            text(&answer)
        );
    }
    still_serves(&proxy).await;
    assert_no_task_panicked();
}

#[tokio::test]
async fn headers_over_64_kib_get_431() {
    track_panics();
    let proxy = answering_proxy(Limits::default()).await;
    let one_huge = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(70 * 1024)
    );
    let answer = exchange_raw(proxy.address, one_huge.into_bytes()).await;
    assert_eq!(status_of(&answer), Some(431), "{}", text(&answer));

    let many: String = (0..2000).map(|i| format!("x-h{i}: {i}\r\n")).collect();
    let answer = exchange_raw(
        proxy.address,
        format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n").into_bytes(),
    )
    .await;
    assert_eq!(status_of(&answer), Some(431), "{}", text(&answer));
    still_serves(&proxy).await;
    assert_no_task_panicked();
}

#[tokio::test]
async fn a_flood_of_headers_is_cut_off_at_the_limit() {
    track_panics();
    let _serial = memory_lock().await;
    let proxy = answering_proxy(Limits::default()).await;
    // 32 MiB of header lines that never end: the proxy must give up after its limit, not read
    // (or keep) them all.
    let mut flood = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
    let line = b"x-flood: 0123456789abcdef0123456789abcdef\r\n";
    flood.extend(line.iter().cycle().take(32 << 20));
    let watch = MemoryWatch::start();
    let answer = exchange_raw(proxy.address, flood).await;
    let growth = watch.finish();
    assert_eq!(status_of(&answer), Some(431), "{}", text(&answer));
    // The flood itself (32 MiB) was made before the watch started; the proxy's part is small.
    assert!(growth < 15 << 20, "memory grew by {} MiB", growth >> 20);
    still_serves(&proxy).await;
    assert_no_task_panicked();
}

#[tokio::test]
async fn a_client_that_stalls_mid_request_is_closed_by_the_header_timeout() {
    track_panics();
    let limits = Limits {
        header_read_timeout: std::time::Duration::from_secs(1),
        ..Limits::default()
    };
    let proxy = answering_proxy(limits).await;
    // `exchange_raw` keeps the client's side open, so only the proxy's timeout can end these.
    let answer = exchange_raw(
        proxy.address,
        b"GET / HTTP/1.1\r\nHost: x\r\nx-slow: 1".to_vec(),
    )
    .await;
    assert!(
        answer.is_empty() || status_of(&answer) == Some(408),
        "{}",
        text(&answer)
    );
    eventually("the stalled connection is gone", || {
        proxy.proxy.connections.open() == 0
    })
    .await;
    still_serves(&proxy).await;
    assert_no_task_panicked();
}

#[tokio::test]
async fn a_client_that_says_nothing_is_closed_by_the_header_timeout() {
    track_panics();
    let limits = Limits {
        header_read_timeout: std::time::Duration::from_secs(1),
        ..Limits::default()
    };
    let proxy = answering_proxy(limits).await;
    for start in [&b""[..], b"PRI * HTTP/2.0\r\n", b"G"] {
        let answer = exchange_raw(proxy.address, start.to_vec()).await;
        assert!(
            answer.is_empty() || status_of(&answer) == Some(408),
            "{:?}: {}",
            text(start),
            text(&answer)
        );
    }
    eventually("the silent connections are gone", || {
        proxy.proxy.connections.open() == 0
    })
    .await;
    assert_no_task_panicked();
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_by_the_idle_timeout() {
    track_panics();
    let limits = Limits {
        idle_timeout: std::time::Duration::from_secs(1),
        ..Limits::default()
    };
    let proxy = answering_proxy(limits).await;
    // A real HTTP/2 client: one request, then nothing. The connection is alive (settings
    // exchanged) but idle, and only the idle timeout can end it.
    let mut sender = connect_h2::<http_body_util::Empty<Bytes>>(proxy.address).await;
    let request = Request::get(format!("http://{}/", proxy.address))
        .body(http_body_util::Empty::new())
        .unwrap();
    let response = sender.send_request(request).await.expect("a response");
    drain_body(response.into_body())
        .await
        .expect("the whole body");
    eventually("the idle connection is closed", || {
        proxy.proxy.connections.open() == 0
    })
    .await;
    assert_no_task_panicked();
}

#[tokio::test]
async fn an_idle_keep_alive_connection_outlives_the_header_timeout_until_the_idle_timeout() {
    track_panics();
    let limits = Limits {
        header_read_timeout: std::time::Duration::from_millis(300),
        idle_timeout: std::time::Duration::from_secs(2),
    };
    let proxy = answering_proxy(limits).await;
    let mut stream = tokio::net::TcpStream::connect(proxy.address).await.unwrap();
    let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    for round in 0..2 {
        stream.write_all(request).await.unwrap();
        let mut answer = Vec::new();
        while !answer.ends_with(b"ok") {
            let mut buffer = [0u8; 1024];
            let n = stream.read(&mut buffer).await.unwrap();
            assert!(
                n > 0,
                "round {round}: the connection closed: {}",
                text(&answer)
            );
            answer.extend_from_slice(&buffer[..n]);
        }
        assert_eq!(status_of(&answer), Some(200), "{}", text(&answer));
        // Waiting between requests is not sending a head slowly: the header timeout has
        // nothing to time until the next request's first byte.
        tokio::time::sleep(limits.header_read_timeout * 3).await;
    }
    eventually("the idle connection is closed", || {
        proxy.proxy.connections.open() == 0
    })
    .await;
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest).await;
    assert!(rest.is_empty(), "{}", text(&rest));
    assert_no_task_panicked();
}

/// How a misbehaving upstream fails its one connection.
#[derive(Clone, Copy)]
enum Reset {
    /// Reads the request head, then resets.
    AfterRequestHead,
    /// Reads the request head, starts the response head, then resets.
    InResponseHead,
    /// Sends a response head promising 100,000 bytes, sends 1,000, then resets.
    InResponseBody,
}

async fn resetting_upstream(reset: Reset) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buffer = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                let sent: &[u8] = match reset {
                    Reset::AfterRequestHead => b"",
                    Reset::InResponseHead => b"HTTP/1.1 200 OK\r\nContent-",
                    Reset::InResponseBody => b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n",
                };
                let _ = stream.write_all(sent).await;
                if matches!(reset, Reset::InResponseBody) {
                    let _ = stream.write_all(&[b'x'; 1000]).await;
                }
                let _ = stream.set_zero_linger();
                drop(stream); // with SO_LINGER 0: a reset, not a close
            });
        }
    });
    address
}

#[tokio::test]
async fn an_upstream_reset_is_503_uc_and_the_proxy_keeps_serving() {
    track_panics();
    let healthy = upstreams("ok", 1).await;
    let clusters = vec![
        cluster(
            "after-head",
            &[resetting_upstream(Reset::AfterRequestHead).await],
            LoadBalancer::RoundRobin,
        ),
        cluster(
            "in-head",
            &[resetting_upstream(Reset::InResponseHead).await],
            LoadBalancer::RoundRobin,
        ),
        cluster(
            "in-body",
            &[resetting_upstream(Reset::InResponseBody).await],
            LoadBalancer::RoundRobin,
        ),
        cluster("ok", &[healthy[0].addr()], LoadBalancer::RoundRobin),
    ];
    let routes = vec![
        forward("after-head", prefix("/after-head"), &[("after-head", 100)]),
        forward("in-head", prefix("/in-head"), &[("in-head", 100)]),
        forward("in-body", prefix("/in-body"), &[("in-body", 100)]),
        forward("ok", vec![], &[("ok", 100)]),
    ];
    let proxy = start(http_config(routes, clusters)).await;

    for name in ["after-head", "in-head"] {
        for _ in 0..3 {
            let got = get(&proxy.url(&format!("/{name}")), &[]).await;
            assert_eq!(
                (got.status, got.body.as_str()),
                (503, UPSTREAM_FAILED),
                "{name}"
            );
        }
        // UC (upstream connection termination), not UF: the endpoint was reached.
        let snapshot = proxy.proxy.config.load();
        let stats = &snapshot.cluster(name).expect("the cluster").1.stats;
        assert_eq!(
            (stats.get(Stat::Resets), stats.get(Stat::ConnectFailures)),
            (3, 0),
            "{name}"
        );
        assert_eq!(get(&proxy.url("/fine"), &[]).await.status, 200);
    }
    let uc = [("response_code", "503"), ("response_flags", "UC")];
    eventually("the six resets are counted as 503 UC", || {
        proxy.requests_total(&uc) == 6
    })
    .await;

    // Once the response has started it is the client's: it sees the body break off.
    let response = client()
        .request(
            Request::get(proxy.url("/in-body"))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .expect("response headers");
    assert_eq!(response.status(), 200);
    let body = drain_body(response.into_body()).await;
    assert!(
        body.is_err(),
        "a body cut short must not look complete: {body:?}"
    );
    // The upstream broke it off, so the request is counted as an upstream termination (UC),
    // not as the client leaving (DC).
    let cut = [("response_code", "200"), ("response_flags", "UC")];
    eventually("the cut body is counted as 200 UC", || {
        proxy.requests_total(&cut) == 1
    })
    .await;
    assert_eq!(get(&proxy.url("/fine"), &[]).await.status, 200);
    eventually("every downstream connection is gone", || {
        proxy.proxy.connections.open() == 0
    })
    .await;
    assert_no_task_panicked();
}

#[tokio::test]
async fn an_endless_chunked_body_streams_without_growing_memory() {
    track_panics();
    let _serial = memory_lock().await;
    let recorder = Recorder::start().await;
    let clusters = vec![cluster(
        "sink",
        &[recorder.address],
        LoadBalancer::RoundRobin,
    )];
    let proxy = start(http_config(
        vec![forward("sink", vec![], &[("sink", 100)])],
        clusters,
    ))
    .await;

    let watch = MemoryWatch::start();
    let mut sender = connect_h1::<Chunks>(proxy.address).await;
    let request = Request::post("/endless")
        .header("host", "sink")
        .body(Chunks::new(None))
        .unwrap();
    let upload = tokio::spawn(async move { sender.send_request(request).await });
    eventually("64 MiB reach the upstream", || {
        recorder.body_bytes() >= 64 << 20
    })
    .await;
    let growth = watch.finish();
    assert!(
        growth < 15 << 20,
        "memory grew by {} MiB while 64 MiB went through",
        growth >> 20
    );

    upload.abort();
    eventually("the abandoned upload's connection is gone", || {
        proxy.proxy.connections.open() == 0
    })
    .await;
    assert_no_task_panicked();
}
