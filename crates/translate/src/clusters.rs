//! Clusters: one per (host, port, subset) that routes and listeners send to, named as Istio
//! names them (`outbound|9080|v1|reviews.default.svc.cluster.local`).
//!
//! Endpoints are the registry's endpoints of the host that serve the port, filtered by the
//! subset's labels. The DestinationRule in force ([`crate::destination_rules`]) sets the load
//! balancer, outlier detection ([`crate::outlier`]), and from `connectionPool` the connect
//! timeout, the idle timeout of pooled connections (`http.idleTimeout`; `0s`, which turns it
//! off in Istio, leaves it unset), TCP keep-alive, and the limits (`tcp.maxConnections`,
//! `http.http1MaxPendingRequests`, `http.http2MaxRequests`, `http.maxRetries`,
//! `http.maxRequestsPerConnection`; 0 is no limit, as Istio leaves Envoy's at the maximum);
//! its `healthcheck.trellis.io/*` annotations set active health checking
//! ([`crate::health_checks`]); its `tls`, or the mesh's automatic mutual TLS when it sets none,
//! the TLS to the endpoints ([`crate::upstream_tls`]). Endpoints keep their workloads' labels,
//! among them `security.istio.io/tlsMode`, by which the proxy knows which endpoints take
//! automatic mutual TLS.
//! The upstream protocol is HTTP/2 for HTTP2, GRPC and
//! GRPC-Web ports, the client's protocol with `useClientProtocol`, HTTP/2 with
//! `h2UpgradePolicy: UPGRADE` on an HTTP port (or one with no declared protocol), else HTTP/1.1.
//!
//! A host the registry lacks gives a cluster without endpoints (requests get 503 with flag UH);
//! a subset no rule defines gives no cluster at all, as in Istio (503 NC). The reference is
//! reported where it is written ([`crate::destinations`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use trellis_api::networking::H2UpgradePolicy;
use trellis_api::networking::{HttpSettings, TcpSettings};
use trellis_api::types::{Duration, Protocol, labels_match};
use trellis_proxy_config::{
    Cluster, ConnectionLimits, Endpoint, RetryBudget, ServiceRef, TcpKeepalive, UpstreamProtocol,
};

use crate::context::{Output, Scope};
use crate::destination_rules::{self, Policy, Sourced};
use crate::health_checks;
use crate::load_balancer;
use crate::outlier;
use crate::registry::ServicePort;
use crate::upstream_tls;
use crate::warnings::Warnings;

/// What a cluster stands for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ClusterKey {
    /// Fully qualified.
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) subset: Option<String>,
}

impl ClusterKey {
    /// Istio's name: `outbound|PORT|SUBSET|HOST`.
    pub(crate) fn name(&self) -> String {
        format!(
            "outbound|{}|{}|{}",
            self.port,
            self.subset.as_deref().unwrap_or_default(),
            self.host
        )
    }
}

/// Every cluster `out` refers to that can exist, by name.
pub(crate) fn build(cx: &Scope<'_>, out: &mut Output) -> BTreeMap<String, Cluster> {
    let mut clusters = BTreeMap::new();
    for key in &out.clusters {
        if let Some(cluster) = cluster(cx, key, &mut out.warnings) {
            clusters.insert(cluster.name.clone(), cluster);
        }
    }
    clusters
}

fn cluster(cx: &Scope<'_>, key: &ClusterKey, warnings: &mut Warnings) -> Option<Cluster> {
    let service = cx.service(&key.host);
    let rules = destination_rules::lookup(cx, &key.host, service.map(|s| s.namespace.as_str()));
    let subset = match &key.subset {
        None => None,
        Some(name) => Some(rules.as_ref()?.subset(name)?),
    };
    let policy = Policy::new(rules.as_ref(), subset, key.port);
    policy.warn_unsupported(warnings);
    let port = service.and_then(|s| s.port(key.port));
    let endpoints = match (service, port) {
        (Some(service), Some(_)) => service
            .endpoints
            .iter()
            .filter(|e| subset.is_none_or(|s| labels_match(&s.subset.labels, &e.labels)))
            .filter_map(|e| {
                let target = *e.ports.get(&key.port)?;
                Some(Endpoint {
                    address: SocketAddr::new(e.address, target),
                    weight: e.weight,
                    labels: e.labels.clone(),
                })
            })
            .collect(),
        _ => Vec::new(),
    };
    let pool = policy.connection_pool.as_ref();
    if let Some(pool) = pool {
        warn_unsupported_pool(pool, warnings);
    }
    let tcp = pool.and_then(|p| p.value.tcp.as_ref());
    let http = pool.and_then(|p| p.value.http.as_ref());
    Some(Cluster {
        name: key.name(),
        load_balancer: load_balancer::translate(policy.load_balancer.as_ref(), warnings),
        endpoints,
        protocol: upstream_protocol(port, pool),
        connect_timeout: tcp.and_then(|t| t.connect_timeout),
        idle_timeout: http
            .and_then(|h| h.idle_timeout)
            .filter(|d| *d != Duration::default()),
        service: service.map(|s| ServiceRef {
            host: s.host.clone(),
            name: s.name.clone(),
            namespace: s.namespace.clone(),
            subset: key.subset.clone(),
        }),
        outlier_detection: outlier::translate(policy.outlier_detection.as_ref(), warnings),
        limits: limits(tcp, http, policy.retry_budget.as_ref(), warnings),
        tcp_keepalive: tcp
            .and_then(|t| t.tcp_keepalive.as_ref())
            .map(|k| TcpKeepalive {
                time: k.time,
                interval: k.interval,
                probes: k.probes,
            }),
        health_check: rules
            .as_ref()
            .and_then(|r| r.annotated(health_checks::PREFIX))
            .and_then(|rule| health_checks::health_check(rule, warnings)),
        source: rules
            .as_ref()
            .map(|r| format!("DestinationRule {}", r.names())),
        tls: upstream_tls::translate(cx, key, service, policy.tls.as_ref(), warnings),
    })
}

/// The connection pool's limits, as Istio sets Envoy's circuit breakers (a limit of 0, or none,
/// is no limit), and the retry budget (20% and 3 when its fields are unset, as in Envoy).
fn limits(
    tcp: Option<&TcpSettings>,
    http: Option<&HttpSettings>,
    budget: Option<&Sourced<'_, trellis_api::networking::RetryBudget>>,
    warnings: &mut Warnings,
) -> Option<ConnectionLimits> {
    let limit = |value: Option<i32>| value.and_then(|v| u32::try_from(v).ok()).filter(|v| *v > 0);
    if let Some(budget) = budget
        && budget.value.budget_interval.is_some()
    {
        budget.unsupported("budgetInterval", warnings);
    }
    let limits = ConnectionLimits {
        max_connections: limit(tcp.and_then(|t| t.max_connections)),
        max_pending_requests: limit(http.and_then(|h| h.http1_max_pending_requests)),
        max_requests: limit(http.and_then(|h| h.http2_max_requests)),
        max_retries: limit(http.and_then(|h| h.max_retries)),
        max_requests_per_connection: limit(http.and_then(|h| h.max_requests_per_connection)),
        retry_budget: budget.map(|b| RetryBudget {
            percent: b.value.percent.map_or(20.0, |p| p.value()),
            min_concurrency: b.value.min_retry_concurrency.unwrap_or(3),
        }),
    };
    (limits != ConnectionLimits::default()).then_some(limits)
}

fn upstream_protocol(
    port: Option<&ServicePort>,
    pool: Option<&Sourced<'_, trellis_api::networking::ConnectionPoolSettings>>,
) -> UpstreamProtocol {
    let http = pool.and_then(|p| p.value.http.as_ref());
    let protocol = port.and_then(|p| p.protocol);
    if http.and_then(|h| h.use_client_protocol) == Some(true) {
        return UpstreamProtocol::SameAsDownstream;
    }
    if matches!(
        protocol,
        Some(Protocol::Http2 | Protocol::Grpc | Protocol::GrpcWeb)
    ) {
        return UpstreamProtocol::Http2;
    }
    let upgrade = http.and_then(|h| h.h2_upgrade_policy) == Some(H2UpgradePolicy::Upgrade);
    if upgrade && matches!(protocol, None | Some(Protocol::Http)) {
        return UpstreamProtocol::Http2;
    }
    UpstreamProtocol::Http1
}

/// Connection-pool limits the proxy does not enforce yet.
fn warn_unsupported_pool(
    pool: &Sourced<'_, trellis_api::networking::ConnectionPoolSettings>,
    warnings: &mut Warnings,
) {
    if let Some(tcp) = &pool.value.tcp {
        for (field, present) in [
            (
                "tcp.maxConnectionDuration",
                tcp.max_connection_duration.is_some(),
            ),
            ("tcp.idleTimeout", tcp.idle_timeout.is_some()),
        ] {
            if present {
                pool.unsupported(field, warnings);
            }
        }
    }
    if let Some(http) = &pool.value.http {
        for (field, present) in [
            (
                "http.maxConcurrentStreams",
                http.max_concurrent_streams.is_some(),
            ),
            ("http.http2KeepAlive", http.http2_keep_alive.is_some()),
        ] {
            if present {
                pool.unsupported(field, warnings);
            }
        }
    }
}

#[cfg(test)]
mod tests;
