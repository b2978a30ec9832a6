//! Retries and timeouts through real sockets: connection failures, failing responses, slow
//! upstreams, and the replies and flags when every try fails.

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::*;
use tokio::net::TcpListener;
use trellis_proxy_config::{Action, Duration, LoadBalancer, RetryOn, RetryPolicy, Route};

/// A port nothing listens on.
async fn dead_address() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    address
}

/// What a scripted upstream does with its `n`-th request (counting from 0): wait, then answer
/// a status and a body.
type Script = fn(u64) -> (std::time::Duration, u16, &'static str);

/// An upstream that answers each request as `script` says, counting the requests it gets.
async fn scripted(script: Script) -> (SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicU64::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let counter = counter.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_request| {
                    let (delay, status, body) = script(counter.fetch_add(1, Ordering::SeqCst));
                    async move {
                        tokio::time::sleep(delay).await;
                        let mut response =
                            Response::new(Full::new(Bytes::from_static(body.as_bytes())));
                        *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (address, seen)
}

const NOW: std::time::Duration = std::time::Duration::ZERO;
const LATE: std::time::Duration = std::time::Duration::from_secs(5);

/// A proxy sending `route` to cluster `c`, whose one endpoint is `address`.
async fn proxy_for(route: Route, address: SocketAddr) -> Running {
    start(http_config(
        vec![route],
        vec![cluster("c", &[address], LoadBalancer::RoundRobin)],
    ))
    .await
}

fn with_policy(mut route: Route, retry: Option<RetryPolicy>, timeout: Option<Duration>) -> Route {
    if let Action::Forward(forward) = &mut route.action {
        forward.retry = retry;
        forward.timeout = timeout;
    }
    route
}

fn policy(attempts: u32, on: &[RetryOn], codes: &[u16]) -> RetryPolicy {
    RetryPolicy {
        attempts,
        per_try_timeout: None,
        retry_on: on.iter().copied().collect(),
        retriable_status_codes: codes.iter().copied().collect::<BTreeSet<_>>(),
        backoff: Duration::from_millis(1),
    }
}

#[tokio::test]
async fn connect_failures_are_retried_on_another_endpoint() {
    let live = upstreams("live", 1).await;
    let dead = dead_address().await;
    let route = with_policy(
        forward("r", vec![], &[("c", 100)]),
        Some(policy(2, &[RetryOn::ConnectFailure], &[])),
        None,
    );
    let clusters = vec![cluster(
        "c",
        &[dead, live[0].addr()],
        LoadBalancer::RoundRobin,
    )];
    let proxy = start(http_config(vec![route], clusters)).await;
    for _ in 0..10 {
        let got = get(&proxy.url("/"), &[]).await;
        assert_eq!((got.status, got.upstream()), (200, Some("live-0")));
    }
}

#[tokio::test]
async fn without_retries_a_connect_failure_is_503_uf() {
    let dead = dead_address().await;
    let route = with_policy(forward("r", vec![], &[("c", 100)]), None, None);
    let proxy = proxy_for(route, dead).await;
    let got = get(&proxy.url("/"), &[]).await;
    assert_eq!(
        (got.status, got.body.as_str()),
        (
            503,
            "upstream connect error or disconnect/reset before headers"
        )
    );
}

#[tokio::test]
async fn retriable_statuses_are_retried_until_success() {
    let (address, seen) = scripted(|n| {
        if n < 2 {
            (NOW, 503, "done")
        } else {
            (NOW, 200, "done")
        }
    })
    .await;
    let route = with_policy(
        forward("r", vec![], &[("c", 100)]),
        Some(policy(3, &[RetryOn::RetriableStatusCodes], &[503])),
        None,
    );
    let proxy = proxy_for(route, address).await;
    let got = get(&proxy.url("/"), &[]).await;
    assert_eq!((got.status, got.body.as_str()), (200, "done"));
    assert_eq!(
        seen.load(Ordering::SeqCst),
        3,
        "two failures and the success"
    );
}

#[tokio::test]
async fn the_last_response_comes_back_when_retries_run_out() {
    let (address, seen) = scripted(|_| (NOW, 502, "done")).await;
    let route = with_policy(
        forward("r", vec![], &[("c", 100)]),
        Some(policy(2, &[RetryOn::GatewayError], &[])),
        None,
    );
    let proxy = proxy_for(route, address).await;
    let got = get(&proxy.url("/"), &[]).await;
    assert_eq!(got.status, 502);
    assert_eq!(
        seen.load(Ordering::SeqCst),
        3,
        "the first try and two retries"
    );
}

#[tokio::test]
async fn statuses_outside_the_policy_are_not_retried() {
    let (address, seen) = scripted(|n| {
        if n < 1 {
            (NOW, 500, "done")
        } else {
            (NOW, 200, "done")
        }
    })
    .await;
    let route = with_policy(
        forward("r", vec![], &[("c", 100)]),
        Some(policy(3, &[RetryOn::GatewayError], &[])),
        None,
    );
    let proxy = proxy_for(route, address).await;
    assert_eq!(get(&proxy.url("/"), &[]).await.status, 500);
    assert_eq!(seen.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_slow_upstream_times_out_with_504() {
    let upstream = upstreams("slow", 1).await;
    let route = with_policy(
        forward("r", vec![], &[("c", 100)]),
        None,
        Some(Duration::from_millis(200)),
    );
    let proxy = start(http_config(
        vec![route],
        vec![cluster(
            "c",
            &[upstream[0].addr()],
            LoadBalancer::RoundRobin,
        )],
    ))
    .await;
    let got = get(&proxy.url("/delay/5000"), &[]).await;
    assert_eq!(
        (got.status, got.body.as_str()),
        (504, "upstream request timeout")
    );
    let got = get(&proxy.url("/delay/1"), &[]).await;
    assert_eq!(got.status, 200);
}

#[tokio::test]
async fn per_try_timeouts_are_retried_within_the_route_timeout() {
    let (address, seen) = scripted(|n| {
        if n < 1 {
            (LATE, 200, "fast")
        } else {
            (NOW, 200, "fast")
        }
    })
    .await;
    let mut retry = policy(2, &[RetryOn::GatewayError], &[]);
    retry.per_try_timeout = Some(Duration::from_millis(300));
    let route = with_policy(
        forward("r", vec![], &[("c", 100)]),
        Some(retry),
        Some(Duration::from_millis(10_000)),
    );
    let proxy = proxy_for(route, address).await;
    let got = get(&proxy.url("/"), &[]).await;
    assert_eq!((got.status, got.body.as_str()), (200, "fast"));
    assert_eq!(seen.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn per_try_timeouts_end_in_504_when_retries_run_out() {
    let (address, seen) = scripted(|_| (LATE, 200, "fast")).await;
    let mut retry = policy(3, &[RetryOn::GatewayError], &[]);
    retry.per_try_timeout = Some(Duration::from_millis(100));
    let route = with_policy(
        forward("r", vec![], &[("c", 100)]),
        Some(retry),
        Some(Duration::from_millis(30_000)),
    );
    let proxy = proxy_for(route, address).await;
    let got = get(&proxy.url("/"), &[]).await;
    assert_eq!(
        (got.status, got.body.as_str()),
        (504, "upstream request timeout")
    );
    assert_eq!(
        seen.load(Ordering::SeqCst),
        4,
        "the first try and three retries"
    );
}

#[tokio::test]
async fn the_route_timeout_bounds_all_tries() {
    let (address, _) = scripted(|_| (LATE, 200, "fast")).await;
    let mut retry = policy(1000, &[RetryOn::GatewayError], &[]);
    retry.per_try_timeout = Some(Duration::from_millis(100));
    let route = with_policy(
        forward("r", vec![], &[("c", 100)]),
        Some(retry),
        Some(Duration::from_millis(400)),
    );
    let proxy = proxy_for(route, address).await;
    let got = get(&proxy.url("/"), &[]).await;
    assert_eq!(
        (got.status, got.body.as_str()),
        (504, "upstream request timeout")
    );
}
