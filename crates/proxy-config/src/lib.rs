//! The proxy's configuration model: what one `trellis-proxy` is told to do, independent of where
//! it came from (Istio YAML in standalone mode today, the control plane's xDS later).
//!
//! It is Envoy's model, trimmed to what Trellis implements: **listeners** accept connections
//! and hand them to an HTTP **route table** or straight to a **cluster**; route tables hold
//! **virtual hosts** (by authority) whose **routes** match requests and forward them to
//! weighted clusters, redirect them or answer them directly; **clusters** balance over
//! **endpoints**. Everything is plain data (serde, for `/config_dump`); the proxy compiles a
//! [`Config`] into its runtime form once per update and swaps it in whole.

mod cluster;
mod listener;
mod route;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use cluster::*;
pub use listener::*;
pub use route::*;
pub use trellis_api::types::{Duration, Regex, StringMatch};

/// Everything one proxy runs with.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Config {
    pub listeners: Vec<Listener>,
    /// Route tables by name; HTTP listeners refer to one.
    pub routes: BTreeMap<String, RouteTable>,
    /// Clusters by name; routes and TCP listeners refer to them.
    pub clusters: BTreeMap<String, Cluster>,
}

/// A reference from one part of the configuration to a part that does not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DanglingReference {
    /// Where the reference is (`listener http-8080`, `route bookinfo/productpage`).
    pub from: String,
    /// What kind of part it names: `cluster` or `route table`.
    pub kind: &'static str,
    /// The name of the part.
    pub to: String,
}

impl std::fmt::Display for DanglingReference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} refers to {} {}, which is not configured",
            self.from, self.kind, self.to
        )
    }
}

impl Config {
    /// Every reference to a route table or cluster that the configuration does not define.
    /// Requests that would follow one get `503 NC` (no cluster) or `404 NR` (no route).
    pub fn dangling_references(&self) -> Vec<DanglingReference> {
        let mut found = Vec::new();
        let cluster = |from: String, name: &str, found: &mut Vec<DanglingReference>| {
            if !self.clusters.contains_key(name) {
                found.push(DanglingReference {
                    from,
                    kind: "cluster",
                    to: name.to_owned(),
                });
            }
        };
        for listener in &self.listeners {
            let from = format!("listener {}", listener.name);
            if let Some(table) = listener.route_table()
                && !self.routes.contains_key(table)
            {
                found.push(DanglingReference {
                    from: from.clone(),
                    kind: "route table",
                    to: table.to_owned(),
                });
            }
            if let Some(name) = listener.tcp_cluster() {
                cluster(from, name, &mut found);
            }
        }
        for table in self.routes.values() {
            for host in &table.virtual_hosts {
                for route in &host.routes {
                    if let Action::Forward(forward) = &route.action {
                        for destination in &forward.destinations {
                            let from = format!("route {}/{}/{}", table.name, host.name, route.name);
                            cluster(from, &destination.cluster, &mut found);
                        }
                    }
                }
            }
        }
        found
    }
}
