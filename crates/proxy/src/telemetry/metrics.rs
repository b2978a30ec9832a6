//! The proxy's Prometheus metrics: Istio's standard request and TCP metrics, named and labelled
//! exactly as Istio names them so its dashboards and queries work unchanged, plus a few
//! `trellis_proxy_*` metrics about the proxy itself.
//!
//! One [`Metrics`] per proxy, shared through an `Arc`. Label sets are resolved off the request
//! path: [`Metrics::outbound`] and [`Metrics::inbound`] return an interned [`EdgeMetrics`]
//! (build it when compiling a cluster, or once per connection when the peer is known), and the
//! request path only calls [`EdgeMetrics::record_request`] or [`EdgeMetrics::tcp_opened`].
//!
//! [`Metrics::encode`] writes the OpenMetrics text format (served with [`CONTENT_TYPE`]), which
//! Prometheus 2 and 3 both scrape; counters are declared without their `_total` suffix, as
//! OpenMetrics wants, and sampled with it.

mod edge;
mod encode;
mod labels;
mod peers;

use std::sync::Arc;

use prometheus_client::encoding::text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use trellis_proxy_config::ServiceRef;

pub use edge::{
    BYTE_BUCKETS, DURATION_BUCKETS_MS, EdgeMetrics, RequestOutcome, TcpConnectionMetrics,
};
pub use labels::{
    ConnectionSecurityPolicy, ProxyIdentity, Reporter, RequestProtocol, UNKNOWN, WorkloadIdentity,
};
pub use peers::{DestinationEdges, InboundPeer};

use edge::EdgeTable;
use encode::EdgeCollector;
use labels::{EdgeLabels, ServiceLabels, SideLabels};

/// The `Content-Type` of [`Metrics::encode`]'s output, for `/stats/prometheus`.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type ResultLabel = [(&'static str, &'static str); 1];

/// All of one proxy's metrics; see the module docs.
#[derive(Debug)]
pub struct Metrics {
    me: Arc<SideLabels>,
    edges: Arc<EdgeTable>,
    registry: Registry,
    connections_active: Gauge,
    requests_active: Gauge,
    config_updates: Family<ResultLabel, Counter>,
    config_generation: Gauge,
    access_log_dropped: Counter,
}

impl Metrics {
    pub fn new(identity: &ProxyIdentity) -> Self {
        let edges = Arc::new(EdgeTable::default());
        let mut registry = Registry::default();
        let connections_active = Gauge::default();
        let requests_active = Gauge::default();
        let config_updates = Family::<ResultLabel, Counter>::default();
        let config_generation = Gauge::default();
        let access_log_dropped = Counter::default();
        registry.register(
            "trellis_proxy_build",
            "The proxy's version",
            Info::new([("version", env!("CARGO_PKG_VERSION"))]),
        );
        registry.register(
            "trellis_proxy_connections_active",
            "Downstream connections open now",
            connections_active.clone(),
        );
        registry.register(
            "trellis_proxy_requests_active",
            "Downstream requests in flight now",
            requests_active.clone(),
        );
        registry.register(
            "trellis_proxy_config_updates",
            "Configuration updates, by result (applied or rejected)",
            config_updates.clone(),
        );
        registry.register(
            "trellis_proxy_config_generation",
            "Generation of the configuration in use",
            config_generation.clone(),
        );
        registry.register(
            "trellis_proxy_access_log_dropped",
            "Access log entries dropped because the writer fell behind",
            access_log_dropped.clone(),
        );
        registry.register_collector(Box::new(EdgeCollector(Arc::clone(&edges))));
        Self {
            me: Arc::new(SideLabels::resolve(Some(identity))),
            edges,
            registry,
            connections_active,
            requests_active,
            config_updates,
            config_generation,
            access_log_dropped,
        }
    }

    /// The edge for traffic this proxy sends (sidecar outbound, or a gateway): reported by the
    /// source, this proxy is the source. `destination` is what is known of the endpoint's
    /// workload (`None`: all `unknown`); `service` comes from the cluster.
    pub fn outbound(
        &self,
        service: Option<&ServiceRef>,
        destination: Option<&WorkloadIdentity>,
    ) -> Arc<EdgeMetrics> {
        self.edges.intern(EdgeLabels {
            reporter: Reporter::Source,
            source: Arc::clone(&self.me),
            destination: Arc::new(SideLabels::resolve(destination)),
            service: Arc::new(ServiceLabels::resolve(service)),
            security: ConnectionSecurityPolicy::Unknown,
        })
    }

    /// The edge for traffic this proxy receives for its workload: reported by the destination,
    /// this proxy is the destination. `source` is what is known of the client (its
    /// certificate's principal, at least, under mTLS).
    pub fn inbound(
        &self,
        service: Option<&ServiceRef>,
        source: Option<&WorkloadIdentity>,
        security: ConnectionSecurityPolicy,
    ) -> Arc<EdgeMetrics> {
        self.edges.intern(EdgeLabels {
            reporter: Reporter::Destination,
            source: Arc::new(SideLabels::resolve(source)),
            destination: Arc::clone(&self.me),
            service: Arc::new(ServiceLabels::resolve(service)),
            security,
        })
    }

    /// The edges of `service` as the source reports them, by the principal each destination
    /// shows (learnt when a connection is made).
    pub fn destinations(&self, service: Option<&ServiceRef>) -> DestinationEdges {
        DestinationEdges {
            me: Arc::clone(&self.me),
            edges: Arc::clone(&self.edges),
            service: Arc::new(ServiceLabels::resolve(service)),
        }
    }

    /// Counts a downstream connection as open until the guard is dropped.
    pub fn connection_opened(&self) -> ActiveGuard {
        ActiveGuard::new(&self.connections_active)
    }

    /// Counts a downstream request as in flight until the guard is dropped.
    pub fn request_started(&self) -> ActiveGuard {
        ActiveGuard::new(&self.requests_active)
    }

    /// A new configuration snapshot was swapped in.
    pub fn config_applied(&self, generation: u64) {
        self.config_updates
            .get_or_create(&[("result", "applied")])
            .inc();
        self.config_generation
            .set(i64::try_from(generation).unwrap_or(i64::MAX));
    }

    /// A configuration update was refused; the proxy keeps the one it had.
    pub fn config_rejected(&self) {
        self.config_updates
            .get_or_create(&[("result", "rejected")])
            .inc();
    }

    /// The counter [`crate::telemetry::AccessLog`] counts dropped entries with.
    pub fn access_log_dropped(&self) -> Counter {
        self.access_log_dropped.clone()
    }

    /// Everything, in the OpenMetrics text format (see [`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        if let Err(error) = text::encode(&mut out, &self.registry) {
            tracing::warn!(%error, "encoding metrics failed; the scrape is incomplete");
        }
        out
    }
}

/// Keeps a gauge raised while it lives.
#[derive(Debug)]
pub struct ActiveGuard(Gauge);

impl ActiveGuard {
    fn new(gauge: &Gauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests;
