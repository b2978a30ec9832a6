//! The configuration in force, as an immutable snapshot swapped whole on every update.
//!
//! Requests load the snapshot once when they start and keep it to the end, so an update never
//! changes a request half-way; building the next snapshot happens off to the side and takes no
//! lock the request path uses. Each worker has its own copy of the snapshot (the same compiled
//! routers and clusters, shared), so the reference a request takes is counted on a cache line
//! only its worker writes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use trellis_proxy_config::{Config, Listener};

use crate::fast_map::FastMap;
use crate::identity::Certificates;
use crate::rate_limit::TokenBucket;
use crate::router::Router;
use crate::telemetry::Metrics;
use crate::upstream::ClusterRuntime;
use crate::worker::PerWorker;

/// One version of the configuration, compiled.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub version: u64,
    pub config: Arc<Config>,
    pub routers: FastMap<String, Arc<Router>>,
    /// The token buckets routes draw from, by name.
    pub buckets: FastMap<String, Arc<TokenBucket>>,
    /// Each cluster's place in `cluster_list` (in the order of `config.clusters`), by name.
    clusters: FastMap<String, ClusterId>,
    cluster_list: Vec<Arc<ClusterRuntime>>,
    /// The captured listeners (bound nowhere), by the original destination they serve: their
    /// place in `config.listeners`.
    captured: BTreeMap<SocketAddr, usize>,
}

/// A cluster's place in its snapshot: what a request keeps, with the snapshot, to record its
/// telemetry against the cluster when its response ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterId(usize);

impl Snapshot {
    /// Compiles `config`, reusing the clusters of `previous` that did not change.
    pub fn compile(
        config: Config,
        version: u64,
        previous: Option<&Snapshot>,
        metrics: &Metrics,
        certificates: &Arc<Certificates>,
    ) -> Self {
        let routers = config
            .routes
            .iter()
            .map(|(name, table)| (name.clone(), Arc::new(Router::new(table))))
            .collect();
        let mut buckets: FastMap<String, Arc<TokenBucket>> = FastMap::default();
        let limits = config
            .routes
            .values()
            .flat_map(|table| &table.virtual_hosts)
            .flat_map(|host| &host.routes)
            .filter_map(|route| route.rate_limit.as_ref());
        for limit in limits {
            let reused = previous
                .and_then(|p| p.buckets.get(&limit.bucket))
                .filter(|old| old.is_for(limit));
            buckets.entry(limit.bucket.clone()).or_insert_with(|| {
                reused
                    .cloned()
                    .unwrap_or_else(|| Arc::new(TokenBucket::new(limit)))
            });
        }
        let mut clusters = FastMap::default();
        let mut cluster_list = Vec::with_capacity(config.clusters.len());
        for (name, cluster) in &config.clusters {
            let reused = previous
                .and_then(|p| p.cluster(name))
                .map(|(_, old)| old)
                .filter(|old| old.config == *cluster);
            let runtime = reused
                .cloned()
                .unwrap_or_else(|| Arc::new(ClusterRuntime::new(cluster, metrics, certificates)));
            clusters.insert(name.clone(), ClusterId(cluster_list.len()));
            cluster_list.push(runtime);
        }
        let captured = config
            .listeners
            .iter()
            .enumerate()
            .filter(|(_, l)| l.captured)
            .map(|(i, l)| (l.address, i))
            .collect();
        Self {
            version,
            config: Arc::new(config),
            routers,
            buckets,
            clusters,
            cluster_list,
            captured,
        }
    }

    /// Whether the configuration has captured listeners, to which redirected connections are
    /// handed by their original destination.
    pub fn has_captured(&self) -> bool {
        !self.captured.is_empty()
    }

    /// The captured listener serving connections originally headed for `destination`.
    pub fn captured(&self, destination: SocketAddr) -> Option<&Listener> {
        self.captured
            .get(&destination)
            .map(|&i| &self.config.listeners[i])
    }

    /// The cluster named `name`, with its place in this snapshot.
    pub fn cluster(&self, name: &str) -> Option<(ClusterId, &Arc<ClusterRuntime>)> {
        let id = *self.clusters.get(name)?;
        Some((id, &self.cluster_list[id.0]))
    }

    /// The cluster at `id`, which this snapshot gave.
    pub fn cluster_at(&self, id: ClusterId) -> &Arc<ClusterRuntime> {
        &self.cluster_list[id.0]
    }

    /// Every cluster, with its name, in the configuration's order.
    pub fn clusters(&self) -> impl Iterator<Item = (&str, &Arc<ClusterRuntime>)> {
        // `cluster_list` was made in the configuration's order.
        self.config
            .clusters
            .keys()
            .map(String::as_str)
            .zip(&self.cluster_list)
    }
}

/// Where the proxy keeps the snapshot in force.
#[derive(Debug)]
pub struct ConfigStore {
    /// The snapshot in force, a copy per worker.
    current: PerWorker<ArcSwap<Snapshot>>,
    /// Held while an update compiles and stores its snapshot, so that every worker ends with
    /// the same one.
    writing: Mutex<()>,
    updates: AtomicU64,
    metrics: Arc<Metrics>,
    /// The proxy's certificate, which clusters using the mesh's TLS connect with.
    certificates: Arc<Certificates>,
}

impl ConfigStore {
    pub fn new(config: Config, metrics: Arc<Metrics>, certificates: Arc<Certificates>) -> Self {
        let store = Self {
            current: PerWorker::default(),
            writing: Mutex::default(),
            updates: AtomicU64::new(0),
            metrics,
            certificates,
        };
        store.update(config);
        store
    }

    /// The snapshot in force (the running worker's copy).
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.mine().load_full()
    }

    /// Puts `config` in force; requests already running keep the snapshot they started with.
    pub fn update(&self, config: Config) -> u64 {
        let _writing = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        let version = self.updates.fetch_add(1, Ordering::Relaxed) + 1;
        let previous = self.load();
        let next = Snapshot::compile(
            config,
            version,
            Some(&previous),
            &self.metrics,
            &self.certificates,
        );
        for copy in self.current.iter() {
            copy.store(Arc::new(next.clone()));
        }
        self.metrics.config_applied(version);
        version
    }
}
