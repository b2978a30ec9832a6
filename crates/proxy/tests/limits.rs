//! Circuit breaking through real sockets: past a cluster's connection, pending-request and
//! request limits a request fails at once with 503 `UO`, the upstream never has more requests
//! at a time than the limits allow, and a connection carries at most its share of requests.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use support::*;
use tokio::net::TcpListener;
use tokio::sync::watch;
use trellis_proxy::upstream::Stat;
use trellis_proxy_config::{Action, ConnectionLimits, LoadBalancer, RetryBudget, RetryPolicy};

/// An upstream that holds every request until the gate opens, then answers `status`; it counts
/// its connections, its requests, the requests it holds now and the most it ever held at once.
struct Gated {
    address: SocketAddr,
    gate: watch::Sender<bool>,
    connections: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
    holding: Arc<AtomicU64>,
    most: Arc<AtomicU64>,
}

async fn gated() -> Gated {
    answering(200).await
}

async fn answering(status: u16) -> Gated {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (gate, open) = watch::channel(false);
    let connections = Arc::new(AtomicU64::new(0));
    let requests = Arc::new(AtomicU64::new(0));
    let holding = Arc::new(AtomicU64::new(0));
    let most = Arc::new(AtomicU64::new(0));
    let (accepted, total) = (connections.clone(), requests.clone());
    let (now, peak) = (holding.clone(), most.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            accepted.fetch_add(1, Ordering::SeqCst);
            let (open, total, now, peak) = (open.clone(), total.clone(), now.clone(), peak.clone());
            tokio::spawn(async move {
                let service = service_fn(move |_request| {
                    total.fetch_add(1, Ordering::SeqCst);
                    let (mut open, now, peak) = (open.clone(), now.clone(), peak.clone());
                    async move {
                        let held = now.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(held, Ordering::SeqCst);
                        let _ = open.wait_for(|open| *open).await;
                        now.fetch_sub(1, Ordering::SeqCst);
                        let mut response = Response::new(Full::new(Bytes::from_static(b"done")));
                        *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Gated {
        address,
        gate,
        connections,
        requests,
        holding,
        most,
    }
}

/// A proxy forwarding everything to `upstream` through a cluster with `limits`.
async fn limited(upstream: SocketAddr, limits: ConnectionLimits) -> Running {
    limited_with(upstream, limits, None).await
}

/// The same, with a retry policy on the route.
async fn limited_with(
    upstream: SocketAddr,
    limits: ConnectionLimits,
    retry: Option<RetryPolicy>,
) -> Running {
    let mut c = cluster("c", &[upstream], LoadBalancer::RoundRobin);
    c.limits = Some(limits);
    let mut route = forward("all", vec![], &[("c", 100)]);
    if let Action::Forward(forward) = &mut route.action {
        forward.retry = retry;
    }
    start(http_config(vec![route], vec![c])).await
}

/// Sends `n` requests at once; returns their statuses as they finish.
fn send_all(proxy: &Running, n: usize) -> tokio::sync::mpsc::UnboundedReceiver<(u16, String)> {
    let (done, finished) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..n {
        let (url, done) = (proxy.url("/"), done.clone());
        tokio::spawn(async move {
            let got = get(&url, &[]).await;
            let _ = done.send((got.status, got.body));
        });
    }
    finished
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_connection_and_pending_limits_requests_fail_at_once_with_uo() {
    let upstream = gated().await;
    let proxy = limited(
        upstream.address,
        ConnectionLimits {
            max_connections: Some(2),
            max_pending_requests: Some(1),
            ..ConnectionLimits::default()
        },
    )
    .await;
    let mut finished = send_all(&proxy, 10);
    // While the upstream holds two requests and one waits for a connection, the other seven
    // are refused without waiting for anything.
    for _ in 0..7 {
        let (status, body) = finished.recv().await.unwrap();
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("overflow"), "{body}");
    }
    eventually("the upstream holds two requests", || {
        upstream.holding.load(Ordering::SeqCst) == 2
    })
    .await;
    eventually("seven overflows are counted as 503 UO", || {
        proxy.requests_total(&[("response_code", "503"), ("response_flags", "UO")]) == 7
    })
    .await;
    upstream.gate.send(true).unwrap();
    for _ in 0..3 {
        assert_eq!(finished.recv().await.unwrap().0, 200);
    }
    assert!(
        upstream.most.load(Ordering::SeqCst) <= 2,
        "the upstream held {} requests at once",
        upstream.most.load(Ordering::SeqCst)
    );
    assert!(upstream.connections.load(Ordering::SeqCst) <= 2);
    let snapshot = proxy.proxy.config.load();
    assert_eq!(
        snapshot.cluster("c").unwrap().1.stats.get(Stat::Overflows),
        7
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_request_limit_requests_fail_at_once_with_uo() {
    let upstream = gated().await;
    let proxy = limited(
        upstream.address,
        ConnectionLimits {
            max_requests: Some(3),
            ..ConnectionLimits::default()
        },
    )
    .await;
    let mut finished = send_all(&proxy, 8);
    for _ in 0..5 {
        assert_eq!(finished.recv().await.unwrap().0, 503);
    }
    eventually("the upstream holds three requests", || {
        upstream.holding.load(Ordering::SeqCst) == 3
    })
    .await;
    upstream.gate.send(true).unwrap();
    for _ in 0..3 {
        assert_eq!(finished.recv().await.unwrap().0, 200);
    }
    assert_eq!(upstream.most.load(Ordering::SeqCst), 3);
    // The places are given back: the next requests go through.
    for _ in 0..5 {
        assert_eq!(get(&proxy.url("/"), &[]).await.status, 200);
    }
}

#[tokio::test]
async fn a_connection_carries_at_most_its_share_of_requests() {
    let upstream = gated().await;
    upstream.gate.send(true).unwrap();
    let proxy = limited(
        upstream.address,
        ConnectionLimits {
            max_requests_per_connection: Some(2),
            ..ConnectionLimits::default()
        },
    )
    .await;
    let client = client();
    for _ in 0..6 {
        let request = Request::get(proxy.url("/")).body(Full::new(Bytes::new()));
        assert_eq!(send(&client, request.unwrap()).await.status, 200);
    }
    assert_eq!(
        upstream.connections.load(Ordering::SeqCst),
        3,
        "six requests, two a connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_budget_keeps_retries_from_multiplying_the_load_in_an_outage() {
    // Every answer is 503, which the mesh's default policy retries twice.
    let upstream = answering(503).await;
    let proxy = limited_with(
        upstream.address,
        ConnectionLimits {
            retry_budget: Some(RetryBudget {
                percent: 0.0,
                min_concurrency: 1,
            }),
            ..ConnectionLimits::default()
        },
        Some(RetryPolicy::mesh_default()),
    )
    .await;
    let mut finished = send_all(&proxy, 20);
    eventually("the upstream holds the twenty requests", || {
        upstream.holding.load(Ordering::SeqCst) == 20
    })
    .await;
    // The outage answers them all at once: one retry at a time fits the budget.
    upstream.gate.send(true).unwrap();
    for _ in 0..20 {
        assert_eq!(finished.recv().await.unwrap().0, 503);
    }
    let tries = upstream.requests.load(Ordering::SeqCst);
    assert!(
        tries < 30,
        "{tries} tries reached the upstream (without the budget, 60)"
    );
    let snapshot = proxy.proxy.config.load();
    let overflows = snapshot
        .cluster("c")
        .unwrap()
        .1
        .stats
        .get(Stat::RetryOverflows);
    assert!(overflows >= 10, "only {overflows} retries were refused");
}
