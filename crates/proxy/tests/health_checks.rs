//! Active health checking through real sockets: an endpoint failing its HTTP, TCP or gRPC check
//! leaves balancing before any request fails on it, and comes back when it passes again.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use support::*;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use trellis_proxy_config::{Cluster, Duration, HealthCheck, HealthCheckKind, LoadBalancer};

/// An upstream whose `/healthz` answers 200 or 503 as `well` says; every other path answers
/// 200 and is counted.
struct Checked {
    address: SocketAddr,
    well: Arc<AtomicBool>,
    requests: Arc<AtomicU64>,
}

async fn checked() -> Checked {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let well = Arc::new(AtomicBool::new(true));
    let requests = Arc::new(AtomicU64::new(0));
    let (state, count) = (well.clone(), requests.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (state, count) = (state.clone(), count.clone());
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                    let mut response = Response::new(Full::new(Bytes::from_static(b"checked")));
                    if request.uri().path() == "/healthz" {
                        if !state.load(Ordering::SeqCst) {
                            *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
                        }
                    } else {
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                    async move { Ok::<_, std::convert::Infallible>(response) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Checked {
        address,
        well,
        requests,
    }
}

fn health_check(check: HealthCheckKind) -> HealthCheck {
    HealthCheck {
        check,
        interval: Duration::from_millis(50),
        timeout: Duration::from_millis(1000),
        unhealthy_threshold: 2,
        healthy_threshold: 2,
    }
}

async fn proxy_to(mut c: Cluster, check: HealthCheckKind) -> Running {
    c.health_check = Some(health_check(check));
    start(http_config(
        vec![forward("all", vec![], &[("c", 100)])],
        vec![c],
    ))
    .await
}

fn healthy(proxy: &Running, index: usize) -> bool {
    let snapshot = proxy.proxy.config.load();
    snapshot.cluster("c").unwrap().1.is_healthy(index)
}

#[tokio::test]
async fn an_endpoint_failing_its_http_check_gets_no_requests_until_it_passes_again() {
    let sick = checked().await;
    let well = upstreams("well", 1).await;
    let endpoints = [sick.address, well[0].addr()];
    let proxy = proxy_to(
        cluster("c", &endpoints, LoadBalancer::RoundRobin),
        HealthCheckKind::Http {
            path: "/healthz".into(),
        },
    )
    .await;
    sick.well.store(false, Ordering::SeqCst);
    eventually("the failing endpoint leaves balancing", || {
        !healthy(&proxy, 0)
    })
    .await;
    let before = sick.requests.load(Ordering::SeqCst);
    for _ in 0..20 {
        let got = get(&proxy.url("/"), &[]).await;
        assert_eq!(got.upstream(), Some("well-0"));
    }
    assert_eq!(sick.requests.load(Ordering::SeqCst), before);
    assert!(healthy(&proxy, 1));

    sick.well.store(true, Ordering::SeqCst);
    eventually("it comes back once it passes", || healthy(&proxy, 0)).await;
    for _ in 0..10 {
        assert_eq!(get(&proxy.url("/"), &[]).await.status, 200);
    }
    assert!(sick.requests.load(Ordering::SeqCst) > before);
}

#[tokio::test]
async fn a_dead_endpoint_fails_its_tcp_check_before_any_request_fails_on_it() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = listener.local_addr().unwrap();
    drop(listener);
    let well = upstreams("well", 1).await;
    let proxy = proxy_to(
        cluster("c", &[dead, well[0].addr()], LoadBalancer::RoundRobin),
        HealthCheckKind::Tcp,
    )
    .await;
    eventually("the dead endpoint leaves balancing", || !healthy(&proxy, 0)).await;
    // No retries on this route: a request sent to the dead endpoint would fail.
    for _ in 0..20 {
        assert_eq!(get(&proxy.url("/"), &[]).await.status, 200);
    }
}

#[tokio::test]
async fn the_grpc_health_protocol_says_when_a_server_stops_serving() {
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("shop.Cart", ServingStatus::Serving)
        .await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .serve_with_incoming(service, TcpIncoming::from(listener)),
    );
    let proxy = proxy_to(
        h2_cluster("c", &[address]),
        HealthCheckKind::Grpc {
            service: "shop.Cart".into(),
        },
    )
    .await;
    reporter
        .set_service_status("shop.Cart", ServingStatus::NotServing)
        .await;
    eventually("NOT_SERVING takes it out", || !healthy(&proxy, 0)).await;
    reporter
        .set_service_status("shop.Cart", ServingStatus::Serving)
        .await;
    // Back in only after two passes: the check reads SERVING as a pass.
    eventually("SERVING brings it back", || healthy(&proxy, 0)).await;
}
