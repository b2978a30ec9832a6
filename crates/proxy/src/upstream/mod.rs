//! Clusters at run time: their endpoints (with load, latency and connection pools) and the
//! balancer that picks among them.
//!
//! A cluster's runtime survives configuration updates that leave the cluster unchanged, so its
//! pooled connections and load statistics carry over.

mod http1;
mod pool;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use trellis_proxy_config::{Cluster, UpstreamProtocol};

pub use pool::{DEFAULT_CONNECT_TIMEOUT, EndpointPool, Outgoing, SendError, UpstreamBody, Version};

use crate::balance::{self, Balancer, EndpointState};
use crate::telemetry::{EdgeMetrics, Metrics};

/// One cluster, ready to take requests.
#[derive(Debug)]
pub struct ClusterRuntime {
    pub config: Cluster,
    pub endpoints: Vec<EndpointState>,
    pools: Vec<Arc<EndpointPool>>,
    balancer: Box<dyn Balancer>,
    pub stats: ClusterStats,
    /// Where requests to this cluster are counted (Istio's metrics, labelled by its service).
    pub metrics: Arc<EdgeMetrics>,
}

/// Counters shown by `/clusters`.
#[derive(Debug, Default)]
pub struct ClusterStats {
    pub requests: AtomicU64,
    pub connect_failures: AtomicU64,
    pub resets: AtomicU64,
    pub timeouts: AtomicU64,
    pub retries: AtomicU64,
    pub no_endpoint: AtomicU64,
}

impl ClusterStats {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Every counter with its name, for the admin views.
    pub fn counters(&self) -> [(&'static str, u64); 6] {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        [
            ("requests", read(&self.requests)),
            ("connect_failures", read(&self.connect_failures)),
            ("resets", read(&self.resets)),
            ("timeouts", read(&self.timeouts)),
            ("retries", read(&self.retries)),
            ("no_endpoint", read(&self.no_endpoint)),
        ]
    }
}

impl ClusterRuntime {
    pub fn new(config: &Cluster, metrics: &Metrics) -> Self {
        let connect_timeout = config.connect_timeout.map(|d| d.as_std());
        let idle_timeout = config.idle_timeout.map(|d| d.as_std());
        Self {
            endpoints: config.endpoints.iter().map(EndpointState::new).collect(),
            pools: config
                .endpoints
                .iter()
                .map(|e| EndpointPool::new(e.address, connect_timeout, idle_timeout))
                .collect(),
            balancer: balance::build(&config.load_balancer, &config.endpoints),
            stats: ClusterStats::default(),
            metrics: metrics.outbound(config.service.as_ref(), None),
            config: config.clone(),
        }
    }

    /// Whether the balancer uses measured latencies (peak EWMA), so round trips must be fed
    /// to the endpoints.
    pub fn measures_latency(&self) -> bool {
        matches!(
            self.config.load_balancer,
            trellis_proxy_config::LoadBalancer::PeakEwma
        )
    }

    /// A fresh TCP connection to endpoint `index`, within the cluster's connect timeout (for the
    /// TCP proxy and upgrades, which do not use the pools).
    pub async fn connect(&self, index: usize) -> Result<tokio::net::TcpStream, SendError> {
        self.pools[index].connect_stream().await
    }

    /// An endpoint for the next request, skipping those in `avoid` when others exist.
    pub fn pick(&self, hash: Option<u64>, avoid: &[usize]) -> Option<usize> {
        self.balancer.pick(&self.endpoints, hash, avoid)
    }

    pub fn pool(&self, endpoint: usize) -> &Arc<EndpointPool> {
        &self.pools[endpoint]
    }

    /// The HTTP version to speak upstream for a request that arrived as `downstream`.
    pub fn version_for(&self, downstream: http::Version) -> Version {
        match self.config.protocol {
            UpstreamProtocol::Http1 => Version::Http1,
            UpstreamProtocol::Http2 => Version::Http2,
            UpstreamProtocol::SameAsDownstream if downstream == http::Version::HTTP_2 => {
                Version::Http2
            }
            UpstreamProtocol::SameAsDownstream => Version::Http1,
        }
    }
}
