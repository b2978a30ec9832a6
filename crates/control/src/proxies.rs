//! Proxies: who a connecting proxy is, its configuration (the translation for its role and
//! workload, encoded per resource), and what the control plane knows of its state.
//!
//! A proxy says who it is in its xDS `Node`: `id` is `<workload>.<namespace>`, and `metadata`
//! may carry `ROLE` (`sidecar`, the default, or `gateway`), `OUTBOUND_ADDRESS` (where a sidecar's
//! outbound listener listens, `127.0.0.1:15001` by default), `APP_IP` (where a sidecar's
//! application listens, `127.0.0.1` by default) and `LISTEN_IP` (what a gateway's listeners
//! bind, `0.0.0.0` by default). Its labels and address are the registry's for that workload;
//! a workload the registry does not know gets outbound configuration only, and says so in
//! `trellis proxy-status`.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use serde::Serialize;
use trellis_proto::{OnDemandHost, encode, node, type_url, xds};
use trellis_proxy_config::Config;
use trellis_translate::{GatewayOptions, SidecarOptions, Translation};

use crate::mesh::Mesh;
use crate::registry::Workload;

/// What a proxy runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Sidecar,
    Gateway,
}

/// Who a proxy is, from its `Node`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProxyIdentity {
    pub workload: String,
    pub namespace: String,
    pub role: Role,
    pub outbound: SocketAddr,
    pub app_ip: IpAddr,
    pub listen_ip: IpAddr,
}

impl ProxyIdentity {
    /// `<workload>.<namespace>`.
    pub fn id(&self) -> String {
        format!("{}.{}", self.workload, self.namespace)
    }

    /// Reads a `Node`; the error says what is wrong with it.
    pub fn from_node(node: Option<&xds::Node>) -> Result<Self, String> {
        let node = node.ok_or("the first request has no node")?;
        let (workload, namespace) = node
            .id
            .rsplit_once('.')
            .filter(|(w, n)| !w.is_empty() && !n.is_empty())
            .ok_or_else(|| format!("node id {:?} is not <workload>.<namespace>", node.id))?;
        let get = |key: &str, default: &str| {
            node::metadata(node, key).unwrap_or_else(|| default.to_owned())
        };
        let role = match get(node::ROLE, "sidecar").as_str() {
            "sidecar" => Role::Sidecar,
            "gateway" => Role::Gateway,
            other => return Err(format!("ROLE {other:?} is not sidecar or gateway")),
        };
        let outbound = get(node::OUTBOUND_ADDRESS, "127.0.0.1:15001");
        let app_ip = get(node::APP_IP, "127.0.0.1");
        let listen_ip = get(node::LISTEN_IP, "0.0.0.0");
        Ok(Self {
            workload: workload.to_owned(),
            namespace: namespace.to_owned(),
            role,
            outbound: outbound
                .parse()
                .map_err(|_| format!("OUTBOUND_ADDRESS {outbound:?} is not an address and port"))?,
            app_ip: app_ip
                .parse()
                .map_err(|_| format!("APP_IP {app_ip:?} is not an IP address"))?,
            listen_ip: listen_ip
                .parse()
                .map_err(|_| format!("LISTEN_IP {listen_ip:?} is not an IP address"))?,
        })
    }

    /// The `Node` a proxy sends for this identity.
    pub fn to_node(&self) -> xds::Node {
        let role = match self.role {
            Role::Sidecar => "sidecar",
            Role::Gateway => "gateway",
        };
        node::node(
            &self.workload,
            &self.namespace,
            &[
                (node::ROLE, role.to_owned()),
                (node::OUTBOUND_ADDRESS, self.outbound.to_string()),
                (node::APP_IP, self.app_ip.to_string()),
                (node::LISTEN_IP, self.listen_ip.to_string()),
            ],
        )
    }

    /// A sidecar of `workload.namespace` with the defaults.
    pub fn sidecar(workload: &str, namespace: &str) -> Self {
        Self {
            workload: workload.to_owned(),
            namespace: namespace.to_owned(),
            role: Role::Sidecar,
            outbound: SocketAddr::from((Ipv4Addr::LOCALHOST, 15001)),
            app_ip: Ipv4Addr::LOCALHOST.into(),
            listen_ip: Ipv4Addr::UNSPECIFIED.into(),
        }
    }
}

/// One resource as sent: its version (a hash of its encoding) and its encoding.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub version: String,
    pub any: prost_types::Any,
}

/// Encoded resources by type URL, then name; shared between proxies that get the same.
pub type Resources = BTreeMap<&'static str, BTreeMap<String, Arc<Encoded>>>;

/// The on-demand hosts by the names a proxy may ask for them by: `<table>/<domain>` (in lower
/// case) to the resource name of the host with that domain. On-demand tables (a sidecar's
/// outbound one) have exact domains only.
pub type HostIndex = HashMap<String, String>;

/// A configuration, encoded.
#[derive(Debug, Default)]
struct Encoding {
    resources: Resources,
    hosts: HostIndex,
}

/// A proxy's configuration for one mesh version, as its stream sends it: the part it shares
/// with the proxies alike, held by reference, and its own.
#[derive(Debug)]
pub struct ProxyConfig {
    pub mesh_version: u64,
    /// Whether the registry knows the proxy's workload.
    pub known_workload: bool,
    common: Arc<Encoding>,
    own: Resources,
}

/// The resources of one type a proxy gets, shared and its own.
#[derive(Debug, Clone, Copy)]
pub struct OfKind<'a> {
    parts: [Option<&'a BTreeMap<String, Arc<Encoded>>>; 2],
}

impl<'a> OfKind<'a> {
    pub fn get(&self, name: &str) -> Option<&'a Arc<Encoded>> {
        self.parts.iter().flatten().find_map(|part| part.get(name))
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'a String, &'a Arc<Encoded>)> + use<'a> {
        self.parts.into_iter().flatten().flatten()
    }
}

impl ProxyConfig {
    /// The resources of type `kind`.
    pub fn of(&self, kind: &str) -> OfKind<'_> {
        OfKind {
            parts: [self.common.resources.get(kind), self.own.get(kind)],
        }
    }

    /// The on-demand host serving an asked name, `<table>/<authority>`: the one with the
    /// authority's host as a domain, else the one with the whole authority, as the proxy looks
    /// its virtual hosts up.
    pub fn host_for(&self, asked: &str) -> Option<&str> {
        let asked = asked.to_ascii_lowercase();
        let (table, authority) = asked.rsplit_once('/')?;
        let host = trellis_proxy_config::strip_port(authority);
        let hosts = &self.common.hosts;
        hosts
            .get(&OnDemandHost::name_of(table, host))
            .or_else(|| hosts.get(&asked))
            .map(String::as_str)
    }

    /// The version of the resource `kind` `name`, if there is one.
    pub fn version_of(&self, kind: &str, name: &str) -> Option<&String> {
        Some(&self.of(kind).get(name)?.version)
    }
}

/// The full translation for `identity`: configuration and warnings (for the debug API and
/// `trellis explain`).
pub fn translate(mesh: &Mesh, identity: &ProxyIdentity) -> Translation {
    let workload = mesh.workload(&identity.namespace, &identity.workload);
    match identity.role {
        Role::Sidecar => trellis_translate::sidecar(
            &mesh.resources,
            &mesh.registry,
            &sidecar_options(mesh, identity, workload),
        ),
        Role::Gateway => gateway(mesh, identity, workload),
    }
}

fn sidecar_options(
    mesh: &Mesh,
    identity: &ProxyIdentity,
    workload: Option<&Workload>,
) -> SidecarOptions {
    SidecarOptions {
        namespace: identity.namespace.clone(),
        labels: workload.map(|w| w.labels.clone()).unwrap_or_default(),
        outbound: identity.outbound,
        address: workload.map(|w| w.address),
        app_ip: identity.app_ip,
        trust_domain: mesh.trust_domain.clone(),
    }
}

fn gateway(mesh: &Mesh, identity: &ProxyIdentity, workload: Option<&Workload>) -> Translation {
    trellis_translate::gateway(
        &mesh.resources,
        &mesh.registry,
        &GatewayOptions {
            listen_ip: identity.listen_ip,
            namespace: Some(identity.namespace.clone()),
            labels: workload.map(|w| w.labels.clone()),
            trust_domain: mesh.trust_domain.clone(),
        },
    )
}

/// What makes two proxies' shared part of the configuration the same: a sidecar's outbound
/// side depends on its namespace, labels and outbound address; a gateway's on its namespace,
/// labels and listen address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SharedKey {
    role: Role,
    namespace: String,
    labels: Option<Vec<(String, String)>>,
    address: SocketAddr,
}

/// Translations shared by the proxies of one mesh version: replicas of a workload (and any
/// proxies alike) are translated and encoded once, and hold the same encoded resources.
#[derive(Debug, Default)]
pub struct Shared {
    version: u64,
    parts: HashMap<SharedKey, Arc<OnceLock<Arc<Encoding>>>>,
}

impl Shared {
    /// The shared part for `key` in `mesh`, translated by `make` if no proxy needed it yet.
    fn get(
        shared: &Mutex<Self>,
        mesh: &Mesh,
        key: SharedKey,
        make: impl FnOnce() -> Encoding,
    ) -> Arc<Encoding> {
        let cell = {
            let mut shared = shared.lock().expect("translation cache lock");
            if shared.version != mesh.version {
                shared.version = mesh.version;
                shared.parts.clear();
            }
            shared.parts.entry(key).or_default().clone()
        };
        cell.get_or_init(|| Arc::new(make())).clone()
    }
}

/// The configuration `identity` gets from `mesh`, its shared part from `shared`.
pub fn configure(mesh: &Mesh, identity: &ProxyIdentity, shared: &Mutex<Shared>) -> ProxyConfig {
    let workload = mesh.workload(&identity.namespace, &identity.workload);
    let labels = workload.map(|w| {
        w.labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    });
    let key = SharedKey {
        role: identity.role,
        namespace: identity.namespace.clone(),
        labels,
        address: match identity.role {
            Role::Sidecar => identity.outbound,
            Role::Gateway => SocketAddr::new(identity.listen_ip, 0),
        },
    };
    let common = Shared::get(shared, mesh, key, || {
        let translation = match identity.role {
            Role::Sidecar => trellis_translate::sidecar_outbound(
                &mesh.resources,
                &mesh.registry,
                &sidecar_options(mesh, identity, workload),
            ),
            Role::Gateway => gateway(mesh, identity, workload),
        };
        encode_all(&translation.config)
    });
    let own = match (identity.role, workload) {
        (Role::Sidecar, Some(workload)) => Some(
            trellis_translate::sidecar_inbound(
                &mesh.resources,
                &mesh.registry,
                &sidecar_options(mesh, identity, Some(workload)),
            )
            .config,
        ),
        _ => None,
    };
    ProxyConfig {
        mesh_version: mesh.version,
        known_workload: workload.is_some(),
        common,
        // The workload's own side has no on-demand table: nothing for the host index.
        own: own
            .map(|own| encode_all(&own).resources)
            .unwrap_or_default(),
    }
}

/// Every resource of `config`, encoded, the virtual hosts of on-demand tables each on its own.
fn encode_all(config: &Config) -> Encoding {
    let mut resources = Resources::new();
    let listeners = config.listeners.iter().map(|l| {
        let encoded = encoded(type_url::LISTENER, &encode::listener(l));
        (l.name.clone(), Arc::new(encoded))
    });
    resources.insert(type_url::LISTENER, listeners.collect());
    let tables = config.routes.values().map(|t| {
        let encoded = encoded(type_url::ROUTE_TABLE, &encode::route_table(t));
        (t.name.clone(), Arc::new(encoded))
    });
    resources.insert(type_url::ROUTE_TABLE, tables.collect());
    let mut hosts = HostIndex::new();
    let mut on_demand = BTreeMap::new();
    for table in config.routes.values().filter(|t| t.on_demand) {
        for host in &table.virtual_hosts {
            let (name, message) = encode::on_demand_host(&table.name, host);
            for domain in &host.domains {
                let asked = OnDemandHost::name_of(&table.name, &domain.to_ascii_lowercase());
                hosts.entry(asked).or_insert_with(|| name.clone());
            }
            let encoded = encoded(type_url::ON_DEMAND_HOST, &message);
            on_demand.insert(name, Arc::new(encoded));
        }
    }
    resources.insert(type_url::ON_DEMAND_HOST, on_demand);
    let clusters = config.clusters.values().map(|c| {
        let encoded = encoded(type_url::CLUSTER, &encode::cluster(c));
        (c.name.clone(), Arc::new(encoded))
    });
    resources.insert(type_url::CLUSTER, clusters.collect());
    Encoding { resources, hosts }
}

fn encoded(type_url: &str, message: &impl prost::Message) -> Encoded {
    let any = encode::to_any(type_url, message);
    // The default hasher's keys are fixed, so a resource keeps its version across restarts of
    // the control plane and a reconnecting proxy is not sent what it has.
    let mut hasher = std::hash::DefaultHasher::new();
    any.value.hash(&mut hasher);
    Encoded {
        version: format!("{:016x}", hasher.finish()),
        any,
    }
}

/// What the control plane knows of one connected proxy, for `trellis proxy-status`.
#[derive(Debug, Clone, Serialize)]
pub struct ProxyStatus {
    pub id: String,
    pub identity: ProxyIdentity,
    pub peer: Option<SocketAddr>,
    /// Seconds since the Unix epoch.
    pub connected_at: u64,
    pub known_workload: bool,
    /// The mesh version last translated for the proxy.
    pub mesh_version: u64,
    /// By type URL.
    pub types: BTreeMap<String, TypeStatus>,
}

/// The state of one resource type on one proxy.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TypeStatus {
    /// Resources the proxy holds (sent and not removed).
    pub resources: usize,
    /// The mesh version of the last response sent.
    pub sent: Option<u64>,
    /// The mesh version of the last response the proxy ACKed.
    pub acked: Option<u64>,
    /// The reason of the last NACK, until a later response is ACKed.
    pub nacked: Option<String>,
}

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ConfigSnapshot;

    #[test]
    fn replicas_share_their_outbound_side_and_keep_their_own_inbound() {
        let yaml = r#"
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec: {selector: {app: reviews}, ports: [{name: http, port: 9080}]}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-1, namespace: default}
spec: {address: 10.0.0.1, labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-2, namespace: default}
spec: {address: 10.0.0.2, labels: {app: reviews}}
"#;
        let load = trellis_api::load_text("mesh.yaml", yaml, &Default::default());
        let config = Arc::new(ConfigSnapshot {
            version: 1,
            resources: Arc::new(load.loaded.into_iter().map(|l| l.resource).collect()),
            errors: Default::default(),
        });
        let mesh = Mesh::build(1, config, &[], trellis_identity::DEFAULT_TRUST_DOMAIN);
        let shared = Mutex::default();
        let one = configure(
            &mesh,
            &ProxyIdentity::sidecar("reviews-1", "default"),
            &shared,
        );
        let two = configure(
            &mesh,
            &ProxyIdentity::sidecar("reviews-2", "default"),
            &shared,
        );
        let table = |c: &ProxyConfig| {
            c.of(type_url::ROUTE_TABLE)
                .get("outbound")
                .cloned()
                .unwrap()
        };
        assert!(
            Arc::ptr_eq(&table(&one), &table(&two)),
            "one encoding for both"
        );
        let listeners = |c: &ProxyConfig| -> Vec<String> {
            c.of(type_url::LISTENER)
                .iter()
                .map(|(name, _)| name.clone())
                .collect()
        };
        assert_eq!(
            listeners(&one),
            ["outbound", "inbound|9080"],
            "shared, then own"
        );
        let inbound = |c: &ProxyConfig| {
            c.of(type_url::LISTENER)
                .get("inbound|9080")
                .cloned()
                .unwrap()
        };
        assert_ne!(
            inbound(&one).version,
            inbound(&two).version,
            "each on its own address"
        );
        // The full translation agrees with what the stream sends.
        let full = translate(&mesh, &ProxyIdentity::sidecar("reviews-2", "default")).config;
        assert_eq!(encode_all(&full).resources[type_url::LISTENER].len(), 2);
        assert_eq!(
            encode_all(&full).resources[type_url::ROUTE_TABLE]["outbound"].version,
            table(&two).version
        );
    }
}
