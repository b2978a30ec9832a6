//! The mesh as the translation sees it: the configuration in force and the registry built from
//! it and from every workload source, versioned together, with the trust domain of its
//! workloads' identities. Rebuilt (off the async threads, since ServiceEntry DNS names are
//! resolved then) when the configuration or a source changes.

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
    /// The configuration's resources, and its Pods and the sources' workloads as WorkloadEntries.
    pub resources: Vec<Resource>,
    pub registry: Registry,
    /// Every workload with an address, by (namespace, name): the files' WorkloadEntries and
    /// Pods, then the sources' (which win).
    pub workloads: BTreeMap<(String, String), Workload>,
    /// The trust domain of workload identities, which proxies verify their peers against.
    pub trust_domain: String,
}

impl Mesh {
    pub fn build(
        version: u64,
        config: Arc<ConfigSnapshot>,
        sources: &[Arc<dyn WorkloadSource>],
        trust_domain: &str,
    ) -> Self {
        // Pods with addresses and the sources' workloads also join as the WorkloadEntries they
        // are equivalent to, so Services select them.
        let mut workloads: BTreeMap<(String, String), Workload> = BTreeMap::new();
        let mut entries = Vec::new();
        for resource in config.resources.iter() {
            if let Some(w) = Workload::from_resource(resource) {
                if matches!(resource, Resource::Pod(_)) {
                    entries.push(w.as_resource());
                }
                workloads.insert((w.namespace.clone(), w.name.clone()), w);
            }
        }
        for w in sources.iter().flat_map(|s| s.workloads()) {
            entries.push(w.as_resource());
            workloads.insert((w.namespace.clone(), w.name.clone()), w);
        }
        let resources =
            trellis_api::latest_definitions(config.resources.iter().cloned().chain(entries));
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
            trust_domain: trust_domain.to_owned(),
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
    trust_domain: String,
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
        let trust_domain = trust_domain.clone();
        let build = tokio::task::spawn_blocking(move || {
            Mesh::build(version, snapshot, &sources, &trust_domain)
        });
        match build.await {
            Ok(mesh) => {
                tracing::debug!(version, config = mesh.config.version, "mesh rebuilt");
                published.send_replace(Arc::new(mesh));
            }
            Err(error) => tracing::error!(%error, "mesh rebuild failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registered;

    #[test]
    fn pods_with_addresses_and_registered_workloads_back_services() {
        let yaml = r#"
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec: {selector: {app: reviews}, ports: [{name: http, port: 9080}]}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v1-abc, namespace: default, labels: {app: reviews, version: v1}}
spec: {serviceAccountName: bookinfo-reviews, containers: [{name: reviews, image: reviews}]}
status: {podIP: 10.0.0.7}
---
apiVersion: v1
kind: Pod
metadata: {name: pending, namespace: default, labels: {app: reviews}}
spec: {containers: [{name: reviews, image: reviews}]}
"#;
        let load = trellis_api::load_text("mesh.yaml", yaml, &Default::default());
        assert!(load.errors().is_empty(), "{:?}", load.errors());
        let config = Arc::new(ConfigSnapshot {
            version: 1,
            resources: Arc::new(load.loaded.into_iter().map(|l| l.resource).collect()),
            errors: Default::default(),
        });
        let registered = Registered::default();
        registered.register(Workload {
            name: "reviews-v2".into(),
            namespace: "default".into(),
            labels: [("app".to_owned(), "reviews".to_owned())].into(),
            address: "10.0.0.8".parse().unwrap(),
            service_account: None,
        });
        let sources: Vec<Arc<dyn WorkloadSource>> = vec![Arc::new(registered)];
        let mesh = Mesh::build(1, config, &sources, trellis_identity::DEFAULT_TRUST_DOMAIN);
        let pod = mesh
            .workload("default", "reviews-v1-abc")
            .expect("the pod is a workload");
        assert_eq!(pod.service_account.as_deref(), Some("bookinfo-reviews"));
        assert!(
            mesh.workload("default", "pending").is_none(),
            "no address, no workload"
        );
        let service = mesh
            .registry
            .get("reviews.default.svc.cluster.local")
            .unwrap();
        let addresses: Vec<String> = service
            .endpoints
            .iter()
            .map(|e| e.address.to_string())
            .collect();
        assert_eq!(addresses, ["10.0.0.7", "10.0.0.8"]);
    }
}
