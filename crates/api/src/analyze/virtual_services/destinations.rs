//! Where a VirtualService sends traffic: hosts no Service or ServiceEntry provides, ports those
//! do not have, subsets no DestinationRule defines, and subsets ingress traffic never sees.

use std::collections::{BTreeMap, BTreeSet};

use super::{Target, TargetKind, host_covers, specificity, targets};
use crate::analyze::{CLUSTER_DOMAIN, Context, Entry, Report, ServiceHost, messages, to_fqdn};
use crate::meta::ROOT_NAMESPACE;
use crate::networking::{DestinationRule, MESH_GATEWAY, VirtualService};
use crate::resource::{Kind, Object};

/// IST0101 and IST0112: a destination host that no Service or ServiceEntry visible from the
/// VirtualService provides; a port the service does not have; no port, where the service has
/// several and the proxy cannot tell which one is meant.
pub(super) fn unknown_hosts_and_ports(ctx: &Context<'_>, report: &mut Report) {
    for (entry, vs) in ctx.each::<VirtualService>() {
        let namespace = entry.namespace();
        for target in targets(&vs.spec) {
            let host = &target.destination.host;
            let what = if target.kind == TargetKind::Mirror {
                "mirror host"
            } else {
                "destination host"
            };
            let Some(service) = ctx.find_host(namespace, &vs.spec.export_to, host) else {
                let text = format!(
                    "{what} {host:?} is not provided by any Service or ServiceEntry \
                     visible from namespace {namespace}{}",
                    unknown_host_hint(ctx, namespace, host)
                );
                let path = target.path.key("host");
                let fqdn = to_fqdn(host, namespace);
                match cluster_host_namespace(&fqdn).filter(|ns| !ctx.files_describe_services_in(ns)) {
                    Some(ns) => report.add_uncertain(
                        messages::REFERENCED_RESOURCE_NOT_FOUND,
                        entry,
                        path,
                        text,
                        &format!("the analyzed files define no services in namespace {ns}, so it may exist in the running mesh"),
                    ),
                    None => report.add(messages::REFERENCED_RESOURCE_NOT_FOUND, entry, path, text),
                }
                continue;
            };
            check_port(entry, &target, service, report);
        }
    }
}

/// Why a host may not have been found, when something close exists.
fn unknown_host_hint(ctx: &Context<'_>, namespace: &str, host: &str) -> String {
    let fqdn = to_fqdn(host, namespace);
    if let Some(hidden) = ctx.hosts().iter().find(|h| h.host == fqdn) {
        return format!(
            ": {} {} is not exported to it",
            hidden.entry.resource.kind(),
            hidden.entry.full_name()
        );
    }
    if !host.contains('.') {
        let prefix = format!("{host}.");
        let elsewhere = ctx
            .hosts()
            .iter()
            .find(|h| h.host.starts_with(&prefix) && h.host.ends_with(CLUSTER_DOMAIN));
        if let Some(other) = elsewhere {
            return format!("; a short name means {fqdn}, did you mean {}?", other.host);
        }
    }
    "; fix the host or define the service".to_owned()
}

fn check_port(entry: &Entry, target: &Target<'_>, service: &ServiceHost<'_>, report: &mut Report) {
    let host = &target.destination.host;
    let ports: Vec<String> = service.ports.iter().map(|p| p.number.to_string()).collect();
    match target.destination.port {
        None if ports.len() > 1 => report.add(
            messages::VIRTUAL_SERVICE_DESTINATION_PORT_SELECTOR_REQUIRED,
            entry,
            target.path.clone(),
            format!(
                "{host:?} has several ports ({}); set port.number to the one traffic should go to",
                ports.join(", ")
            ),
        ),
        Some(port) if !service.ports.iter().any(|p| p.number == port.number.get()) => report.add(
            messages::REFERENCED_RESOURCE_NOT_FOUND,
            entry,
            target.path.key("port").key("number"),
            format!(
                "{host:?} has no port {} ({}); use one of its ports",
                port.number.get(),
                if ports.is_empty() {
                    "it declares none".to_owned()
                } else {
                    format!("its ports: {}", ports.join(", "))
                },
            ),
        ),
        _ => {}
    }
}

/// IST0101: a destination subset that the DestinationRule in force for the host, seen from the
/// VirtualService's namespace, does not define (or no DestinationRule is in force at all).
pub(super) fn unknown_subsets(ctx: &Context<'_>, report: &mut Report) {
    let rules: Vec<_> = ctx.each::<DestinationRule>().collect();
    for (entry, vs) in ctx.each::<VirtualService>() {
        let namespace = entry.namespace();
        for target in targets(&vs.spec) {
            let Some(subset) = &target.destination.subset else {
                continue;
            };
            let host = to_fqdn(&target.destination.host, namespace);
            let service_namespace = ctx
                .find_host(namespace, &vs.spec.export_to, &target.destination.host)
                .map(|s| s.entry.namespace().to_owned())
                .or_else(|| cluster_host_namespace(&host).map(str::to_owned));
            let in_force = rules_in_force(&rules, namespace, service_namespace.as_deref(), &host);
            if in_force
                .as_ref()
                .is_some_and(|f| f.subsets.contains(subset.as_str()))
            {
                continue;
            }
            let text = missing_subset_text(&rules, namespace, &host, subset, in_force.as_ref());
            let path = target.path.key("subset");
            let code = messages::REFERENCED_RESOURCE_NOT_FOUND;
            let redefined = in_force.as_ref().and_then(|f| f.redefined.first());
            let owners = [
                Some(namespace),
                service_namespace.as_deref(),
                Some(ROOT_NAMESPACE),
            ];
            let described = owners
                .into_iter()
                .flatten()
                .any(|ns| ctx.files_describe(Kind::DestinationRule, ns));
            if let Some((rule, times)) = redefined {
                let why = format!(
                    "DestinationRule {rule} is defined {times} times in the analyzed files, and the last definition is the one analysed"
                );
                report.add_uncertain(code, entry, path, text, &why);
            } else if in_force.is_none() && !described {
                let why = "the analyzed files define no DestinationRules where one for this host could live, so it may exist in the running mesh";
                report.add_uncertain(code, entry, path, text, why);
            } else {
                report.add(code, entry, path, text);
            }
        }
    }
}

/// What to say about a subset the rules in force for `host` (if any) do not define, naming the
/// rules that define it but do not apply here.
fn missing_subset_text(
    rules: &[(&Entry, &Object<DestinationRule>)],
    namespace: &str,
    host: &str,
    subset: &str,
    in_force: Option<&InForce<'_>>,
) -> String {
    let mut text = format!("subset {subset:?} of {host} is not defined: ");
    match in_force {
        None => {
            text += &format!("no DestinationRule for the host applies in namespace {namespace}")
        }
        Some(found) if found.subsets.is_empty() => {
            text += &format!(
                "{}, in force for the host here, {} no subsets",
                plural("DestinationRule", &found.rules),
                verb(found.rules.len(), "defines", "define"),
            );
        }
        Some(found) => {
            let known: Vec<String> = found.subsets.iter().map(|s| format!("{s:?}")).collect();
            text += &format!(
                "{}, in force for the host here, {} only {}",
                plural("DestinationRule", &found.rules),
                verb(found.rules.len(), "defines", "define"),
                known.join(", "),
            );
        }
    }
    let elsewhere: Vec<String> = rules
        .iter()
        .filter(|(e, r)| {
            host_covers(&to_fqdn(&r.spec.host, e.namespace()), host)
                && r.spec.subsets.iter().any(|s| s.name == subset)
        })
        .map(|(e, _)| e.full_name())
        .collect();
    if !elsewhere.is_empty() {
        text += &format!(
            "; {} {} it, but {} not apply to routes in namespace {namespace} (check exportTo, \
             and the rules that take precedence)",
            plural("DestinationRule", &elsewhere),
            verb(elsewhere.len(), "defines", "define"),
            verb(elsewhere.len(), "does", "do"),
        );
    } else if in_force.is_some() {
        text += "; add it there, or route to a subset it defines";
    } else {
        text += "; define the subset in a DestinationRule for the host";
    }
    text
}

fn verb<'a>(count: usize, one: &'a str, many: &'a str) -> &'a str {
    if count == 1 { one } else { many }
}

/// `Kind a` or `Kinds a, b`.
fn plural(kind: &str, names: &[String]) -> String {
    format!(
        "{kind}{} {}",
        if names.len() == 1 { "" } else { "s" },
        names.join(", ")
    )
}

/// The DestinationRules in force for a host, merged.
struct InForce<'a> {
    rules: Vec<String>,
    subsets: BTreeSet<&'a str>,
    /// Rules among them that the files define more than once, with how many times.
    redefined: Vec<(String, usize)>,
}

/// The DestinationRules that apply to `host` for clients in `namespace`, as the mesh picks
/// them: those of the client's namespace first, then those the service's namespace exports to
/// the client, then those the root namespace exports to it. Within each, the rules for the most
/// specific matching host apply, merged. A rule with a workload selector counts like any other:
/// which workloads send the traffic is not known here.
fn rules_in_force<'a>(
    rules: &[(&Entry, &'a Object<DestinationRule>)],
    namespace: &str,
    service_namespace: Option<&str>,
    host: &str,
) -> Option<InForce<'a>> {
    let exported = |rule: &DestinationRule| {
        rule.export_to.is_empty() || rule.export_to.iter().any(|e| e == "*" || e == namespace)
    };
    let stages: [(Option<&str>, bool); 3] = [
        (Some(namespace), false),
        (service_namespace, true),
        (Some(ROOT_NAMESPACE), true),
    ];
    for (owner, needs_export) in stages {
        let Some(owner) = owner else { continue };
        let candidates: Vec<_> = rules
            .iter()
            .filter(|(entry, _)| entry.namespace() == owner)
            .filter(|(_, rule)| !needs_export || owner == namespace || exported(&rule.spec))
            .map(|(entry, rule)| (to_fqdn(&rule.spec.host, entry.namespace()), *entry, *rule))
            .filter(|(rule_host, _, _)| host_covers(rule_host, host))
            .collect();
        let Some(best) = candidates.iter().map(|(h, _, _)| specificity(h)).max() else {
            continue;
        };
        let chosen = candidates.iter().filter(|(h, _, _)| specificity(h) == best);
        let mut found = InForce {
            rules: Vec::new(),
            subsets: BTreeSet::new(),
            redefined: Vec::new(),
        };
        for (_, entry, rule) in chosen {
            found.rules.push(entry.full_name());
            if entry.definitions > 1 {
                found.redefined.push((entry.full_name(), entry.definitions));
            }
            found
                .subsets
                .extend(rule.spec.subsets.iter().map(|s| s.name.as_str()));
        }
        return Some(found);
    }
    None
}

/// The namespace of a Kubernetes service host (`reviews.prod.svc.cluster.local` is in `prod`).
fn cluster_host_namespace(host: &str) -> Option<&str> {
    let name = host.strip_suffix(CLUSTER_DOMAIN)?.strip_suffix('.')?;
    match name.split('.').collect::<Vec<_>>()[..] {
        [_, namespace] => Some(namespace),
        _ => None,
    }
}

/// IST0140: a gateway VirtualService routes to a host without a subset, while a sidecar
/// VirtualService for that host splits it into subsets. Gateways do not apply sidecar
/// VirtualServices, so ingress traffic bypasses that split and reaches every version.
pub(super) fn subsets_bypassed_by_ingress(ctx: &Context<'_>, report: &mut Report) {
    // host -> the sidecar VirtualServices that route it to subsets of itself
    let mut split: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (entry, vs) in ctx.each::<VirtualService>() {
        if !vs.spec.applies_to_mesh() {
            continue;
        }
        let namespace = entry.namespace();
        let own: BTreeSet<String> = vs
            .spec
            .hosts
            .iter()
            .map(|h| to_fqdn(h, namespace))
            .collect();
        for rule in &vs.spec.http {
            for to in rule
                .route
                .iter()
                .filter(|to| to.destination.subset.is_some())
            {
                let host = to_fqdn(&to.destination.host, namespace);
                if own.contains(&host) {
                    split.entry(host).or_default().insert(entry.full_name());
                }
            }
        }
    }
    for (entry, vs) in ctx.each::<VirtualService>() {
        if !vs.spec.gateways.iter().any(|g| g != MESH_GATEWAY) {
            continue;
        }
        let me = entry.full_name();
        for target in targets(&vs.spec) {
            if target.kind != TargetKind::Http || target.destination.subset.is_some() {
                continue;
            }
            let host = to_fqdn(&target.destination.host, entry.namespace());
            let Some(splitters) = split.get(&host) else {
                continue;
            };
            let others: Vec<String> = splitters.iter().filter(|n| **n != me).cloned().collect();
            if others.is_empty() {
                continue;
            }
            report.add(
                messages::INGRESS_ROUTE_RULES_NOT_AFFECTED,
                entry,
                target.path.key("host"),
                format!(
                    "ingress traffic reaches every version of {host}: the subsets {} {} it \
                     to apply to sidecar traffic only, as gateways do not use sidecar \
                     VirtualServices; name a subset here if ingress traffic should follow them",
                    plural("VirtualService", &others),
                    verb(others.len(), "routes", "route"),
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_hosts_name_their_namespace() {
        assert_eq!(
            cluster_host_namespace("reviews.prod.svc.cluster.local"),
            Some("prod")
        );
        assert_eq!(cluster_host_namespace("a.b.prod.svc.cluster.local"), None);
        assert_eq!(cluster_host_namespace("api.example.com"), None);
    }
}
