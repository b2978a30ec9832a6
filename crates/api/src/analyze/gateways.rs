//! Gateway findings: selectors that match no workload, server ports that the gateway's Service
//! does not expose, servers that claim the same host on the same port of the same workloads, and
//! one certificate served by several gateways.

use std::collections::{BTreeMap, BTreeSet};

use super::{Analyzer, Context, Report, Workload, messages};
use crate::FieldPath;
use crate::kube::{ServiceSpec, TargetPort, TransportProtocol};
use crate::networking::{Gateway, ServerTlsSettings};
use crate::types::{format_selector, labels_match};

pub(super) const ANALYZERS: &[Analyzer] = &[
    conflicting_gateways,
    gateway_workloads_and_ports,
    duplicate_certificates,
];

/// Servers by (selector, port): the gateway, bind address and hosts of each.
type Claims<'a> = BTreeMap<(String, u32), Vec<(String, &'a str, &'a Vec<String>)>>;

/// IST0145: two gateways select the same workloads and serve an overlapping host on the same
/// port (with the same bind address). The mesh merges their servers, and the routes of the
/// VirtualServices bound to either are tried in order of namespace and name: predictable, but
/// rarely what was meant.
fn conflicting_gateways(ctx: &Context<'_>, report: &mut Report) {
    // (selector, port) -> [(gateway, server index, hosts, bind)]
    let mut claims: Claims<'_> = BTreeMap::new();
    for (entry, gateway) in ctx.each::<Gateway>() {
        let selector = format_selector(&gateway.spec.selector);
        for server in &gateway.spec.servers {
            let bind = server.bind.as_deref().unwrap_or_default();
            claims
                .entry((selector.clone(), server.port.number))
                .or_default()
                .push((entry.full_name(), bind, &server.hosts));
        }
    }
    for (entry, gateway) in ctx.each::<Gateway>() {
        let selector = format_selector(&gateway.spec.selector);
        let me = entry.full_name();
        for (index, server) in gateway.spec.servers.iter().enumerate() {
            let bind = server.bind.as_deref().unwrap_or_default();
            let Some(others) = claims.get(&(selector.clone(), server.port.number)) else {
                continue;
            };
            let mut conflicting: Vec<&str> = others
                .iter()
                .filter(|(name, other_bind, hosts)| {
                    *name != me
                        && *other_bind == bind
                        && hosts.iter().any(|h| server.hosts.contains(h))
                })
                .map(|(name, _, _)| name.as_str())
                .collect();
            conflicting.sort_unstable();
            conflicting.dedup();
            if conflicting.is_empty() {
                continue;
            }
            report.add(
                messages::CONFLICTING_GATEWAYS,
                entry,
                FieldPath::root().key("spec").key("servers").index(index),
                format!(
                    "gateways {} also serve host {} on port {} of the workloads selected by {}; their routes are merged, tried in order of VirtualService namespace and name",
                    conflicting.join(", "),
                    server.hosts.join(","),
                    server.port.number,
                    if selector.is_empty() { "(no selector)" } else { &selector },
                ),
            );
        }
    }
}

/// IST0101: the selector matches no workload, so no proxy serves the gateway. IST0162: a server
/// listens on a port that no Service in front of the gateway's workloads exposes (as `port` or
/// `targetPort`), so clients cannot reach it through the Service.
fn gateway_workloads_and_ports(ctx: &Context<'_>, report: &mut Report) {
    for (entry, gateway) in ctx.each::<Gateway>() {
        let selector = &gateway.spec.selector;
        let shown = if selector.is_empty() {
            "(no selector)".to_owned()
        } else {
            format_selector(selector)
        };
        let workloads: Vec<&Workload<'_>> = ctx
            .workloads_where(None, |labels| labels_match(selector, labels))
            .collect();
        if workloads.is_empty() {
            report.add(
                messages::REFERENCED_RESOURCE_NOT_FOUND,
                entry,
                FieldPath::root().key("spec").key("selector"),
                format!(
                    "no workload in any namespace has labels {shown}, so no gateway proxy serves \
                     this gateway; check the selector against the labels of the gateway's pods"
                ),
            );
            continue;
        }
        let exposed = ExposedPorts::of(ctx, &workloads);
        for (index, server) in gateway.spec.servers.iter().enumerate() {
            let number = server.port.number;
            if number == 0 || exposed.numbers.contains(&number) {
                continue;
            }
            let problem = if exposed.services.is_empty() {
                "no Service selects them; add one that exposes this port".to_owned()
            } else {
                format!(
                    "no Service in front of them ({}) exposes it as a port or targetPort; add \
                     it to the gateway's Service",
                    exposed.services.join(", ")
                )
            };
            report.add(
                messages::GATEWAY_PORT_NOT_DEFINED_ON_SERVICE,
                entry,
                FieldPath::root()
                    .key("spec")
                    .key("servers")
                    .index(index)
                    .key("port")
                    .key("number"),
                format!(
                    "the workloads selected by {shown} listen on port {number}, but {problem} to \
                     reach this server through it"
                ),
            );
        }
    }
}

/// The ports of the Services in front of some workloads: their `port`s and `targetPort`s (named
/// target ports resolved through the workloads' containers), TCP only.
struct ExposedPorts {
    numbers: BTreeSet<u32>,
    /// `namespace/name` of each Service that selects one of the workloads.
    services: Vec<String>,
}

impl ExposedPorts {
    fn of(ctx: &Context<'_>, workloads: &[&Workload<'_>]) -> Self {
        let mut exposed = Self {
            numbers: BTreeSet::new(),
            services: Vec::new(),
        };
        for (entry, service) in ctx.each::<ServiceSpec>() {
            // A Service without a selector has its endpoints managed by hand: it selects nothing.
            let selector = &service.spec.selector;
            if selector.is_empty() {
                continue;
            }
            let selected: Vec<&&Workload<'_>> = workloads
                .iter()
                .filter(|w| w.namespace == entry.namespace() && labels_match(selector, w.labels))
                .collect();
            if selected.is_empty() {
                continue;
            }
            exposed.services.push(entry.full_name());
            let tcp = service
                .spec
                .ports
                .iter()
                .filter(|p| matches!(p.protocol, None | Some(TransportProtocol::Tcp)));
            for port in tcp {
                exposed.numbers.insert(port.port.get().into());
                match &port.target_port {
                    None => {}
                    Some(TargetPort::Number(target)) => {
                        exposed.numbers.insert(target.get().into());
                    }
                    Some(TargetPort::Name(name)) => {
                        let containers = selected
                            .iter()
                            .filter_map(|w| w.pod)
                            .flat_map(|p| &p.containers);
                        let named = containers
                            .flat_map(|c| &c.ports)
                            .filter(|p| p.name.as_ref() == Some(name));
                        exposed
                            .numbers
                            .extend(named.map(|p| u32::from(p.container_port.get())));
                    }
                }
            }
        }
        exposed
    }
}

/// IST0138: another gateway on (at least) the same workloads serves the same certificate.
/// Browsers reuse an HTTP/2 connection for every host a certificate covers, and the proxy routes
/// such a request by the connection's server, which can be the other gateway's: 404s follow.
fn duplicate_certificates(ctx: &Context<'_>, report: &mut Report) {
    let gateways: Vec<_> = ctx.each::<Gateway>().collect();
    for &(entry, gateway) in &gateways {
        let selector = &gateway.spec.selector;
        for (index, server) in gateway.spec.servers.iter().enumerate() {
            let Some(tls) = &server.tls else { continue };
            let mine = certificates(tls);
            let mut others: Vec<String> = Vec::new();
            let mut shared: BTreeSet<&String> = BTreeSet::new();
            for &(other_entry, other) in &gateways {
                if std::ptr::eq(other_entry, entry) || !labels_match(selector, &other.spec.selector)
                {
                    continue;
                }
                let theirs: BTreeSet<String> = other
                    .spec
                    .servers
                    .iter()
                    .filter_map(|s| s.tls.as_ref())
                    .flat_map(certificates)
                    .collect();
                let common: Vec<&String> = mine.iter().filter(|c| theirs.contains(*c)).collect();
                if !common.is_empty() {
                    others.push(other_entry.full_name());
                    shared.extend(common);
                }
            }
            if others.is_empty() {
                continue;
            }
            others.sort_unstable();
            others.dedup();
            report.add(
                messages::GATEWAY_DUPLICATE_CERTIFICATE,
                entry,
                FieldPath::root()
                    .key("spec")
                    .key("servers")
                    .index(index)
                    .key("tls"),
                format!(
                    "{} {} on the same workloads; clients that reuse an HTTP/2 connection across \
                     hosts may get 404s. Serve each certificate from one gateway, merging the \
                     servers that share it",
                    match others.len() {
                        1 => format!("gateway {} also serves", others[0]),
                        _ => format!("gateways {} also serve", others.join(", ")),
                    },
                    shared
                        .into_iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(" and "),
                ),
            );
        }
    }
}

/// The certificates a server's TLS settings serve, each as a description of where it comes from.
fn certificates(tls: &ServerTlsSettings) -> Vec<String> {
    let mut found: Vec<String> = std::iter::once(&tls.credential_name)
        .chain(&tls.credential_names)
        .filter(|name| !name.is_empty())
        .map(|name| format!("credential {name}"))
        .collect();
    let files = std::iter::once((&tls.server_certificate, &tls.private_key)).chain(
        tls.tls_certificates
            .iter()
            .map(|c| (&c.server_certificate, &c.private_key)),
    );
    found.extend(
        files
            .filter(|(cert, key)| !cert.is_empty() && !key.is_empty())
            .map(|(cert, key)| format!("certificate {cert} (key {key})")),
    );
    found
}
