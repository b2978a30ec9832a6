//! Clusters: groups of interchangeable endpoints, and how requests are spread over them.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use trellis_api::types::Labels;

use crate::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cluster {
    /// Unique among clusters; Istio-derived names look like `outbound|9080|v1|reviews.default.svc.cluster.local`.
    pub name: String,
    #[serde(default)]
    pub load_balancer: LoadBalancer,
    pub endpoints: Vec<Endpoint>,
    /// The protocol spoken to the endpoints for HTTP traffic.
    #[serde(default)]
    pub protocol: UpstreamProtocol,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Duration>,
    /// Idle pooled connections are closed after this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<Duration>,
    /// Istio's service and subset the cluster stands for, for telemetry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceRef>,
    /// Endpoints that fail in a row are taken out of balancing for a while.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
    /// Circuit breaking: limits on connections and requests; none, no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ConnectionLimits>,
    /// TCP keep-alive probes on connections to the endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// Active health checking: endpoints that fail it leave balancing until they pass again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// TLS to the endpoints; none: plaintext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<UpstreamTls>,
    /// The resource whose policies shaped the cluster (`DestinationRule default/reviews`), for
    /// `trellis explain`; the proxy does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Active health checking, as Envoy's: every `interval` the proxy checks each endpoint, within
/// `timeout`; `unhealthy_threshold` failures in a row take an endpoint out of balancing and
/// `healthy_threshold` passes in a row bring it back. Endpoints start healthy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    pub check: HealthCheckKind,
    pub interval: Duration,
    pub timeout: Duration,
    pub unhealthy_threshold: u32,
    pub healthy_threshold: u32,
}

/// How an endpoint is checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthCheckKind {
    /// A connection can be made.
    Tcp,
    /// `GET path` over HTTP/1.1 answers 2xx.
    Http { path: String },
    /// The gRPC health protocol (`grpc.health.v1.Health/Check`) over h2c answers `SERVING`
    /// for `service` (empty: the server as a whole).
    Grpc { service: String },
}

/// Circuit breaking (Istio's `connectionPool`, Envoy's circuit breakers and pool settings):
/// each limit holds for the whole cluster, over all workers; `None` is no limit. A request past
/// a limit fails at once with 503 and flag `UO`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ConnectionLimits {
    /// Connections open to the cluster's endpoints (HTTP/1.1 and TCP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    /// Requests waiting for a connection when `max_connections` are open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pending_requests: Option<u32>,
    /// Requests in progress to the cluster, whatever the protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests: Option<u32>,
    /// Retries in progress to the cluster; past it a failed try is not retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// Requests an HTTP/1.1 connection carries before it is closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests_per_connection: Option<u32>,
    /// Retries in progress as a share of the requests in progress; when set, it takes the
    /// place of `max_retries`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_budget: Option<RetryBudget>,
}

/// A limit on retries that grows with the load (Istio's `retryBudget`, Envoy's semantics):
/// retries in progress may be `percent` of the requests in progress, or `min_concurrency`,
/// whichever is more, so that during an outage retries cannot multiply the load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryBudget {
    /// From 0 to 100.
    pub percent: f64,
    pub min_concurrency: u32,
}

/// `SO_KEEPALIVE` settings; unset fields keep the system's.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TcpKeepalive {
    /// Idle time before the first probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probes: Option<u32>,
}

/// Passive health checking (Istio's `outlierDetection`, Envoy's semantics): an endpoint that
/// fails `consecutive_5xx` times in a row (or `consecutive_gateway_errors` times with 502, 503
/// or 504; a connection that fails or resets counts as 503, a try that times out as 504) is
/// ejected from balancing for `base_ejection_time` times the number of times it has been
/// ejected (capped at [`OutlierDetection::MAX_EJECTION_TIME`] or the base time, whichever is
/// longer), then returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutlierDetection {
    /// None: 5xx responses do not eject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_5xx: Option<u32>,
    /// None: gateway errors do not eject by themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_gateway_errors: Option<u32>,
    /// How long an endpoint must go without being ejected for its ejection count to drop by one.
    pub interval: Duration,
    pub base_ejection_time: Duration,
    /// At most this share of the endpoints (0-100) is ejected at once; one endpoint always may
    /// be.
    pub max_ejection_percent: u32,
    /// With fewer than this share (0-100) of the endpoints healthy, balancing ignores ejections
    /// (panic mode); 0 never panics.
    pub min_health_percent: u32,
}

impl OutlierDetection {
    /// The longest an ejection lasts, unless the base ejection time is longer (Envoy's default).
    pub const MAX_EJECTION_TIME: std::time::Duration = std::time::Duration::from_secs(300);
}

/// TLS the proxy originates to a cluster's endpoints (a DestinationRule's `tls`, or the mesh's
/// automatic mutual TLS).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamTls {
    /// The mesh's mutual TLS (`ISTIO_MUTUAL`): the proxy's own workload certificate; the peer
    /// must show one from the mesh's roots whose SPIFFE id is among `identities` (any identity
    /// of the mesh when the list is empty).
    Mesh {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        identities: Vec<String>,
        /// Only to endpoints labelled [`MESH_TLS_LABEL`]`: istio` (they have a sidecar);
        /// plaintext to the others. Istio's automatic mutual TLS.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        automatic: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sni: Option<String>,
    },
    /// TLS with credentials from files (`SIMPLE`, or `MUTUAL` with a client certificate).
    Origination(TlsOrigination),
}

/// The label (set on workloads that run with a sidecar) that marks an endpoint as able to take
/// the mesh's mutual TLS.
pub const MESH_TLS_LABEL: &str = "security.istio.io/tlsMode";

/// `SIMPLE` and `MUTUAL` TLS origination; paths are files on the proxy's host.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TlsOrigination {
    /// PEM certificates to verify the server with; none: the system's roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificates: Option<String>,
    /// A client certificate chain and its key (PEM), for `MUTUAL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    /// Names the server's certificate must carry (DNS or URI SANs); empty: the SNI.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// Accept any server certificate (testing only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure_skip_verify: bool,
}

/// The service behind a cluster, as metrics label it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRef {
    /// `reviews.default.svc.cluster.local`
    pub host: String,
    pub name: String,
    pub namespace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    pub address: SocketAddr,
    /// Relative share of traffic (1 when unset).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub weight: u32,
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
}

fn one() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

impl Endpoint {
    pub fn new(address: SocketAddr) -> Self {
        Self {
            address,
            weight: 1,
            labels: Labels::new(),
        }
    }
}

/// The protocol the proxy speaks to a cluster's endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamProtocol {
    /// HTTP/1.1, pooled keep-alive connections.
    #[default]
    Http1,
    /// HTTP/2 with prior knowledge (h2c), multiplexed; gRPC needs it.
    Http2,
    /// Whatever the downstream request used.
    SameAsDownstream,
}

/// How a cluster picks an endpoint for each request.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadBalancer {
    #[default]
    RoundRobin,
    /// The less loaded of two endpoints picked at random (power of two choices).
    LeastRequest,
    Random,
    /// Consistent hashing on a ring of virtual nodes.
    RingHash {
        key: HashKey,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        minimum_ring_size: Option<u64>,
    },
    /// Consistent hashing with a Maglev lookup table (a prime size).
    Maglev {
        key: HashKey,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        table_size: Option<u64>,
    },
    /// The endpoint with the lower peak-EWMA latency of two picked at random, weighted by the
    /// requests in flight.
    PeakEwma,
}

/// What consistent hashing hashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HashKey {
    Header(String),
    Cookie {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        /// When set, the proxy sets the cookie if the request has none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttl: Option<Duration>,
    },
    SourceIp,
    QueryParameter(String),
}
