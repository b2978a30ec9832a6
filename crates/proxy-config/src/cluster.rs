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
