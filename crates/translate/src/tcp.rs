//! TCP listeners of a gateway: the one destination a TCP or TLS-passthrough server forwards
//! connections to.
//!
//! The VirtualServices bound to the server's Gateway whose hosts overlap the server's are read
//! in namespace/name order. A TCP server uses the first `tcp` rule whose matches (port,
//! gateways) fit it, as Istio does. A passthrough server uses the `tls` rules with a match that
//! fits: exactly one is needed, since a listener cannot choose among them by SNI yet, and the
//! SNI of connections is not checked (a warning says so unless the rule accepts `*`). The rule
//! must have one destination: weighted TCP routes are not supported yet. Whatever does not fit
//! is reported and the server gets no listener.

use trellis_api::ObjectMeta;
use trellis_api::networking::RouteDestination;

use crate::context::{Output, Scope};
use crate::destinations::{self, Written};
use crate::gateway::{GatewayServer, ServerKind};
use crate::hosts::{ServerHost, overlap, qualify_gateway, to_fqdn};
use crate::virtual_hosts::bound;

/// The cluster the listener of `server` forwards to, if one can be chosen.
pub(crate) fn cluster(
    cx: &Scope<'_>,
    server: &GatewayServer<'_>,
    out: &mut Output,
) -> Option<String> {
    let port = server.address.port();
    let fits = |vs_namespace: &str, match_port: Option<u32>, gateways: &[String]| {
        match_port.is_none_or(|p| p == 0 || p == u32::from(port))
            && (gateways.is_empty()
                || gateways.iter().any(|g| {
                    qualify_gateway(g, vs_namespace).as_deref() == Some(server.qualified.as_str())
                }))
    };
    let candidates: Vec<_> = bound(cx, &server.qualified)
        .into_iter()
        .filter(|vs| {
            server
                .server
                .hosts
                .iter()
                .map(|e| ServerHost::parse(e))
                .any(|offered| {
                    offered.offered_to(server.gateway.namespace(), vs.namespace())
                        && vs
                            .spec
                            .hosts
                            .iter()
                            .any(|h| overlap(offered.host, &to_fqdn(h, vs.namespace())))
                })
        })
        .collect();
    let warn = |out: &mut Output, message: String| {
        out.warnings
            .field("Gateway", server.gateway.meta, &server.path, message)
    };
    if server.kind == ServerKind::Tcp {
        for vs in &candidates {
            let found = vs.spec.tcp.iter().enumerate().find(|(_, rule)| {
                rule.r#match.is_empty()
                    || rule
                        .r#match
                        .iter()
                        .any(|m| fits(vs.namespace(), m.port, &m.gateways))
            });
            if let Some((i, rule)) = found {
                return single(
                    cx,
                    vs.meta,
                    &format!("spec.tcp[{i}].route"),
                    &rule.route,
                    port,
                    out,
                );
            }
        }
        warn(
            out,
            format!(
                "no VirtualService bound to {} has a tcp rule for port {port}; the server gets no listener",
                server.qualified
            ),
        );
        return None;
    }
    let mut found = Vec::new();
    for vs in &candidates {
        for (i, rule) in vs.spec.tls.iter().enumerate() {
            if rule
                .r#match
                .iter()
                .any(|m| fits(vs.namespace(), m.port, &m.gateways))
            {
                found.push((*vs, i, rule));
            }
        }
    }
    match found.as_slice() {
        [] => {
            warn(
                out,
                format!(
                    "no VirtualService bound to {} has a tls rule for port {port}; the server gets no listener",
                    server.qualified
                ),
            );
            None
        }
        [(vs, i, rule)] => {
            let sni_hosts = rule.r#match.iter().flat_map(|m| &m.sni_hosts);
            if !sni_hosts.clone().any(|h| h == "*") {
                let hosts: Vec<&str> = sni_hosts.map(String::as_str).collect();
                let message = format!(
                    "connections are forwarded whatever their SNI: choosing by SNI ({}) is not supported yet",
                    hosts.join(", ")
                );
                out.warnings.field(
                    "VirtualService",
                    vs.meta,
                    &format!("spec.tls[{i}].match"),
                    message,
                );
            }
            single(
                cx,
                vs.meta,
                &format!("spec.tls[{i}].route"),
                &rule.route,
                port,
                out,
            )
        }
        several => {
            let rules: Vec<String> = several
                .iter()
                .map(|(vs, i, _)| format!("VirtualService {} spec.tls[{i}]", vs.full_name()))
                .collect();
            warn(
                out,
                format!(
                    "several tls rules apply ({}), and choosing among them by SNI is not supported yet; the server gets no listener",
                    rules.join(", ")
                ),
            );
            None
        }
    }
}

/// The cluster of a rule's only destination (destinations without weight do not count when
/// there are several).
fn single(
    cx: &Scope<'_>,
    source: &ObjectMeta,
    path: &str,
    route: &[RouteDestination],
    port: u16,
    out: &mut Output,
) -> Option<String> {
    let weighted: Vec<(usize, &RouteDestination)> = if route.len() == 1 {
        route.iter().enumerate().collect()
    } else {
        route
            .iter()
            .enumerate()
            .filter(|(_, d)| d.weight.unwrap_or(0) > 0)
            .collect()
    };
    match weighted.as_slice() {
        [(j, to)] => {
            let path = format!("{path}[{j}].destination");
            let written = Written {
                destination: &to.destination,
                source,
                path: &path,
            };
            Some(destinations::cluster_for(cx, written, port, out))
        }
        _ => {
            let message = format!(
                "splits connections over {} destinations; weighted TCP routes are not supported yet, so the server gets no listener",
                weighted.len()
            );
            out.warnings.field("VirtualService", source, path, message);
            None
        }
    }
}

#[cfg(test)]
mod tests;
