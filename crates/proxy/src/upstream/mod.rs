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
use crate::worker::PerWorker;

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

/// What `/clusters` counts for a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    Requests,
    ConnectFailures,
    Resets,
    Timeouts,
    Retries,
    NoEndpoint,
}

impl Stat {
    pub const ALL: [Stat; 6] = [
        Stat::Requests,
        Stat::ConnectFailures,
        Stat::Resets,
        Stat::Timeouts,
        Stat::Retries,
        Stat::NoEndpoint,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stat::Requests => "requests",
            Stat::ConnectFailures => "connect_failures",
            Stat::Resets => "resets",
            Stat::Timeouts => "timeouts",
            Stat::Retries => "retries",
            Stat::NoEndpoint => "no_endpoint",
        }
    }
}

/// A cluster's counters, kept per worker and summed when read.
#[derive(Debug, Default)]
pub struct ClusterStats(PerWorker<[AtomicU64; Stat::ALL.len()]>);

impl ClusterStats {
    pub fn bump(&self, stat: Stat) {
        self.0.mine()[stat as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The count of `stat` over all workers.
    pub fn get(&self, stat: Stat) -> u64 {
        self.0
            .iter()
            .map(|counters| counters[stat as usize].load(Ordering::Relaxed))
            .sum()
    }

    /// Every counter with its name, for the admin views.
    pub fn counters(&self) -> [(&'static str, u64); Stat::ALL.len()] {
        Stat::ALL.map(|stat| (stat.name(), self.get(stat)))
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
