//! ServiceEntry findings: TCP ports of services that get no address to match their traffic by,
//! and ServiceEntries that give one host and port different protocols.
//!
//! The mesh is taken to run with its defaults: proxies capture DNS and addresses are allocated
//! automatically to ServiceEntries that have none. Only where allocation does not happen does a
//! TCP port lack an address.

use std::collections::{BTreeMap, BTreeSet};

use super::{Analyzer, Context, Entry, Report, export_scopes, messages, to_fqdn};
use crate::FieldPath;
use crate::networking::{AUTOALLOCATE_LABEL, ServiceEntry, ServiceEntryResolution};
use crate::resource::Object;
use crate::types::Protocol;

pub(super) const ANALYZERS: &[Analyzer] = &[addresses_required, conflicting_protocols];

/// IST0134: a port without a protocol (or TCP) is matched by destination address, and this
/// service gets none: it lists no `addresses` and automatic allocation passes over its wildcard
/// host. The proxy then sends all traffic on that port, whatever its destination, to this
/// service. (Resolution NONE and allocation turned off by label are the ServiceEntry's own
/// validation warnings, under the same code.)
fn addresses_required(ctx: &Context<'_>, report: &mut Report) {
    for (entry, service_entry) in ctx.each::<ServiceEntry>() {
        let Some(reason) = no_address_reason(service_entry) else {
            continue;
        };
        for (index, port) in service_entry.spec.ports.iter().enumerate() {
            if !matches!(port.protocol, None | Some(Protocol::Tcp)) {
                continue;
            }
            let protocol = port.protocol.map_or("no protocol", |_| "protocol TCP");
            report.add(
                messages::SERVICE_ENTRY_ADDRESSES_REQUIRED,
                entry,
                FieldPath::root().key("spec").key("ports").index(index),
                format!(
                    "port {} ({protocol}) is matched by destination address, but this \
                     ServiceEntry has none: {reason}; set addresses, or the port's traffic to \
                     any destination may be sent here",
                    port.number
                ),
            );
        }
    }
}

/// Why automatic allocation gives a ServiceEntry without `addresses` no address, if it does not.
fn no_address_reason(service_entry: &Object<ServiceEntry>) -> Option<String> {
    let spec = &service_entry.spec;
    if !spec.addresses.is_empty() || has_allocated_addresses(service_entry) {
        return None;
    }
    let resolution = spec.resolution();
    let opted_out = service_entry
        .metadata
        .labels
        .get(AUTOALLOCATE_LABEL)
        .is_some_and(|v| v.eq_ignore_ascii_case("false"));
    if resolution == ServiceEntryResolution::None || opted_out {
        return None; // the ServiceEntry's validation warns about these
    }
    if resolution != ServiceEntryResolution::DynamicDns {
        let wildcard = spec.hosts.iter().find(|h| h.starts_with('*'))?;
        return Some(format!(
            "none is allocated for the wildcard host {wildcard}"
        ));
    }
    None
}

/// Whether the mesh has already written allocated addresses into the object's status.
fn has_allocated_addresses(service_entry: &Object<ServiceEntry>) -> bool {
    let addresses = service_entry
        .status
        .as_ref()
        .and_then(|s| s.get("addresses"));
    addresses
        .and_then(|a| a.as_array())
        .is_some_and(|a| !a.is_empty())
}

/// IST0177: ServiceEntries that a namespace sees together give the same host and port different
/// protocols. The mesh keeps one definition, so the port's traffic is handled as one of them.
fn conflicting_protocols(ctx: &Context<'_>, report: &mut Report) {
    let service_entries: Vec<(&Entry, &Object<ServiceEntry>)> =
        ctx.each::<ServiceEntry>().collect();
    // (scope, host, port) -> [(ServiceEntry, port index, protocol)]
    let mut claims: BTreeMap<(String, String, u16), Vec<Claim>> = BTreeMap::new();
    for (at, (entry, service_entry)) in service_entries.iter().enumerate() {
        let spec = &service_entry.spec;
        for scope in export_scopes(&spec.export_to, entry.namespace()) {
            for host in &spec.hosts {
                for (port, p) in spec.ports.iter().enumerate() {
                    let key = (
                        scope.clone(),
                        to_fqdn(host, entry.namespace()),
                        p.number.get(),
                    );
                    claims.entry(key).or_default().push(Claim {
                        at,
                        port,
                        protocol: p.protocol,
                    });
                }
            }
        }
    }
    // (ServiceEntry, port index) -> (hosts, other ServiceEntries, protocols)
    let mut conflicts: BTreeMap<(usize, usize), Conflict> = BTreeMap::new();
    for ((scope, host, number), own) in &claims {
        let everywhere = match scope.as_str() {
            "*" => None,
            _ => claims.get(&("*".to_owned(), host.clone(), *number)),
        };
        let seen: Vec<&Claim> = own.iter().chain(everywhere.into_iter().flatten()).collect();
        let protocols: BTreeSet<String> = seen.iter().map(|c| protocol_name(c.protocol)).collect();
        if protocols.len() < 2 {
            continue;
        }
        for claim in &seen {
            let conflict = conflicts.entry((claim.at, claim.port)).or_default();
            conflict.hosts.insert(host.clone());
            conflict.protocols.extend(protocols.iter().cloned());
            let others = seen.iter().filter(|c| c.at != claim.at).map(|c| c.at);
            conflict
                .others
                .extend(others.map(|at| service_entries[at].0.full_name()));
        }
    }
    for ((at, port), conflict) in conflicts {
        let (entry, service_entry) = service_entries[at];
        let hosts: Vec<String> = conflict.hosts.into_iter().collect();
        let others: Vec<String> = conflict.others.into_iter().collect();
        let protocols: Vec<String> = conflict.protocols.into_iter().collect();
        let (kind, verb) = match others.len() {
            1 => ("ServiceEntry", "defines"),
            _ => ("ServiceEntries", "define"),
        };
        report.add(
            messages::CONFLICTING_SERVICE_ENTRY_PROTOCOL,
            entry,
            FieldPath::root()
                .key("spec")
                .key("ports")
                .index(port)
                .key("protocol"),
            format!(
                "{kind} {} also {verb} host {} port {} with another protocol (protocols: {}); the \
                 mesh keeps only one definition, so give the port the same protocol everywhere",
                others.join(", "),
                hosts.join(", "),
                service_entry.spec.ports[port].number,
                protocols.join(", "),
            ),
        );
    }
}

/// One ServiceEntry's port for a host, as seen from a scope.
#[derive(Debug, Clone, Copy)]
struct Claim {
    /// Index of the ServiceEntry.
    at: usize,
    /// Index of the port in the ServiceEntry.
    port: usize,
    protocol: Option<Protocol>,
}

#[derive(Debug, Default)]
struct Conflict {
    hosts: BTreeSet<String>,
    others: BTreeSet<String>,
    protocols: BTreeSet<String>,
}

/// The namespaces (or `*`, every namespace) a ServiceEntry in `namespace` is exported to.
fn protocol_name(protocol: Option<Protocol>) -> String {
    protocol.map_or_else(|| "unset".to_owned(), |p| p.as_str().to_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_scopes_follow_export_to() {
        let scopes = |list: &[&str]| {
            let list: Vec<String> = list.iter().map(|s| (*s).to_owned()).collect();
            export_scopes(&list, "shop").into_iter().collect::<Vec<_>>()
        };
        assert_eq!(scopes(&[]), ["*"]);
        assert_eq!(scopes(&["payments", "*"]), ["*"]);
        assert_eq!(scopes(&[".", "payments"]), ["payments", "shop"]);
    }
}
