//! The configuration in force, as an immutable snapshot swapped whole on every update.
//!
//! Requests load the snapshot once when they start and keep it to the end, so an update never
//! changes a request half-way; building the next snapshot happens off to the side and takes no
//! lock the request path uses.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use trellis_proxy_config::Config;

use crate::fast_map::FastMap;
use crate::router::Router;
use crate::telemetry::Metrics;
use crate::upstream::ClusterRuntime;

/// One version of the configuration, compiled.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub version: u64,
    pub config: Arc<Config>,
    pub routers: FastMap<String, Arc<Router>>,
    pub clusters: FastMap<String, Arc<ClusterRuntime>>,
}

impl Snapshot {
    /// Compiles `config`, reusing the clusters of `previous` that did not change.
    pub fn compile(
        config: Config,
        version: u64,
        previous: Option<&Snapshot>,
        metrics: &Metrics,
    ) -> Self {
        let routers = config
            .routes
            .iter()
            .map(|(name, table)| (name.clone(), Arc::new(Router::new(table))))
            .collect();
        let clusters = config
            .clusters
            .iter()
            .map(|(name, cluster)| {
                let reused = previous
                    .and_then(|p| p.clusters.get(name))
                    .filter(|old| old.config == *cluster);
                let runtime = reused
                    .cloned()
                    .unwrap_or_else(|| Arc::new(ClusterRuntime::new(cluster, metrics)));
                (name.clone(), runtime)
            })
            .collect();
        Self {
            version,
            config: Arc::new(config),
            routers,
            clusters,
        }
    }
}

/// Where the proxy keeps the snapshot in force.
#[derive(Debug)]
pub struct ConfigStore {
    current: ArcSwap<Snapshot>,
    updates: AtomicU64,
    metrics: Arc<Metrics>,
}

impl ConfigStore {
    pub fn new(config: Config, metrics: Arc<Metrics>) -> Self {
        let store = Self {
            current: ArcSwap::default(),
            updates: AtomicU64::new(0),
            metrics,
        };
        store.update(config);
        store
    }

    /// The snapshot in force.
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Puts `config` in force; requests already running keep the snapshot they started with.
    pub fn update(&self, config: Config) -> u64 {
        let version = self.updates.fetch_add(1, Ordering::Relaxed) + 1;
        let previous = self.current.load_full();
        let next = Snapshot::compile(config, version, Some(&previous), &self.metrics);
        self.current.store(Arc::new(next));
        self.metrics.config_applied(version);
        version
    }
}
