//! The mesh as the translation sees it: the configuration in force and the registry built from
//! it and from every workload source, versioned together. Rebuilt (off the async threads, since
//! ServiceEntry DNS names are resolved then) when the configuration or a source changes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use trellis_api::Resource;
use trellis_translate::Registry;

use crate::registry::{Workload, WorkloadSource};
use crate::store::ConfigSnapshot;

/// How long a registry change waits for others before the mesh is rebuilt.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// One consistent view of configuration and registry.
#[derive(Debug, Default)]
pub struct Mesh {
    /// Counts rebuilds, from 1.
    pub version: u64,
    pub config: Arc<ConfigSnapshot>,
    /// The configuration's resources and the sources' workloads (as WorkloadEntries).
    pub resources: Vec<Resource>,
    pub registry: Registry,
    /// Every workload with an address, by (namespace, name): the files' WorkloadEntries, then
    /// the sources' (which win).
    pub workloads: BTreeMap<(String, String), Workload>,
}

impl Mesh {
    pub fn build(
        version: u64,
        config: Arc<ConfigSnapshot>,
        sources: &[Arc<dyn WorkloadSource>],
    ) -> Self {
        let mut workloads: BTreeMap<(String, String), Workload> = config
            .resources
            .iter()
            .filter_map(Workload::from_entry)
            .map(|w| ((w.namespace.clone(), w.name.clone()), w))
            .collect();
        for source in sources {
            for w in source.workloads() {
                workloads.insert((w.namespace.clone(), w.name.clone()), w);
            }
        }
        let registered = sources
            .iter()
            .flat_map(|s| s.workloads())
            .map(|w| w.as_resource());
        let resources =
            trellis_api::latest_definitions(config.resources.iter().cloned().chain(registered));
        let registry = Registry::from_resources(&resources, &trellis_api::fs::resolve_host);
        for warning in registry.warnings() {
            tracing::warn!("{warning}");
        }
        Self {
            version,
            config,
            resources,
            registry,
            workloads,
        }
    }

    pub fn workload(&self, namespace: &str, name: &str) -> Option<&Workload> {
        self.workloads.get(&(namespace.to_owned(), name.to_owned()))
    }
}

/// Keeps a [`Mesh`] current: rebuilds it whenever the configuration or a source changes, until
/// `shutdown` resolves.
pub async fn maintain(
    mut config: watch::Receiver<Arc<ConfigSnapshot>>,
    sources: Vec<Arc<dyn WorkloadSource>>,
    published: watch::Sender<Arc<Mesh>>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut changes: Vec<watch::Receiver<u64>> = sources.iter().map(|s| s.changes()).collect();
    loop {
        let source_changed = async {
            if changes.is_empty() {
                return std::future::pending().await;
            }
            let waits = changes.iter_mut().map(|c| Box::pin(c.changed()));
            let _ = futures_util::future::select_all(waits).await;
        };
        tokio::select! {
            () = &mut shutdown => return,
            changed = config.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = source_changed => tokio::time::sleep(DEBOUNCE).await,
        }
        for c in &mut changes {
            c.borrow_and_update();
        }
        let snapshot = config.borrow_and_update().clone();
        let version = published.borrow().version + 1;
        let sources = sources.clone();
        let build = tokio::task::spawn_blocking(move || Mesh::build(version, snapshot, &sources));
        match build.await {
            Ok(mesh) => {
                tracing::debug!(version, config = mesh.config.version, "mesh rebuilt");
                published.send_replace(Arc::new(mesh));
            }
            Err(error) => tracing::error!(%error, "mesh rebuild failed"),
        }
    }
}
