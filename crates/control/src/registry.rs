//! The service registry: which services exist, which workloads back them, and who each proxy's
//! workload is.
//!
//! Sources sit behind one trait, [`WorkloadSource`]. Services and workloads come from:
//!
//! - the configuration files: Kubernetes `Service`s, `ServiceEntry`s and `WorkloadEntry`s (read
//!   by `trellis-translate`'s registry), and `Pod`s that carry their address (`status.podIP`,
//!   as `kubectl get pod -o yaml` shows it), with their labels and service account;
//!   `Deployment`s name workloads but have no addresses, so they give none;
//! - [`Registered`]: workloads registered through the API (the local runner registers its pods
//!   there; `POST /registry/workloads` on the debug listener does the same over HTTP);
//! - (later) the Kubernetes API, behind the same trait.
//!
//! A workload from a source is given to the translation as the `WorkloadEntry` it is
//! equivalent to (same labels, address, service account), so Services select it as they select
//! entries from files.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use trellis_api::networking::WorkloadEntry;
use trellis_api::types::Labels;
use trellis_api::{Object, ObjectMeta, Resource};

/// One instance of an application, as a registry source knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Workload {
    pub name: String,
    pub namespace: String,
    #[serde(default)]
    pub labels: Labels,
    pub address: IpAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
}

impl Workload {
    /// The `WorkloadEntry` this workload is equivalent to.
    pub fn as_resource(&self) -> Resource {
        Resource::WorkloadEntry(Box::new(Object {
            api_version: "networking.istio.io/v1".to_owned(),
            kind: "WorkloadEntry".to_owned(),
            metadata: ObjectMeta {
                name: self.name.clone(),
                namespace: self.namespace.clone(),
                ..ObjectMeta::default()
            },
            spec: WorkloadEntry {
                address: Some(self.address.to_string()),
                labels: self.labels.clone(),
                service_account: self.service_account.clone(),
                ..WorkloadEntry::default()
            },
            status: None,
        }))
    }

    /// A `WorkloadEntry` or a `Pod` from the configuration files as a workload (if it has an
    /// IP address: a Pod's is its `status.podIP`).
    pub fn from_resource(resource: &Resource) -> Option<Self> {
        match resource {
            Resource::WorkloadEntry(entry) => Some(Self {
                name: entry.metadata.name.clone(),
                namespace: entry.metadata.namespace.clone(),
                labels: entry.spec.labels.clone(),
                address: entry.spec.address.as_deref()?.parse().ok()?,
                service_account: entry.spec.service_account.clone(),
            }),
            Resource::Pod(pod) => Some(Self {
                name: pod.metadata.name.clone(),
                namespace: pod.metadata.namespace.clone(),
                labels: pod.metadata.labels.clone(),
                address: pod.status.as_ref()?.get("podIP")?.as_str()?.parse().ok()?,
                service_account: pod
                    .spec
                    .service_account_name
                    .clone()
                    .or_else(|| pod.spec.service_account.clone()),
            }),
            _ => None,
        }
    }
}

/// A source of workloads, and of notice when they change.
pub trait WorkloadSource: Send + Sync + std::fmt::Debug {
    /// What the source is called in logs and the debug API.
    fn name(&self) -> &str;
    fn workloads(&self) -> Vec<Workload>;
    /// Changes whenever `workloads` would answer differently.
    fn changes(&self) -> watch::Receiver<u64>;
}

/// Workloads registered through the API.
#[derive(Debug, Clone)]
pub struct Registered {
    inner: Arc<Mutex<BTreeMap<(String, String), Workload>>>,
    changed: Arc<watch::Sender<u64>>,
}

impl Default for Registered {
    fn default() -> Self {
        Self {
            inner: Arc::default(),
            changed: Arc::new(watch::channel(0).0),
        }
    }
}

impl Registered {
    /// Adds or replaces the workload of that namespace and name.
    pub fn register(&self, workload: Workload) {
        let key = (workload.namespace.clone(), workload.name.clone());
        let replaced = self
            .inner
            .lock()
            .expect("registry lock")
            .insert(key, workload.clone());
        if replaced.as_ref() != Some(&workload) {
            tracing::info!(workload = %workload.name, namespace = %workload.namespace, address = %workload.address, "workload registered");
            self.changed.send_modify(|v| *v += 1);
        }
    }

    /// Removes a workload; whether it was registered.
    pub fn deregister(&self, namespace: &str, name: &str) -> bool {
        let removed = self
            .inner
            .lock()
            .expect("registry lock")
            .remove(&(namespace.to_owned(), name.to_owned()))
            .is_some();
        if removed {
            tracing::info!(workload = %name, %namespace, "workload deregistered");
            self.changed.send_modify(|v| *v += 1);
        }
        removed
    }
}

impl WorkloadSource for Registered {
    fn name(&self) -> &str {
        "api"
    }

    fn workloads(&self) -> Vec<Workload> {
        self.inner
            .lock()
            .expect("registry lock")
            .values()
            .cloned()
            .collect()
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}
