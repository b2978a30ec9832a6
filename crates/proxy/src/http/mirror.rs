//! Mirroring (a route's [`Mirror`]s): a copy of the request goes to each mirror whose share
//! falls on it, on a task of its own, so the request it copies never waits for it. The copy
//! has the request's head as it goes upstream (forwarding headers, header changes and
//! rewrites applied) with `-shadow` appended to its authority's host, as Envoy does, and the
//! request's body when the proxy keeps it in memory (a body of at most 64 KiB with a
//! `content-length`); a request with a longer or unannounced body is not mirrored. The copy's
//! answer is read and discarded; it times out with the route's timeout, or after
//! [`SHADOW_TIMEOUT`]. Its cluster counts it as a request; metrics and access logs do not.

use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::uri::Authority;
use http_body_util::BodyExt;
use trellis_proxy_config::Mirror;

use crate::body;
use crate::state::Snapshot;
use crate::upstream::{ClusterRuntime, Outgoing, Stat, Version};

/// How long a copy may take when the route sets no timeout.
const SHADOW_TIMEOUT: Duration = Duration::from_secs(60);

/// The mirrors whose share falls on this request.
pub(super) fn falling(mirrors: &[Mirror]) -> Vec<&Mirror> {
    mirrors
        .iter()
        .filter(|m| m.percent >= 100.0 || (m.percent > 0.0 && fastrand::f64() * 100.0 < m.percent))
        .collect()
}

/// Sends a copy of the request (its head `parts` as it goes upstream, sent to `authority`, and
/// its `body`) to each of `mirrors`, each on a task of its own.
pub(super) fn send(
    snapshot: &Snapshot,
    mirrors: &[&Mirror],
    parts: &http::request::Parts,
    authority: &str,
    body: Option<Bytes>,
    timeout: Option<Duration>,
) {
    let Some(body) = body else {
        tracing::debug!("request not mirrored: its body is not kept in memory");
        return;
    };
    let host = shadow_host(authority);
    for mirror in mirrors {
        let Some((_, cluster)) = snapshot.cluster(&mirror.cluster) else {
            tracing::debug!(cluster = %mirror.cluster, "mirror cluster not found");
            continue;
        };
        let copy = Copy {
            cluster: cluster.clone(),
            parts: copy_head(parts),
            host: host.clone(),
            body: body.clone(),
        };
        let timeout = timeout.unwrap_or(SHADOW_TIMEOUT);
        tokio::spawn(async move {
            if tokio::time::timeout(timeout, copy.send()).await.is_err() {
                tracing::debug!("mirrored request timed out");
            }
        });
    }
}

/// A copy of a request, on its way to a mirror.
struct Copy {
    cluster: std::sync::Arc<ClusterRuntime>,
    parts: http::request::Parts,
    host: HeaderValue,
    body: Bytes,
}

impl Copy {
    async fn send(self) {
        let cluster = &self.cluster;
        cluster.stats.bump(Stat::Requests);
        let Some(index) = cluster.pick(None, &[]) else {
            cluster.stats.bump(Stat::NoEndpoint);
            return;
        };
        let version = cluster.version_for(http::Version::HTTP_11);
        let authority = (version == Version::Http2)
            .then(|| {
                self.host
                    .to_str()
                    .ok()
                    .and_then(|h| Authority::try_from(h).ok())
            })
            .flatten();
        let request = Outgoing {
            parts: &self.parts,
            host: Some(&self.host),
            authority: authority.as_ref(),
            body: if self.body.is_empty() {
                body::empty()
            } else {
                body::full(self.body)
            },
        };
        match cluster
            .pool(index)
            .send(request, version, cluster.admission())
            .await
        {
            // Read to the end, so that the connection can carry another request.
            Ok(response) => {
                let _ = response.into_body().collect().await;
            }
            Err(error) => tracing::debug!(%error, "mirrored request failed"),
        }
    }
}

/// The head of a request, copied.
fn copy_head(parts: &http::request::Parts) -> http::request::Parts {
    let (mut copy, ()) = http::Request::new(()).into_parts();
    copy.method = parts.method.clone();
    copy.uri = parts.uri.clone();
    copy.version = parts.version;
    copy.headers = parts.headers.clone();
    copy.headers.remove(header::HOST);
    copy
}

/// `host` with `-shadow` appended to its host part (before any port), as Envoy does.
fn shadow_host(authority: &str) -> HeaderValue {
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !port.contains(']') => (host, Some(port)),
        _ => (authority, None),
    };
    let shadow = match port {
        Some(port) => format!("{host}-shadow:{port}"),
        None => format!("{host}-shadow"),
    };
    HeaderValue::from_str(&shadow).unwrap_or_else(|_| HeaderValue::from_static("shadow"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shadow_host_keeps_the_port() {
        assert_eq!(shadow_host("reviews:9080"), "reviews-shadow:9080");
        assert_eq!(shadow_host("reviews.default"), "reviews.default-shadow");
        assert_eq!(shadow_host("[::1]:80"), "[::1]-shadow:80");
        assert_eq!(shadow_host("[::1]"), "[::1]-shadow");
    }

    #[test]
    fn shares_hold() {
        fastrand::seed(3);
        let mirrors = [
            Mirror {
                cluster: "all".into(),
                percent: 100.0,
            },
            Mirror {
                cluster: "none".into(),
                percent: 0.0,
            },
            Mirror {
                cluster: "some".into(),
                percent: 20.0,
            },
        ];
        let mut some = 0;
        for _ in 0..10_000 {
            let falling = falling(&mirrors);
            assert!(falling.iter().any(|m| m.cluster == "all"));
            assert!(!falling.iter().any(|m| m.cluster == "none"));
            some += usize::from(falling.iter().any(|m| m.cluster == "some"));
        }
        assert!((1_800..=2_200).contains(&some), "{some}");
    }
}
