//! Outlier detection through real sockets: an endpoint that fails is ejected, requests keep
//! succeeding meanwhile (retries go to the others), and it comes back once it heals.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::*;
use tokio::net::TcpListener;
use trellis_proxy::upstream::Stat;
use trellis_proxy_config::{Duration, LoadBalancer, OutlierDetection, RetryPolicy, Route};

/// An upstream that, while `sick`, answers half of its requests (at random) with 503; it
/// counts the requests it gets.
struct Flaky {
    address: SocketAddr,
    sick: Arc<AtomicBool>,
    requests: Arc<AtomicU64>,
}

async fn flaky() -> Flaky {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let sick = Arc::new(AtomicBool::new(true));
    let requests = Arc::new(AtomicU64::new(0));
    let (state, count) = (sick.clone(), requests.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (state, count) = (state.clone(), count.clone());
            tokio::spawn(async move {
                let service = service_fn(move |_request| {
                    count.fetch_add(1, Ordering::Relaxed);
                    let failing = state.load(Ordering::Relaxed) && fastrand::bool();
                    async move {
                        let mut response = Response::new(Full::new(Bytes::from_static(b"flaky")));
                        if failing {
                            *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
                        }
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Flaky {
        address,
        sick,
        requests,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_endpoint_is_ejected_requests_still_succeed_and_it_returns_once_healed() {
    let good = upstreams("good", 2).await;
    let bad = flaky().await;
    let endpoints = [good[0].addr(), bad.address, good[1].addr()];
    let mut c = cluster("c", &endpoints, LoadBalancer::RoundRobin);
    c.outlier_detection = Some(OutlierDetection {
        consecutive_5xx: Some(5),
        consecutive_gateway_errors: None,
        interval: Duration::from_millis(1000),
        base_ejection_time: Duration::from_millis(500),
        max_ejection_percent: 34,
        min_health_percent: 0,
    });
    let route = forward("all", vec![], &[("c", 100)]);
    let route = Route {
        action: match route.action {
            trellis_proxy_config::Action::Forward(mut f) => {
                f.retry = Some(RetryPolicy::mesh_default());
                trellis_proxy_config::Action::Forward(f)
            }
            other => other,
        },
        ..route
    };
    let proxy = start(http_config(vec![route], vec![c])).await;
    let runtime = || proxy.proxy.config.load().cluster("c").unwrap().1.clone();

    // 10,000 requests, 16 at a time.
    let url = proxy.url("/");
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let client = client();
                let mut ok = 0u32;
                for _ in 0..625 {
                    let request = Request::get(&url).body(Full::new(Bytes::new())).unwrap();
                    if client
                        .request(request)
                        .await
                        .is_ok_and(|r| r.status() == 200)
                    {
                        ok += 1;
                    }
                }
                ok
            })
        })
        .collect();
    let mut succeeded = 0;
    for task in tasks {
        succeeded += task.await.unwrap();
    }
    assert!(
        succeeded >= 9_990,
        "{succeeded} of 10,000 requests succeeded, fewer than 99.9%"
    );
    let ejections = runtime().stats.get(Stat::Ejections);
    assert!(ejections >= 1, "the failing endpoint was never ejected");

    // Healed, it comes back: it leaves the ejected state and gets requests again.
    bad.sick.store(false, Ordering::Relaxed);
    let client = client();
    let before = bad.requests.load(Ordering::Relaxed);
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let got = send(
            &client,
            Request::get(&url).body(Full::new(Bytes::new())).unwrap(),
        )
        .await;
        assert_eq!(got.status, 200);
        let (ejected, _) = runtime().outlier_status(1);
        if !ejected && bad.requests.load(Ordering::Relaxed) > before + 10 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the healed endpoint did not come back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let stats = runtime().stats.counters();
    assert!(
        runtime().stats.get(Stat::Returns) >= 1,
        "no return was counted: {stats:?}"
    );
}

#[tokio::test]
async fn an_ejected_endpoint_gets_no_request_while_it_is_out() {
    let good = upstreams("good", 1).await;
    let bad = flaky().await;
    bad.sick.store(true, Ordering::Relaxed);
    let mut c = cluster(
        "c",
        &[good[0].addr(), bad.address],
        LoadBalancer::RoundRobin,
    );
    c.outlier_detection = Some(OutlierDetection {
        consecutive_5xx: None,
        consecutive_gateway_errors: Some(1),
        interval: Duration::from_millis(10_000),
        base_ejection_time: Duration::from_millis(60_000),
        max_ejection_percent: 50,
        min_health_percent: 0,
    });
    let proxy = start(http_config(
        vec![forward("all", vec![], &[("c", 100)])],
        vec![c],
    ))
    .await;
    // Until the first 503 from the flaky endpoint, which ejects it for a minute.
    let deadline = std::time::Instant::now() + PATIENCE;
    while proxy.requests_total(&[("response_code", "503")]) == 0 {
        get(&proxy.url("/"), &[]).await;
        assert!(std::time::Instant::now() < deadline, "no 503 came back");
    }
    let runtime = proxy.proxy.config.load().cluster("c").unwrap().1.clone();
    assert_eq!(runtime.outlier_status(1), (true, 1));
    let before = bad.requests.load(Ordering::Relaxed);
    for _ in 0..20 {
        assert_eq!(get(&proxy.url("/"), &[]).await.status, 200);
    }
    assert_eq!(
        bad.requests.load(Ordering::Relaxed),
        before,
        "an ejected endpoint gets no request"
    );
}
