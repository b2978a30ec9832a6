//! CORS through real sockets: preflights from allowed origins answered by the proxy, others
//! forwarded or answered bare, and responses to allowed origins marked.

mod support;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use support::*;
use trellis_proxy_config::{CorsPolicy, Duration, LoadBalancer, Route, StringMatch};

fn policy(forward_unmatched_preflights: bool) -> CorsPolicy {
    CorsPolicy {
        allow_origins: vec![
            StringMatch::Exact("https://shop.example.com".into()),
            StringMatch::Prefix("https://admin.".into()),
        ],
        allow_methods: vec!["GET".into(), "POST".into()],
        allow_headers: vec!["x-token".into()],
        expose_headers: vec!["x-trellis-upstream".into()],
        max_age: Some(Duration::from_millis(600_000)),
        allow_credentials: true,
        forward_unmatched_preflights,
    }
}

async fn proxy(forward_unmatched_preflights: bool) -> (Running, Vec<Upstream>) {
    let upstream = upstreams("svc", 1).await;
    let route = Route {
        cors: Some(policy(forward_unmatched_preflights)),
        ..forward("all", vec![], &[("c", 100)])
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

async fn preflight(proxy: &Running, origin: &str) -> Got {
    let request = Request::options(proxy.url("/orders"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "x-token")
        .body(Full::new(Bytes::new()))
        .unwrap();
    send(&client(), request).await
}

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_is_answered_by_the_proxy() {
    let (proxy, upstream) = proxy(true).await;
    for origin in ["https://shop.example.com", "https://admin.example.com"] {
        let got = preflight(&proxy, origin).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.header("access-control-allow-origin"), Some(origin));
        assert_eq!(got.header("access-control-allow-methods"), Some("GET,POST"));
        assert_eq!(got.header("access-control-allow-headers"), Some("x-token"));
        assert_eq!(got.header("access-control-max-age"), Some("600"));
        assert_eq!(got.header("access-control-allow-credentials"), Some("true"));
        assert_eq!(got.upstream(), None);
    }
    assert_eq!(upstream[0].requests(), 0, "preflights never went upstream");
}

#[tokio::test]
async fn a_preflight_from_another_origin_goes_upstream_or_is_answered_bare() {
    let (forwarding, upstream) = proxy(true).await;
    let got = preflight(&forwarding, "https://evil.example.net").await;
    assert_eq!(got.upstream(), Some("svc-0"), "FORWARD sends it on");
    assert_eq!(got.header("access-control-allow-origin"), None);
    assert_eq!(upstream[0].requests(), 1);

    let (ignoring, upstream) = proxy(false).await;
    let got = preflight(&ignoring, "https://evil.example.net").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.header("access-control-allow-origin"), None);
    assert_eq!(got.upstream(), None, "IGNORE answers it here");
    assert_eq!(upstream[0].requests(), 0);
}

#[tokio::test]
async fn responses_to_allowed_origins_are_marked_and_others_are_not() {
    let (proxy, _upstream) = proxy(true).await;
    let got = get(
        &proxy.url("/orders"),
        &[("origin", "https://shop.example.com")],
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.upstream(), Some("svc-0"));
    assert_eq!(
        got.header("access-control-allow-origin"),
        Some("https://shop.example.com")
    );
    assert_eq!(got.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(
        got.header("access-control-expose-headers"),
        Some("x-trellis-upstream")
    );

    for headers in [&[("origin", "https://evil.example.net")][..], &[]] {
        let got = get(&proxy.url("/orders"), headers).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.header("access-control-allow-origin"), None);
    }
}
