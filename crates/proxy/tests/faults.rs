//! Fault injection through real sockets: the share of requests a delay or an abort falls on,
//! what an aborted request is answered with (HTTP and gRPC), the response flags, and that an
//! aborted request never reaches the upstream.

mod support;

use std::time::Instant;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use support::*;
use trellis_proxy_config::{
    AbortStatus, Duration, Fault, FaultAbort, FaultDelay, LoadBalancer, Route,
};

/// How many requests a share is measured over, and how far from its share it may land.
const REQUESTS: u32 = 2000;
const POINTS: f64 = 3.0;

/// A proxy forwarding everything to one upstream through a route with `fault`.
async fn faulty(fault: Fault) -> (Running, Vec<Upstream>) {
    let upstream = upstreams("svc", 1).await;
    let route = Route {
        fault: Some(fault),
        ..forward("faulty", vec![], &[("c", 100)])
    };
    let proxy = start(http_config(
        vec![route],
        vec![cluster(
            "c",
            &[upstream[0].addr()],
            LoadBalancer::RoundRobin,
        )],
    ))
    .await;
    (proxy, upstream)
}

fn abort(status: AbortStatus, percent: f64) -> Fault {
    Fault {
        delay: None,
        abort: Some(FaultAbort { status, percent }),
    }
}

fn delay(millis: u64, percent: f64) -> Fault {
    Fault {
        delay: Some(FaultDelay {
            fixed: Duration::from_millis(millis),
            percent,
        }),
        abort: None,
    }
}

#[track_caller]
fn assert_share(what: &str, count: u64, percent: f64) {
    let share = count as f64 * 100.0 / f64::from(REQUESTS);
    assert!(
        (share - percent).abs() <= POINTS,
        "{what}: {share}% of {REQUESTS} requests, expected {percent}% ± {POINTS}"
    );
}

#[tokio::test]
async fn an_abort_falls_on_its_share_and_those_requests_never_reach_the_upstream() {
    let (proxy, upstream) = faulty(abort(AbortStatus::Http(418), 30.0)).await;
    let client = client();
    let mut aborted = 0;
    for _ in 0..REQUESTS {
        let request = Request::get(proxy.url("/")).body(Full::new(Bytes::new()));
        let got = send(&client, request.unwrap()).await;
        match got.status {
            418 => {
                assert_eq!(got.body, "fault filter abort");
                aborted += 1;
            }
            200 => {}
            other => panic!("unexpected status {other}: {}", got.body),
        }
    }
    assert_share("aborted", aborted, 30.0);
    assert_eq!(
        upstream[0].requests(),
        u64::from(REQUESTS) - aborted,
        "the upstream saw exactly the requests that were not aborted"
    );
    eventually("every abort is counted as 418 FI", || {
        proxy.requests_total(&[("response_code", "418"), ("response_flags", "FI")]) == aborted
    })
    .await;
}

#[tokio::test]
async fn a_delay_holds_requests_back_and_falls_on_its_share() {
    // Every request: each takes at least the delay, and is flagged DI.
    let (proxy, _upstream) = faulty(delay(150, 100.0)).await;
    for _ in 0..3 {
        let started = Instant::now();
        assert_eq!(get(&proxy.url("/"), &[]).await.status, 200);
        assert!(
            started.elapsed() >= std::time::Duration::from_millis(150),
            "a 150 ms delay took {:?}",
            started.elapsed()
        );
    }
    eventually("the delayed requests are flagged DI", || {
        proxy.requests_total(&[("response_code", "200"), ("response_flags", "DI")]) == 3
    })
    .await;

    // A quarter of the requests, counted by their flag.
    let (proxy, _upstream) = faulty(delay(1, 25.0)).await;
    let client = client();
    for _ in 0..REQUESTS {
        let request = Request::get(proxy.url("/")).body(Full::new(Bytes::new()));
        assert_eq!(send(&client, request.unwrap()).await.status, 200);
    }
    eventually("every request is counted", || {
        proxy.requests_total(&[("response_code", "200")]) == u64::from(REQUESTS)
    })
    .await;
    let delayed = proxy.requests_total(&[("response_flags", "DI")]);
    assert_share("delayed", delayed, 25.0);
}

#[tokio::test]
async fn a_grpc_abort_answers_grpc_clients_with_the_status_and_others_with_its_http_equivalent() {
    let (proxy, upstream) = faulty(abort(AbortStatus::Grpc(14), 100.0)).await;
    let request = Request::post(proxy.url("/pkg.Service/Method"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from_static(b"\0\0\0\0\0")))
        .unwrap();
    let got = send(&h2_client(), request).await;
    assert_eq!(got.status, 200, "gRPC errors travel in grpc-status");
    assert_eq!(got.header("grpc-status"), Some("14"));
    assert_eq!(got.header("grpc-message"), Some("fault filter abort"));

    let got = get(&proxy.url("/"), &[]).await;
    assert_eq!(got.status, 503, "UNAVAILABLE for a client that is not gRPC");
    assert_eq!(upstream[0].requests(), 0);
}

#[tokio::test]
async fn a_delayed_request_can_be_aborted_too() {
    let (proxy, upstream) = faulty(Fault {
        delay: Some(FaultDelay {
            fixed: Duration::from_millis(1),
            percent: 100.0,
        }),
        abort: Some(FaultAbort {
            status: AbortStatus::Http(503),
            percent: 100.0,
        }),
    })
    .await;
    assert_eq!(get(&proxy.url("/"), &[]).await.status, 503);
    assert_eq!(upstream[0].requests(), 0);
    eventually("the request is flagged as both delayed and aborted", || {
        proxy.requests_total(&[("response_code", "503"), ("response_flags", "DI,FI")]) == 1
    })
    .await;
}
