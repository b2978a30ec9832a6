//! Wire messages into the proxy's configuration model, checked field by field. A message that
//! breaks a rule is refused with a [`DecodeError`] naming the field (`virtual_hosts[0].routes[2]
//! .action`), so the NACK a proxy sends says what is wrong and where.

mod cluster;
mod route;

use std::net::SocketAddr;

use prost::Message;
use trellis_proxy_config as config;

use crate::{type_url, wire};

/// Why a resource was refused: the field (a path from the resource's root) and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", if .path.is_empty() { String::new() } else { format!("{}: ", .path) })]
pub struct DecodeError {
    pub path: String,
    pub message: String,
}

impl DecodeError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            path: String::new(),
            message: message.into(),
        }
    }

    /// The same error, seen from the field `field` of an enclosing message.
    fn within(mut self, field: &str) -> Self {
        self.path = match self.path.is_empty() {
            true => field.to_owned(),
            false if self.path.starts_with('[') => format!("{field}{}", self.path),
            false => format!("{field}.{}", self.path),
        };
        self
    }
}

/// Puts the field a result came from on its error.
pub(crate) trait Within<T> {
    fn within(self, field: &str) -> Result<T, DecodeError>;
}

impl<T> Within<T> for Result<T, DecodeError> {
    fn within(self, field: &str) -> Result<T, DecodeError> {
        self.map_err(|e| e.within(field))
    }
}

/// A required field: present, or an error naming it.
pub(crate) fn required<T>(value: Option<T>, field: &str) -> Result<T, DecodeError> {
    value.ok_or_else(|| DecodeError::new("is required").within(field))
}

/// Decodes each item, naming `field[i]` on the first error.
pub(crate) fn each<W, D>(
    items: Vec<W>,
    field: &str,
    decode: impl Fn(W) -> Result<D, DecodeError>,
) -> Result<Vec<D>, DecodeError> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| decode(item).within(&format!("{field}[{i}]")))
        .collect()
}

pub(crate) fn duration(d: prost_types::Duration) -> Result<config::Duration, DecodeError> {
    let nanos = u32::try_from(d.nanos)
        .ok()
        .filter(|&n| n < 1_000_000_000)
        .ok_or_else(|| DecodeError::new(format!("nanos {} is not 0-999999999", d.nanos)))?;
    let seconds = u64::try_from(d.seconds)
        .map_err(|_| DecodeError::new(format!("{}s is negative", d.seconds)))?;
    Ok(std::time::Duration::new(seconds, nanos).into())
}

pub(crate) fn opt_duration(
    d: Option<prost_types::Duration>,
    field: &str,
) -> Result<Option<config::Duration>, DecodeError> {
    d.map(duration).transpose().within(field)
}

pub(crate) fn socket_address(text: &str, field: &str) -> Result<SocketAddr, DecodeError> {
    text.parse().map_err(|_| {
        DecodeError::new(format!("{text:?} is not an IP address and port")).within(field)
    })
}

pub(crate) fn percent(value: f64, field: &str) -> Result<f64, DecodeError> {
    if (0.0..=100.0).contains(&value) {
        Ok(value)
    } else {
        Err(DecodeError::new(format!("{value} is not a percentage (0-100)")).within(field))
    }
}

/// A resource of any type.
#[derive(Debug, Clone, PartialEq)]
pub enum Resource {
    Listener(config::Listener),
    RouteTable(config::RouteTable),
    Cluster(Box<config::Cluster>),
    OnDemandHost(OnDemandHost),
}

impl Resource {
    pub fn name(&self) -> &str {
        match self {
            Resource::Listener(l) => &l.name,
            Resource::RouteTable(t) => &t.name,
            Resource::Cluster(c) => &c.name,
            Resource::OnDemandHost(h) => &h.name,
        }
    }
}

/// A virtual host of an on-demand route table, sent on its own.
#[derive(Debug, Clone, PartialEq)]
pub struct OnDemandHost {
    /// `<route_table>/<host.name>`.
    pub name: String,
    pub route_table: String,
    pub host: config::VirtualHost,
}

impl OnDemandHost {
    /// The resource name of the virtual host `host` of `route_table`; also the form of the
    /// names a proxy asks for, with an authority in place of the host's name.
    pub fn name_of(route_table: &str, host: &str) -> String {
        format!("{route_table}/{host}")
    }
}

/// Decodes a resource of type `type_url` from its protobuf bytes.
pub fn decode_resource(type_url: &str, bytes: &[u8]) -> Result<Resource, DecodeError> {
    let malformed = |e: prost::DecodeError| DecodeError::new(format!("malformed protobuf: {e}"));
    match type_url {
        type_url::LISTENER => {
            listener(wire::Listener::decode(bytes).map_err(malformed)?).map(Resource::Listener)
        }
        type_url::ROUTE_TABLE => {
            route::route_table(wire::RouteTable::decode(bytes).map_err(malformed)?)
                .map(Resource::RouteTable)
        }
        type_url::CLUSTER => cluster::cluster(wire::Cluster::decode(bytes).map_err(malformed)?)
            .map(|c| Resource::Cluster(Box::new(c))),
        type_url::ON_DEMAND_HOST => {
            route::on_demand_host(wire::OnDemandHost::decode(bytes).map_err(malformed)?)
                .map(Resource::OnDemandHost)
        }
        other => Err(DecodeError::new(format!(
            "{other:?} is not a resource type this proxy knows"
        ))),
    }
}

fn name(name: String) -> Result<String, DecodeError> {
    if name.is_empty() {
        Err(DecodeError::new("is empty").within("name"))
    } else {
        Ok(name)
    }
}

pub fn listener(l: wire::Listener) -> Result<config::Listener, DecodeError> {
    use wire::listener::Protocol;
    let reference = |value: String, field: &str| match value.is_empty() {
        true => Err(DecodeError::new("is empty").within(field)),
        false => Ok(value),
    };
    let protocol = match required(l.protocol, "protocol")? {
        Protocol::Http(h) => config::ListenerProtocol::Http {
            route_table: reference(h.route_table, "http.route_table")?,
        },
        Protocol::Tcp(t) => config::ListenerProtocol::Tcp {
            cluster: reference(t.cluster, "tcp.cluster")?,
        },
        Protocol::Detect(d) => config::ListenerProtocol::Detect {
            route_table: reference(d.route_table, "detect.route_table")?,
            tcp_cluster: d.tcp_cluster,
            detection_timeout: opt_duration(d.detection_timeout, "detect.detection_timeout")?,
        },
    };
    let mtls = l
        .mtls
        .map(|m| match wire::PeerMtls::try_from(m) {
            Ok(wire::PeerMtls::Strict) => Ok(config::PeerMtls::Strict),
            Ok(wire::PeerMtls::Permissive) => Ok(config::PeerMtls::Permissive),
            Ok(wire::PeerMtls::Unspecified) | Err(_) => {
                Err(DecodeError::new(format!("{m} is not a peer mTLS mode")).within("mtls"))
            }
        })
        .transpose()?;
    Ok(config::Listener {
        name: name(l.name)?,
        address: socket_address(&l.address, "address")?,
        protocol,
        mtls,
        inbound: l.inbound,
        captured: l.captured,
    })
}

pub use cluster::cluster;
pub use route::{on_demand_host, route_table};
