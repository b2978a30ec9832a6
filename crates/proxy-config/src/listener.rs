//! Listeners: where the proxy accepts connections and what it does with them.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Listener {
    /// Unique among listeners (`0.0.0.0_8080`, `http-80`).
    pub name: String,
    pub address: SocketAddr,
    pub protocol: ListenerProtocol,
    /// The mesh's mutual TLS on accepted connections (PeerAuthentication); none: plaintext only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtls: Option<PeerMtls>,
    /// In front of the proxy's own workload (Envoy's `traffic_direction: INBOUND`): its
    /// requests are reported by the destination, with the client's identity.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inbound: bool,
    /// Not bound: it serves captured connections whose original destination is its address
    /// (a service's virtual IP and port), handed over by the listener the capture redirected
    /// them to (Envoy's `bind_to_port: false`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub captured: bool,
}

/// What an inbound listener accepts from its peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerMtls {
    /// Only mutual TLS with a certificate from the mesh's roots; plaintext is refused.
    Strict,
    /// Mutual TLS or plaintext, told apart by each connection's first bytes.
    Permissive,
}

/// What a listener does with an accepted connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListenerProtocol {
    /// HTTP/1.1 and HTTP/2 (prior knowledge), routed by the named route table.
    Http { route_table: String },
    /// Bytes forwarded to a cluster as they are.
    Tcp { cluster: String },
    /// The first bytes decide: HTTP goes to the route table, anything else (TLS included) to
    /// the cluster, or is closed when there is none.
    Detect {
        route_table: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tcp_cluster: Option<String>,
        /// How long to wait for the first bytes before deciding it is not HTTP (server-first
        /// protocols such as MySQL send nothing until the server speaks).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detection_timeout: Option<Duration>,
    },
}

impl Listener {
    /// The route table HTTP connections on this listener use, if any.
    pub fn route_table(&self) -> Option<&str> {
        match &self.protocol {
            ListenerProtocol::Http { route_table }
            | ListenerProtocol::Detect { route_table, .. } => Some(route_table),
            ListenerProtocol::Tcp { .. } => None,
        }
    }

    /// The cluster raw TCP connections on this listener go to, if any.
    pub fn tcp_cluster(&self) -> Option<&str> {
        match &self.protocol {
            ListenerProtocol::Tcp { cluster } => Some(cluster),
            ListenerProtocol::Detect { tcp_cluster, .. } => tcp_cluster.as_deref(),
            ListenerProtocol::Http { .. } => None,
        }
    }
}
