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

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::SystemTime;

use serde::Serialize;
use trellis_proto::{encode, node, type_url, xds};
use trellis_proxy_config::Config;
use trellis_translate::{GatewayOptions, SidecarOptions};

use crate::mesh::Mesh;

/// What a proxy runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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

/// A proxy's configuration for one mesh version.
#[derive(Debug)]
pub struct ProxyConfig {
    pub mesh_version: u64,
    pub config: Config,
    pub warnings: Vec<String>,
    /// Whether the registry knows the proxy's workload.
    pub known_workload: bool,
    /// By type URL, then name.
    pub resources: BTreeMap<&'static str, BTreeMap<String, Encoded>>,
}

/// Translates the mesh for `identity`.
pub fn configure(mesh: &Mesh, identity: &ProxyIdentity) -> ProxyConfig {
    let workload = mesh.workload(&identity.namespace, &identity.workload);
    let labels = workload.map(|w| w.labels.clone()).unwrap_or_default();
    let translation = match identity.role {
        Role::Sidecar => trellis_translate::sidecar(
            &mesh.resources,
            &mesh.registry,
            &SidecarOptions {
                namespace: identity.namespace.clone(),
                labels,
                outbound: identity.outbound,
                address: workload.map(|w| w.address),
                app_ip: identity.app_ip,
            },
        ),
        Role::Gateway => trellis_translate::gateway(
            &mesh.resources,
            &mesh.registry,
            &GatewayOptions {
                listen_ip: identity.listen_ip,
                namespace: Some(identity.namespace.clone()),
                labels: workload.map(|w| w.labels.clone()),
            },
        ),
    };
    let config = translation.config;
    let mut resources: BTreeMap<&'static str, BTreeMap<String, Encoded>> = BTreeMap::new();
    let listeners = config.listeners.iter().map(|l| {
        (
            l.name.clone(),
            encoded(type_url::LISTENER, &encode::listener(l)),
        )
    });
    resources.insert(type_url::LISTENER, listeners.collect());
    let tables = config.routes.values().map(|t| {
        (
            t.name.clone(),
            encoded(type_url::ROUTE_TABLE, &encode::route_table(t)),
        )
    });
    resources.insert(type_url::ROUTE_TABLE, tables.collect());
    let clusters = config.clusters.values().map(|c| {
        (
            c.name.clone(),
            encoded(type_url::CLUSTER, &encode::cluster(c)),
        )
    });
    resources.insert(type_url::CLUSTER, clusters.collect());
    ProxyConfig {
        mesh_version: mesh.version,
        config,
        warnings: translation.warnings,
        known_workload: workload.is_some(),
        resources,
    }
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
