//! How a proxy names itself in its xDS `Node` (docs/control-plane.md): `id` is
//! `<workload>.<namespace>`, and `metadata` holds string fields under these keys.

use std::collections::BTreeMap;

use prost_types::value::Kind;

use crate::xds::Node;

/// `sidecar` or `gateway`.
pub const ROLE: &str = "ROLE";
/// Where a sidecar's outbound listener listens (`ip:port`).
pub const OUTBOUND_ADDRESS: &str = "OUTBOUND_ADDRESS";
/// Where a sidecar's application listens.
pub const APP_IP: &str = "APP_IP";
/// What a gateway's listeners bind.
pub const LISTEN_IP: &str = "LISTEN_IP";

/// A `Node` for `<workload>.<namespace>` with string metadata.
pub fn node(workload: &str, namespace: &str, metadata: &[(&str, String)]) -> Node {
    let fields = metadata
        .iter()
        .map(|(key, value)| {
            let value = prost_types::Value {
                kind: Some(Kind::StringValue(value.clone())),
            };
            ((*key).to_owned(), value)
        })
        .collect::<BTreeMap<_, _>>();
    Node {
        id: format!("{workload}.{namespace}"),
        cluster: workload.to_owned(),
        metadata: Some(prost_types::Struct { fields }),
    }
}

/// A string field of a node's metadata.
pub fn metadata(node: &Node, key: &str) -> Option<String> {
    match node.metadata.as_ref()?.fields.get(key)?.kind.as_ref()? {
        Kind::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}
