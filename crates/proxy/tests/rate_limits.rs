//! Local rate limiting through real sockets: a route's bucket lets its burst through, then
//! answers 429 `RL`; routes naming one bucket share it.

mod support;

use support::*;
use trellis_proxy_config::{LoadBalancer, RateLimit, RouteMatch, StringMatch};

fn prefix(p: &str) -> RouteMatch {
    RouteMatch {
        path: Some(StringMatch::Prefix(p.into())),
        ..RouteMatch::default()
    }
}

#[tokio::test]
async fn past_the_burst_requests_get_429_and_routes_share_their_bucket() {
    let upstream = upstreams("svc", 1).await;
    // One token a minute: the burst is all a test this short can use.
    let limit = RateLimit {
        bucket: "VirtualService default/shop".into(),
        requests_per_second: 1.0 / 60.0,
        burst: 5,
    };
    let limited = |name: &str, path: &str| trellis_proxy_config::Route {
        rate_limit: Some(limit.clone()),
        ..forward(name, vec![prefix(path)], &[("c", 100)])
    };
    let proxy = start(http_config(
        vec![
            limited("a", "/a"),
            limited("b", "/b"),
            forward("free", vec![], &[("c", 100)]),
        ],
        vec![cluster(
            "c",
            &[upstream[0].addr()],
            LoadBalancer::RoundRobin,
        )],
    ))
    .await;
    let mut passed = 0;
    for i in 0..20 {
        let path = if i % 2 == 0 { "/a" } else { "/b" };
        let got = get(&proxy.url(path), &[]).await;
        match got.status {
            200 => passed += 1,
            429 => assert_eq!(got.body, "local_rate_limited"),
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(passed, 5, "the two routes share one burst of five");
    eventually("the refusals are counted as 429 RL", || {
        proxy.requests_total(&[("response_code", "429"), ("response_flags", "RL")]) == 15
    })
    .await;
    assert_eq!(upstream[0].requests(), 5);
    // A route without a limit is not held back.
    for _ in 0..10 {
        assert_eq!(get(&proxy.url("/free"), &[]).await.status, 200);
    }
}
