//! Clusters at run time: their endpoints (with load, latency and connection pools) and the
//! balancer that picks among them.
//!
//! A cluster's runtime survives configuration updates that leave the cluster unchanged, so its
//! pooled connections and load statistics carry over.

pub mod health;
mod http1;
mod limits;
mod outlier;
mod pool;
pub mod secure;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use trellis_proxy_config::{Cluster, UpstreamProtocol, UpstreamTls};

pub use health::Health;
pub use limits::{Limits, Overflow, Slot};
pub use outlier::Outliers;
pub use pool::{
    Admission, DEFAULT_CONNECT_TIMEOUT, EndpointPool, Outgoing, SendError, UpstreamBody, Version,
};

use crate::balance::{self, Balancer, EndpointState};
use crate::identity::Certificates;
use crate::telemetry::{EdgeMetrics, Metrics};
use crate::tls::Alpn;
use crate::transport::Io;
use crate::worker::PerWorker;
use secure::{Origination, Security};

/// One cluster, ready to take requests.
#[derive(Debug)]
pub struct ClusterRuntime {
    pub config: Cluster,
    pub endpoints: Vec<EndpointState>,
    pools: Vec<Arc<EndpointPool>>,
    balancer: Box<dyn Balancer>,
    /// Present when the cluster detects outliers.
    outliers: Option<Outliers>,
    /// Present when the cluster has connection or request limits.
    pub limits: Option<Arc<Limits>>,
    /// Present when the cluster's endpoints are health checked.
    pub health: Option<Health>,
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
    /// Endpoints ejected by outlier detection.
    Ejections,
    /// Ejected endpoints back in balancing.
    Returns,
    /// Requests refused at a limit (flag `UO`).
    Overflows,
    /// Retries not made because retries were at their limit.
    RetryOverflows,
    /// Endpoints taken out of balancing by failed health checks.
    HealthFailures,
    /// Endpoints brought back by passed health checks.
    HealthReturns,
}

impl Stat {
    pub const ALL: [Stat; 12] = [
        Stat::Requests,
        Stat::ConnectFailures,
        Stat::Resets,
        Stat::Timeouts,
        Stat::Retries,
        Stat::NoEndpoint,
        Stat::Ejections,
        Stat::Returns,
        Stat::Overflows,
        Stat::RetryOverflows,
        Stat::HealthFailures,
        Stat::HealthReturns,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stat::Requests => "requests",
            Stat::ConnectFailures => "connect_failures",
            Stat::Resets => "resets",
            Stat::Timeouts => "timeouts",
            Stat::Retries => "retries",
            Stat::NoEndpoint => "no_endpoint",
            Stat::Ejections => "outlier_ejections",
            Stat::Returns => "outlier_returns",
            Stat::Overflows => "overflows",
            Stat::RetryOverflows => "retry_overflows",
            Stat::HealthFailures => "health_check_failures",
            Stat::HealthReturns => "health_check_returns",
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
    pub fn new(config: &Cluster, metrics: &Metrics, certificates: &Arc<Certificates>) -> Self {
        let connect_timeout = config.connect_timeout.map(|d| d.as_std());
        let idle_timeout = config.idle_timeout.map(|d| d.as_std());
        let destinations = metrics.destinations(config.service.as_ref());
        let origination = match &config.tls {
            Some(UpstreamTls::Origination(tls)) => Some(Origination::new(tls, &config.name)),
            _ => None,
        };
        Self {
            endpoints: config.endpoints.iter().map(EndpointState::new).collect(),
            pools: config
                .endpoints
                .iter()
                .map(|e| {
                    EndpointPool::new(
                        e.address,
                        connect_timeout,
                        idle_timeout,
                        config.tcp_keepalive.as_ref(),
                        Security::of(config, e, certificates, origination.as_ref(), &destinations),
                    )
                })
                .collect(),
            balancer: balance::build(&config.load_balancer, &config.endpoints),
            outliers: config
                .outlier_detection
                .as_ref()
                .map(|od| Outliers::new(od, config.endpoints.len())),
            limits: config.limits.as_ref().map(Limits::new),
            health: config
                .health_check
                .as_ref()
                .map(|check| Health::new(check, config.endpoints.len())),
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

    /// Calls `record` with the edge a request to `endpoint` is counted on: the cluster's, or,
    /// once the endpoint has shown its principal over the mesh's TLS, the one naming it.
    pub fn with_edge<R>(
        &self,
        endpoint: Option<usize>,
        record: impl FnOnce(&Arc<EdgeMetrics>) -> R,
    ) -> R {
        if let Some(pool) = endpoint.and_then(|i| self.pools.get(i))
            && let Some(learnt) = pool.learnt_edge()
        {
            return record(&learnt);
        }
        record(&self.metrics)
    }

    /// A fresh connection to endpoint `index` that will speak `alpn`, within the cluster's
    /// connect timeout (for the TCP proxy and upgrades, which do not use the pools).
    pub async fn connect(&self, index: usize, alpn: Alpn) -> Result<Io, SendError> {
        self.pools[index].connect_stream(alpn).await
    }

    /// An endpoint for the next request, skipping those in `avoid` when others exist, and
    /// those outlier detection ejected unless too few are left (panic) or the balancer offers
    /// nothing else.
    #[inline]
    pub fn pick(&self, hash: Option<u64>, avoid: &[usize]) -> Option<usize> {
        let ejecting = self
            .outliers
            .as_ref()
            .filter(|o| !o.none_ejected() && !o.panicking());
        let unhealthy = self.health.as_ref().filter(|h| !h.none_unhealthy());
        if ejecting.is_none() && unhealthy.is_none() {
            return self.balancer.pick(&self.endpoints, hash, avoid);
        }
        self.pick_around_unavailable(ejecting, unhealthy, hash, avoid)
    }

    /// [`Self::pick`] while some endpoints are ejected or unhealthy: apart from the request
    /// path's usual way.
    #[cold]
    #[inline(never)]
    fn pick_around_unavailable(
        &self,
        ejecting: Option<&Outliers>,
        unhealthy: Option<&Health>,
        hash: Option<u64>,
        avoid: &[usize],
    ) -> Option<usize> {
        // The balancer picks as usual; an ejected pick is avoided and the balancer asked again.
        const REPICKS: usize = 8;
        let mut skip = [0usize; 2 * REPICKS];
        let kept = avoid.len().min(REPICKS);
        skip[..kept].copy_from_slice(&avoid[..kept]);
        for len in kept..kept + REPICKS {
            let index = self.balancer.pick(&self.endpoints, hash, &skip[..len])?;
            let ejected = ejecting.is_some_and(|o| self.is_ejected(o, index));
            if !ejected && unhealthy.is_none_or(|h| h.is_healthy(index)) {
                return Some(index);
            }
            skip[len] = index;
        }
        // Every endpoint the balancer offered is out: balance as if none were.
        self.balancer.pick(&self.endpoints, hash, avoid)
    }

    fn is_ejected(&self, outliers: &Outliers, index: usize) -> bool {
        let Some(endpoint) = self.endpoints.get(index) else {
            return false;
        };
        outliers.is_ejected(index, endpoint.address, &self.config.name, &self.stats)
    }

    /// Whether endpoint `index` is ejected now (for `/clusters`), and how many times in a row
    /// it has been ejected.
    pub fn outlier_status(&self, index: usize) -> (bool, u32) {
        match &self.outliers {
            Some(outliers) => (self.is_ejected(outliers, index), outliers.ejections(index)),
            None => (false, 0),
        }
    }

    /// Whether endpoint `index` passes its health checks (always, when unchecked).
    pub fn is_healthy(&self, index: usize) -> bool {
        self.health.as_ref().is_none_or(|h| h.is_healthy(index))
    }

    /// Records the outcome of a try on endpoint `index` for outlier detection: the response's
    /// status, or 503 for a connection that failed or reset, 504 for a try out of time.
    pub fn report(&self, index: usize, status: u16) {
        if let (Some(outliers), Some(endpoint)) = (&self.outliers, self.endpoints.get(index)) {
            outliers.record(
                index,
                status,
                endpoint.address,
                &self.config.name,
                &self.stats,
            );
        }
    }

    pub fn pool(&self, endpoint: usize) -> &Arc<EndpointPool> {
        &self.pools[endpoint]
    }

    /// What a request must get past for a connection, when the cluster has limits.
    pub fn admission(&self) -> Option<Admission<'_>> {
        self.limits.as_ref().map(|limits| Admission {
            limits,
            pools: &self.pools,
        })
    }

    /// A connection slot for a connection the pools do not manage (the TCP proxy, upgrades):
    /// `Ok(None)` when the cluster has no limits.
    pub fn connection_slot(&self) -> Result<Option<Slot>, Overflow> {
        match &self.limits {
            None => Ok(None),
            Some(limits) => limits.connection().map(Some).ok_or(Overflow("connection")),
        }
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
