//! `trellis-proxy`: the data plane. One process serves as a sidecar, an ingress gateway or an
//! egress gateway, depending only on its configuration.
//!
//! - [`state`]: the configuration in force, an immutable snapshot swapped whole on updates;
//! - [`listener`]: accept loops, protocol detection ([`detect`]), HTTP and TCP serving;
//! - [`http`]: the HTTP connection manager (routing with [`router`], forwarding, retries,
//!   timeouts, upgrades);
//! - [`tcp`]: the TCP proxy;
//! - [`upstream`] and [`balance`]: clusters, connection pools and load balancing;
//! - [`telemetry`]: metrics, access logs, response flags;
//! - [`admin`]: the admin endpoints (`/ready`, `/stats/prometheus`, `/config_dump`, ...).

pub mod admin;
pub mod balance;
pub mod body;
pub mod clock;
pub mod detect;
pub mod downstream;
pub mod fast_map;
mod h1;
pub mod http;
pub mod identity;
pub mod listener;
pub mod on_demand;
pub mod rate_limit;
pub mod router;
pub mod standalone;
pub mod state;
pub mod tcp;
pub mod telemetry;
pub mod tls;
pub mod transport;
pub mod upstream;
pub mod worker;
pub mod xds;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use trellis_proxy_config::Config;

use crate::http::Outcome;
use crate::http::tracked::BodyEnd;
use crate::listener::{Connections, Limits};
use crate::state::ConfigStore;
use crate::tcp::TcpOutcome;
use crate::telemetry::{
    AccessLog, AccessLogEntry, EdgeMetrics, HttpRequestInfo, Metrics, ProxyIdentity,
    RequestOutcome, RequestProtocol, ResponseFlags,
};

/// Everything the proxy's connections share.
#[derive(Debug)]
pub struct Proxy {
    pub config: ConfigStore,
    pub connections: Arc<Connections>,
    pub metrics: Arc<Metrics>,
    pub access_log: AccessLog,
    /// Limits applied to clients (header size, header read timeout).
    pub limits: Limits,
    /// Where requests that reach no cluster are counted.
    unrouted: Arc<EdgeMetrics>,
    /// Virtual hosts asked for by requests, answered by the xDS client.
    pub on_demand: Arc<on_demand::OnDemand>,
    /// The proxy's own certificate, from the control plane's CA.
    pub certificates: Arc<identity::Certificates>,
}

impl Proxy {
    /// A proxy with default identity and no access log (tests, tools).
    pub fn new(config: Config) -> Arc<Self> {
        Self::with_telemetry(
            config,
            Arc::new(Metrics::new(&ProxyIdentity::default())),
            AccessLog::off(),
        )
    }

    pub fn with_telemetry(
        config: Config,
        metrics: Arc<Metrics>,
        access_log: AccessLog,
    ) -> Arc<Self> {
        Self::with_options(config, metrics, access_log, Limits::default())
    }

    pub fn with_options(
        config: Config,
        metrics: Arc<Metrics>,
        access_log: AccessLog,
        limits: Limits,
    ) -> Arc<Self> {
        let unrouted = metrics.outbound(None, None);
        let certificates: Arc<identity::Certificates> = Arc::default();
        Arc::new(Self {
            config: ConfigStore::new(config, metrics.clone(), certificates.clone()),
            connections: Arc::default(),
            metrics,
            access_log,
            limits,
            unrouted,
            on_demand: Arc::default(),
            certificates,
        })
    }

    /// Records a request whose response body has ended: metrics, and the access log line.
    pub(crate) fn record(&self, mut outcome: Box<Outcome>, end: BodyEnd) {
        if end.source_failed {
            outcome
                .flags
                .insert(ResponseFlags::UPSTREAM_CONNECTION_TERMINATION);
        } else if end.incomplete {
            outcome
                .flags
                .insert(ResponseFlags::DOWNSTREAM_CONNECTION_TERMINATION);
        }
        if end.grpc_status.is_some() {
            outcome.grpc_status = end.grpc_status;
        }
        let duration = crate::clock::now().saturating_duration_since(outcome.started);
        let request = RequestOutcome {
            protocol: if outcome.grpc {
                RequestProtocol::Grpc
            } else {
                RequestProtocol::Http
            },
            response_code: outcome.status,
            grpc_status: outcome.grpc_status,
            flags: outcome.flags,
            duration,
            request_bytes: outcome.bytes_received,
            response_bytes: end.bytes,
        };
        let record = |edge: &Arc<EdgeMetrics>| edge.record_request(&request);
        match (outcome.cluster(), outcome.inbound.as_deref()) {
            (None, _) => record(&self.unrouted),
            (Some(cluster), Some(peer)) => peer.with_edge(
                &self.metrics,
                &cluster.config.name,
                cluster.config.service.as_ref(),
                record,
            ),
            (Some(cluster), None) => cluster.with_edge(outcome.endpoint, record),
        }
        if self.access_log.is_enabled() {
            fn header(value: &Option<::http::HeaderValue>) -> Option<&str> {
                value.as_ref().and_then(|v| v.to_str().ok())
            }
            self.access_log.log(&AccessLogEntry {
                duration,
                request: Some(HttpRequestInfo {
                    method: outcome.method.as_str(),
                    path: outcome.path.as_str(),
                    version: outcome.version,
                    authority: Some(outcome.authority.as_str()),
                    user_agent: header(&outcome.user_agent),
                    request_id: header(&outcome.request_id),
                    x_forwarded_for: header(&outcome.forwarded_for),
                }),
                response_code: outcome.status,
                response_flags: outcome.flags,
                response_code_details: Some(outcome.details()),
                bytes_received: outcome.bytes_received,
                bytes_sent: end.bytes,
                upstream_service_time: outcome.upstream_service_time,
                upstream_host: outcome.upstream,
                upstream_cluster: outcome.cluster().map(|c| c.config.name.as_str()),
                route_name: outcome.route.as_ref().map(|r| r.name.as_str()),
                downstream_local_address: Some(outcome.local),
                downstream_remote_address: Some(outcome.peer),
                ..AccessLogEntry::new(std::time::SystemTime::now() - duration)
            });
        }
    }

    /// The access log line of a TCP connection.
    pub(crate) fn record_tcp(&self, outcome: &TcpOutcome) {
        if self.access_log.is_enabled() {
            self.access_log.log(&AccessLogEntry {
                duration: outcome.started.elapsed(),
                response_flags: outcome.flags,
                bytes_received: outcome.received,
                bytes_sent: outcome.sent,
                upstream_host: outcome.upstream,
                upstream_cluster: outcome.cluster.as_ref().map(|c| c.config.name.as_str()),
                downstream_local_address: Some(outcome.local),
                downstream_remote_address: Some(outcome.peer),
                ..AccessLogEntry::new(outcome.started_at)
            });
        }
    }

    /// The proxy's metrics in Prometheus text format.
    pub fn metrics_text(&self) -> String {
        self.metrics.encode()
    }
}

/// A listener bound and served.
#[derive(Debug, Clone)]
pub struct Bound {
    pub name: String,
    pub address: SocketAddr,
}

/// Binds every listener of the configuration in force and serves them until `drain` turns
/// true. Returns the bound addresses (a configured port 0 gets a free port).
pub async fn start(
    proxy: &Arc<Proxy>,
    drain: watch::Receiver<bool>,
) -> std::io::Result<Vec<Bound>> {
    let snapshot = proxy.config.load();
    tokio::spawn(upstream::health::run(proxy.clone(), drain.clone()));
    let mut bound = Vec::new();
    for spec in &snapshot.config.listeners {
        let listener = TcpListener::bind(spec.address).await.map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("listener {} on {}: {e}", spec.name, spec.address),
            )
        })?;
        bound.push(Bound {
            name: spec.name.clone(),
            address: listener.local_addr()?,
        });
        tokio::spawn(listener::serve(
            proxy.clone(),
            listener,
            spec.name.clone(),
            drain.clone(),
        ));
    }
    Ok(bound)
}
