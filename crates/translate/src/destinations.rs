//! Where a route sends traffic: the cluster a VirtualService `destination` stands for.
//!
//! The host is completed with the namespace of the VirtualService that wrote it. The port is
//! the destination's, else the service's only port, else the listener's port (Istio's rule).
//! Problems are reported here, where the destination is written, and the cluster is recorded
//! so that [`crate::clusters`] builds it.

use trellis_api::ObjectMeta;
use trellis_api::networking::Destination;

use crate::clusters::ClusterKey;
use crate::context::{Output, Scope};
use crate::destination_rules;
use crate::hosts::to_fqdn;

/// A destination as written, with where: the VirtualService and the destination's field path.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Written<'a> {
    pub(crate) destination: &'a Destination,
    pub(crate) source: &'a ObjectMeta,
    pub(crate) path: &'a str,
}

/// The name of the cluster `written` refers to, from a listener on `listener_port`.
pub(crate) fn cluster_for(
    cx: &Scope<'_>,
    written: Written<'_>,
    listener_port: u16,
    out: &mut Output,
) -> String {
    let Written {
        destination,
        source,
        path,
    } = written;
    let host = to_fqdn(&destination.host, &source.namespace);
    let service = cx.service(&host);
    let port = match (&destination.port, service) {
        (Some(selector), _) => selector.number.get(),
        (None, Some(service)) if service.ports.len() == 1 => service.ports[0].number,
        _ => listener_port,
    };
    let key = ClusterKey {
        host,
        port,
        subset: destination.subset.clone(),
    };
    let mut warn = |message: String| out.warnings.field("VirtualService", source, path, message);
    match service {
        None if cx.registry.get(&key.host).is_some() => warn(format!(
            "service {} is not exported to namespace {}; requests to it get 503 (UH)",
            key.host, cx.namespace
        )),
        None => warn(format!(
            "host {} is not in the registry (no Service, WorkloadEntry or ServiceEntry gives it endpoints); requests to it get 503 (UH)",
            key.host
        )),
        Some(service) if service.port(port).is_none() => {
            let ports: Vec<String> = service.ports.iter().map(|p| p.number.to_string()).collect();
            warn(format!(
                "service {} has no port {port} (it has {}); requests to it get 503 (UH)",
                key.host,
                if ports.is_empty() {
                    "none".to_owned()
                } else {
                    ports.join(", ")
                }
            ));
        }
        Some(_) => {}
    }
    if let Some(subset) = &key.subset {
        let rules = destination_rules::lookup(cx, &key.host, service.map(|s| s.namespace.as_str()));
        match &rules {
            None => warn(format!(
                "subset {subset} of {} is not defined: no DestinationRule for the host is visible in namespace {}; requests to it get 503 (NC)",
                key.host, cx.namespace
            )),
            Some(rules) if rules.subset(subset).is_none() => warn(format!(
                "subset {subset} of {} is not defined by DestinationRule {}; requests to it get 503 (NC)",
                key.host,
                rules.names()
            )),
            Some(_) => {}
        }
    }
    let name = key.name();
    out.clusters.insert(key);
    name
}
