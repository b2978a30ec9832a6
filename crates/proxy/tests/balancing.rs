//! Load balancing through real sockets: every algorithm spreads requests as it should, and a
//! canary split lands where its weights say.
//!
//! Counts are checked with tolerances wide enough that chance cannot fail them (several
//! standard deviations).

mod support;

use std::collections::HashMap;

use support::*;
use trellis_proxy_config::{Endpoint, HashKey, LoadBalancer};

/// Sends `n` requests (with `headers`) and counts which upstream answered each.
async fn spread(url: &str, n: usize, headers: &[(&str, &str)]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for _ in 0..n {
        let got = get(url, headers).await;
        assert_eq!(got.status, 200, "{}", got.body);
        *counts
            .entry(got.upstream().unwrap_or("?").to_owned())
            .or_default() += 1;
    }
    counts
}

async fn balanced_proxy(load_balancer: LoadBalancer, weights: &[u32]) -> (Running, Vec<Upstream>) {
    let upstreams = upstreams("u", weights.len()).await;
    let mut cluster = cluster("c", &[], load_balancer);
    cluster.endpoints = upstreams
        .iter()
        .zip(weights)
        .map(|(u, w)| Endpoint {
            weight: *w,
            ..Endpoint::new(u.addr())
        })
        .collect();
    let proxy = start(http_config(
        vec![forward("r", vec![], &[("c", 100)])],
        vec![cluster],
    ))
    .await;
    (proxy, upstreams)
}

fn share(counts: &HashMap<String, usize>, name: &str, total: usize) -> f64 {
    *counts.get(name).unwrap_or(&0) as f64 * 100.0 / total as f64
}

#[tokio::test]
async fn round_robin_follows_weights_exactly() {
    let (proxy, _upstreams) = balanced_proxy(LoadBalancer::RoundRobin, &[3, 1]).await;
    let counts = spread(&proxy.url("/"), 400, &[]).await;
    assert_eq!((counts["u-0"], counts["u-1"]), (300, 100), "{counts:?}");
}

#[tokio::test]
async fn random_follows_weights() {
    let (proxy, _upstreams) = balanced_proxy(LoadBalancer::Random, &[3, 1]).await;
    let counts = spread(&proxy.url("/"), 2000, &[]).await;
    // 75% expected; the standard deviation over 2000 picks is about 1 point.
    let share = share(&counts, "u-0", 2000);
    assert!((70.0..=80.0).contains(&share), "{counts:?}");
}

#[tokio::test]
async fn least_request_uses_every_endpoint() {
    let (proxy, _upstreams) = balanced_proxy(LoadBalancer::LeastRequest, &[1, 1, 1]).await;
    let counts = spread(&proxy.url("/"), 1200, &[]).await;
    for name in ["u-0", "u-1", "u-2"] {
        // Sequential requests leave every endpoint idle; each gets a fair share.
        let share = share(&counts, name, 1200);
        assert!((20.0..=46.0).contains(&share), "{counts:?}");
    }
}

#[tokio::test]
async fn peak_ewma_prefers_the_faster_endpoint() {
    let fast = upstreams("fast", 1).await;
    let slow = slow_upstream(std::time::Duration::from_millis(30)).await;
    let cluster = cluster("c", &[fast[0].addr(), slow], LoadBalancer::PeakEwma);
    let proxy = start(http_config(
        vec![forward("r", vec![], &[("c", 100)])],
        vec![cluster],
    ))
    .await;
    let counts = spread(&proxy.url("/"), 300, &[]).await;
    let fast_share = share(&counts, "fast-0", 300);
    assert!(
        fast_share >= 70.0,
        "the fast endpoint got only {fast_share}% ({counts:?})"
    );
}

/// An upstream that answers every request (as `slow`) after `delay`.
async fn slow_upstream(delay: std::time::Duration) -> std::net::SocketAddr {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_request| async move {
                    tokio::time::sleep(delay).await;
                    let mut response = http::Response::new(http_body_util::Full::new(
                        bytes::Bytes::from_static(b"slow"),
                    ));
                    response
                        .headers_mut()
                        .insert(NAME_HEADER, http::HeaderValue::from_static("slow"));
                    Ok::<_, std::convert::Infallible>(response)
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    address
}

#[tokio::test]
async fn consistent_hashing_keeps_a_key_on_one_endpoint() {
    let policies = [
        LoadBalancer::RingHash {
            key: HashKey::Header("x-user".into()),
            minimum_ring_size: None,
        },
        LoadBalancer::Maglev {
            key: HashKey::Header("x-user".into()),
            table_size: None,
        },
        LoadBalancer::RingHash {
            key: HashKey::QueryParameter("user".into()),
            minimum_ring_size: None,
        },
        LoadBalancer::Maglev {
            key: HashKey::Cookie {
                name: "session".into(),
                path: None,
                ttl: None,
            },
            table_size: None,
        },
    ];
    for policy in policies {
        let (proxy, _upstreams) = balanced_proxy(policy.clone(), &[1, 1, 1]).await;
        let mut owners = HashMap::new();
        for user in 0..60 {
            let (url, header) = match &policy {
                LoadBalancer::RingHash {
                    key: HashKey::QueryParameter(_),
                    ..
                } => (proxy.url(&format!("/?user={user}")), None),
                LoadBalancer::Maglev {
                    key: HashKey::Cookie { .. },
                    ..
                } => (
                    proxy.url("/"),
                    Some(("cookie", format!("a=1; session={user}"))),
                ),
                _ => (proxy.url("/"), Some(("x-user", user.to_string()))),
            };
            let headers: Vec<(&str, &str)> = header.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let counts = spread(&url, 5, &headers).await;
            assert_eq!(
                counts.len(),
                1,
                "{policy:?}: user {user} went to {counts:?}"
            );
            owners.insert(user, counts.into_keys().next().unwrap());
        }
        let mut per_endpoint: HashMap<&String, usize> = HashMap::new();
        for owner in owners.values() {
            *per_endpoint.entry(owner).or_default() += 1;
        }
        assert_eq!(
            per_endpoint.len(),
            3,
            "{policy:?}: 60 keys should reach all 3 endpoints: {per_endpoint:?}"
        );
    }
}

#[tokio::test]
async fn a_90_10_canary_split_lands_within_three_points() {
    let stable = upstreams("stable", 1).await;
    let canary = upstreams("canary", 1).await;
    let clusters = vec![
        cluster("stable", &[stable[0].addr()], LoadBalancer::RoundRobin),
        cluster("canary", &[canary[0].addr()], LoadBalancer::RoundRobin),
    ];
    let proxy = start(http_config(
        vec![forward("split", vec![], &[("stable", 90), ("canary", 10)])],
        clusters,
    ))
    .await;
    let counts = spread(&proxy.url("/"), 2000, &[]).await;
    let share = share(&counts, "canary-0", 2000);
    assert!(
        (7.0..=13.0).contains(&share),
        "canary got {share}% ({counts:?})"
    );
}
