//! Policy findings: authorization policies and telemetry that select no workload or name a
//! namespace that does not exist, telemetry resources that compete for the same workloads, access
//! logging without a provider, and EnvoyFilter patches whose effect depends on the order filters
//! happen to be applied in.
//!
//! A workload is a Pod, a Deployment's pods or a WorkloadEntry. Offline, a namespace exists when
//! the analysed set declares it or puts a resource in it, or when every cluster has it.

use std::collections::{BTreeMap, BTreeSet};

use super::{Analyzer, Context, Entry, Report, Workload, messages};
use crate::FieldPath;
use crate::kube::NamespaceSpec;
use crate::meta::{DEFAULT_NAMESPACE, ROOT_NAMESPACE};
use crate::networking::{ApplyTo, EnvoyConfigObjectPatch, EnvoyFilter, PatchOperation};
use crate::security::AuthorizationPolicy;
use crate::telemetry::Telemetry;
use crate::types::{WorkloadSelector, format_selector};

pub(super) const ANALYZERS: &[Analyzer] = &[
    authorization_namespaces,
    authorization_workloads,
    telemetry_providers,
    telemetry_selectors,
    telemetry_defaults,
    envoy_filter_relative_patches,
];

/// Namespaces every cluster has.
const CLUSTER_NAMESPACES: [&str; 5] = [
    DEFAULT_NAMESPACE,
    "kube-system",
    "kube-public",
    "kube-node-lease",
    ROOT_NAMESPACE,
];

/// IST0101: a `source.namespaces` (or `notNamespaces`) entry of an authorization rule that
/// matches no namespace: most likely a misspelt name, which makes the rule match nothing (or
/// exclude nothing).
fn authorization_namespaces(ctx: &Context<'_>, report: &mut Report) {
    let mut known: BTreeSet<&str> = CLUSTER_NAMESPACES.into_iter().collect();
    known.extend(ctx.each::<NamespaceSpec>().map(|(e, _)| e.name()));
    known.extend(
        ctx.entries()
            .iter()
            .map(Entry::namespace)
            .filter(|n| !n.is_empty()),
    );
    for (entry, policy) in ctx.each::<AuthorizationPolicy>() {
        for (r, rule) in policy.spec.rules.iter().enumerate() {
            for (f, from) in rule.from.iter().enumerate() {
                let Some(source) = &from.source else { continue };
                let at = FieldPath::root()
                    .key("spec")
                    .key("rules")
                    .index(r)
                    .key("from")
                    .index(f)
                    .key("source");
                for (key, list) in [
                    ("namespaces", &source.namespaces),
                    ("notNamespaces", &source.not_namespaces),
                ] {
                    for (index, pattern) in list.iter().enumerate() {
                        if known.iter().any(|ns| namespace_matches(ns, pattern)) {
                            continue;
                        }
                        report.add(
                            messages::REFERENCED_RESOURCE_NOT_FOUND,
                            entry,
                            at.key(key).index(index),
                            format!(
                                "namespace {pattern:?} matches no namespace in the configuration; check the name"
                            ),
                        );
                    }
                }
            }
        }
    }
}

/// Whether namespace `ns` matches an authorization pattern: exact (ignoring case), `*`, a
/// `prefix*` or a `*suffix`.
fn namespace_matches(ns: &str, pattern: &str) -> bool {
    if pattern == "*" {
        true
    } else if let Some(suffix) = pattern.strip_prefix('*') {
        ns.ends_with(suffix)
    } else if let Some(prefix) = pattern.strip_suffix('*') {
        ns.starts_with(prefix)
    } else {
        ns.eq_ignore_ascii_case(pattern)
    }
}

/// IST0127: an authorization policy that applies to no workload. A policy in the root namespace
/// applies mesh-wide, so its selector may match workloads anywhere; elsewhere it applies to its
/// own namespace. Policies attached with `targetRef(s)` are not about workloads and are skipped.
fn authorization_workloads(ctx: &Context<'_>, report: &mut Report) {
    for (entry, policy) in ctx.each::<AuthorizationPolicy>() {
        let spec = &policy.spec;
        if spec.target_ref.is_some() || !spec.target_refs.is_empty() {
            continue;
        }
        let namespace = entry.namespace();
        let mesh_wide = namespace == ROOT_NAMESPACE;
        match &spec.selector {
            None if mesh_wide => {}
            None => {
                if ctx
                    .workloads_where(Some(namespace), |_| true)
                    .next()
                    .is_none()
                {
                    report.add(
                        messages::NO_MATCHING_WORKLOADS_FOUND,
                        entry,
                        FieldPath::root(),
                        format!("no workload runs in namespace {namespace}, so this policy applies to nothing"),
                    );
                }
            }
            Some(selector) => {
                let scope = (!mesh_wide).then_some(namespace);
                if ctx
                    .workloads_where(scope, |labels| selector.matches(labels))
                    .next()
                    .is_none()
                {
                    let place = if mesh_wide {
                        "any namespace".to_owned()
                    } else {
                        format!("namespace {namespace}")
                    };
                    report.add(
                        messages::NO_MATCHING_WORKLOADS_FOUND,
                        entry,
                        FieldPath::root().key("spec").key("selector"),
                        format!(
                            "no workload in {place} has the labels {}, so this policy applies to nothing; check the selector",
                            describe_selector(selector)
                        ),
                    );
                }
            }
        }
    }
}

fn describe_selector(selector: &WorkloadSelector) -> String {
    if selector.match_labels.is_empty() {
        "(any)".to_owned()
    } else {
        format_selector(&selector.match_labels)
    }
}

/// IST0157: an access-logging entry that names no provider. Without providers it uses the
/// mesh's default access-log providers, and a mesh configured by default has none, so nothing is
/// logged. (The mesh configuration is not read offline; the default is assumed.)
fn telemetry_providers(ctx: &Context<'_>, report: &mut Report) {
    for (entry, telemetry) in ctx.each::<Telemetry>() {
        for (index, logging) in telemetry.spec.access_logging.iter().enumerate() {
            if logging.disabled == Some(true) || !logging.providers.is_empty() {
                continue;
            }
            report.add(
                messages::INVALID_TELEMETRY_PROVIDER,
                entry,
                FieldPath::root().key("spec").key("accessLogging").index(index),
                "names no provider, and the mesh has no default access-log provider unless its configuration sets one, so nothing is logged: list a provider (such as envoy)",
            );
        }
    }
}

/// IST0101 and IST0159: a Telemetry whose selector matches no workload of its namespace, and
/// Telemetries whose selectors match the same workload (which one applies is not defined).
fn telemetry_selectors(ctx: &Context<'_>, report: &mut Report) {
    // workload -> the telemetries that select it
    let mut selected: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut selectors: Vec<(&Entry, Vec<&Workload<'_>>)> = Vec::new();
    for (entry, telemetry) in ctx.each::<Telemetry>() {
        let Some(selector) = telemetry
            .spec
            .selector
            .as_ref()
            .filter(|s| !s.match_labels.is_empty())
        else {
            continue;
        };
        let workloads: Vec<&Workload<'_>> = ctx
            .workloads_where(Some(entry.namespace()), |labels| selector.matches(labels))
            .collect();
        if workloads.is_empty() {
            report.add(
                messages::REFERENCED_RESOURCE_NOT_FOUND,
                entry,
                FieldPath::root().key("spec").key("selector"),
                format!(
                    "no workload in namespace {} has the labels {}, so this Telemetry applies to nothing; check the selector",
                    entry.namespace(),
                    format_selector(&selector.match_labels)
                ),
            );
        }
        for workload in &workloads {
            selected
                .entry(workload.entry.resource.display_name())
                .or_default()
                .insert(entry.name().to_owned());
        }
        selectors.push((entry, workloads));
    }
    for (entry, workloads) in selectors {
        let mut others: BTreeSet<&str> = BTreeSet::new();
        let mut shared: BTreeSet<String> = BTreeSet::new();
        for workload in workloads {
            let name = workload.entry.resource.display_name();
            let rivals = &selected[&name];
            if rivals.len() > 1 {
                others.extend(
                    rivals
                        .iter()
                        .map(String::as_str)
                        .filter(|n| *n != entry.name()),
                );
                shared.insert(name);
            }
        }
        if others.is_empty() {
            continue;
        }
        let others: Vec<&str> = others.into_iter().collect();
        let (rivals, verb) = match others.as_slice() {
            [one] => (format!("Telemetry {one}"), "selects"),
            _ => (format!("Telemetries {}", others.join(", ")), "select"),
        };
        report.add(
            messages::CONFLICTING_TELEMETRY_WORKLOAD_SELECTORS,
            entry,
            FieldPath::root().key("spec").key("selector"),
            format!(
                "{rivals} also {verb} {}, and which one applies there is not defined; make the selectors select different workloads, or merge the Telemetries",
                shared.into_iter().collect::<Vec<_>>().join(", ")
            ),
        );
    }
}

/// IST0160: more than one Telemetry in a namespace applies to all its workloads (no selector,
/// no targetRef); which one applies is not defined.
fn telemetry_defaults(ctx: &Context<'_>, report: &mut Report) {
    let mut by_namespace: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
    for (entry, telemetry) in ctx.each::<Telemetry>() {
        let spec = &telemetry.spec;
        if spec.selector.is_none() && spec.target_ref.is_none() && spec.target_refs.is_empty() {
            by_namespace
                .entry(entry.namespace())
                .or_default()
                .push(entry);
        }
    }
    for (namespace, entries) in by_namespace {
        if entries.len() < 2 {
            continue;
        }
        for entry in &entries {
            let others: Vec<&str> = entries
                .iter()
                .map(|e| e.name())
                .filter(|n| *n != entry.name())
                .collect();
            let scope = if namespace == ROOT_NAMESPACE {
                "the whole mesh".to_owned()
            } else {
                format!("every workload of namespace {namespace}")
            };
            report.add(
                messages::MULTIPLE_TELEMETRIES_WITHOUT_WORKLOAD_SELECTORS,
                entry,
                FieldPath::root(),
                format!(
                    "this Telemetry and {} have no selector, so each applies to {scope}, and which one wins is not defined; merge them into one",
                    others.join(", ")
                ),
            );
        }
    }
}

/// IST0151, IST0155: a patch placed relative to other configuration (REMOVE, REPLACE,
/// INSERT_BEFORE, INSERT_AFTER) in an EnvoyFilter without a priority. Whether what it is
/// relative to exists yet depends on the order EnvoyFilters are applied in. When another patch
/// of the same filter is limited to some proxy versions (the usual way to upgrade one), the
/// order is even less predictable during an upgrade, and IST0155 says so.
///
/// Operations that have no effect on what `applyTo` names (REMOVE on a ROUTE_CONFIGURATION,
/// REPLACE on a CLUSTER, ...) are reported by EnvoyFilter validation, so they are left out here.
fn envoy_filter_relative_patches(ctx: &Context<'_>, report: &mut Report) {
    // (filter entry, patch index, filter name) of patches limited to proxy versions
    let mut versioned: Vec<(&Entry, usize, String)> = Vec::new();
    for (entry, filter) in ctx.each::<EnvoyFilter>() {
        for (index, patch) in patches(&filter.spec) {
            let version = patch
                .r#match
                .as_ref()
                .and_then(|m| m.proxy.as_ref())
                .and_then(|p| p.proxy_version.as_deref());
            if let (Some(_), Some(name)) =
                (version.filter(|v| !v.is_empty()), patched_filter(patch))
            {
                versioned.push((entry, index, name));
            }
        }
    }
    for (entry, filter) in ctx.each::<EnvoyFilter>() {
        if filter.spec.priority.unwrap_or(0) != 0 {
            continue;
        }
        for (index, patch) in patches(&filter.spec) {
            let (Some(apply_to), Some(operation)) = (
                patch.apply_to,
                patch.patch.as_ref().and_then(|p| p.operation),
            ) else {
                continue;
            };
            if !is_relative(apply_to, operation) {
                continue;
            }
            let at = FieldPath::root()
                .key("spec")
                .key("configPatches")
                .index(index)
                .key("patch")
                .key("operation");
            let name = patched_filter(patch);
            let rival = versioned.iter().find(|(e, i, n)| {
                !(std::ptr::eq(*e, entry) && *i == index) && Some(n) == name.as_ref()
            });
            let (code, text) = match rival {
                Some((other, _, filter_name)) => (
                    messages::ENVOY_FILTER_USES_RELATIVE_OPERATION_WITH_PROXY_VERSION,
                    format!(
                        "{operation} is placed relative to other configuration, this EnvoyFilter sets no priority, and {} patches {filter_name} for some proxy versions only: during an upgrade the order they apply in, and so the result, is unpredictable; set spec.priority, or use INSERT_FIRST or ADD",
                        other.resource.display_name()
                    ),
                ),
                None => (
                    messages::ENVOY_FILTER_USES_RELATIVE_OPERATION,
                    format!(
                        "{operation} is placed relative to other configuration, and this EnvoyFilter sets no priority, so whether it applies depends on the order EnvoyFilters are applied in; set spec.priority, or use INSERT_FIRST or ADD"
                    ),
                ),
            };
            report.add(code, entry, at, text);
        }
    }
}

/// The patches of an EnvoyFilter up to the first without a `patch` (which validation refuses).
fn patches(filter: &EnvoyFilter) -> impl Iterator<Item = (usize, &EnvoyConfigObjectPatch)> {
    filter
        .config_patches
        .iter()
        .enumerate()
        .take_while(|(_, p)| p.patch.is_some())
}

/// Whether `operation` places the patch relative to existing configuration, on an object kind
/// where it has an effect.
fn is_relative(apply_to: ApplyTo, operation: PatchOperation) -> bool {
    use ApplyTo::*;
    match operation {
        PatchOperation::Remove => !matches!(
            apply_to,
            RouteConfiguration | Bootstrap | ExtensionConfig | Invalid
        ),
        PatchOperation::Replace => matches!(
            apply_to,
            NetworkFilter | HttpFilter | ListenerFilter | VirtualHost
        ),
        PatchOperation::InsertBefore | PatchOperation::InsertAfter => {
            matches!(
                apply_to,
                NetworkFilter | HttpFilter | ListenerFilter | HttpRoute
            )
        }
        _ => false,
    }
}

/// The filter a patch adds or acts on: the `name` of its value, else the (sub-)filter its match
/// names.
fn patched_filter(patch: &EnvoyConfigObjectPatch) -> Option<String> {
    let from_value = patch
        .patch
        .as_ref()
        .and_then(|p| p.value.as_ref())
        .and_then(|v| v.get("name"))
        .and_then(|n| n.as_str());
    let filter = patch
        .r#match
        .as_ref()
        .and_then(|m| m.listener.as_ref())
        .and_then(|l| l.filter_chain.as_ref())
        .and_then(|c| c.filter.as_ref());
    let from_match = filter.and_then(|f| {
        f.sub_filter
            .as_ref()
            .and_then(|s| s.name.as_deref())
            .or(f.name.as_deref())
    });
    from_value
        .or(from_match)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_patterns() {
        assert!(namespace_matches("prod-web", "prod-*"));
        assert!(namespace_matches("web-prod", "*-prod"));
        assert!(namespace_matches("Foo", "foo"));
        assert!(namespace_matches("anything", "*"));
        assert!(!namespace_matches("staging", "prod-*"));
    }
}
