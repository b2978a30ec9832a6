//! Sidecar findings: selectors that select no workload, and workloads (or namespaces) that
//! several Sidecars claim at once, so that which one applies is not defined.
//!
//! Workloads in ambient mode run no sidecar proxy, so claims on them are not conflicts.

use std::collections::{BTreeMap, BTreeSet};

use super::{Analyzer, Context, Entry, Report, Workload, messages};
use crate::FieldPath;
use crate::kube::{NamespaceSpec, PodSpec};
use crate::networking::Sidecar;
use crate::resource::KindSpec;
use crate::types::{Labels, format_selector, labels_match};

pub(super) const ANALYZERS: &[Analyzer] = &[sidecar_selectors];

/// The namespace label that puts a namespace's workloads in ambient mode.
const DATAPLANE_MODE_LABEL: &str = "istio.io/dataplane-mode";
/// The pod annotation the node agent sets on pods whose traffic it redirects (ambient mode).
const AMBIENT_REDIRECTION_ANNOTATION: &str = "ambient.istio.io/redirection";

/// IST0101: a Sidecar's selector matches no workload of its namespace. IST0110: a workload is
/// selected by several Sidecars. IST0111: a namespace has several Sidecars without a selector.
/// In both conflicts the proxy takes one of them, and which one is not defined.
fn sidecar_selectors(ctx: &Context<'_>, report: &mut Report) {
    let ambient = ambient_namespaces(ctx);
    let mut namespace_wide: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
    // Each Sidecar with a selector, and the workloads (indices into `ctx.workloads()`) it selects.
    let mut selecting: Vec<(&Entry, BTreeSet<usize>)> = Vec::new();
    for (entry, sidecar) in ctx.each::<Sidecar>() {
        let namespace = entry.namespace();
        let selector = sidecar.spec.workload_selector.as_ref().map(|s| &s.labels);
        let Some(selector) = selector.filter(|labels| !labels.is_empty()) else {
            namespace_wide.entry(namespace).or_default().push(entry);
            continue;
        };
        let selected: BTreeSet<usize> = ctx
            .workloads()
            .iter()
            .enumerate()
            .filter(|(_, w)| w.namespace == namespace && labels_match(selector, w.labels))
            .map(|(index, _)| index)
            .collect();
        if selected.is_empty() {
            report.add(
                messages::REFERENCED_RESOURCE_NOT_FOUND,
                entry,
                FieldPath::root()
                    .key("spec")
                    .key("workloadSelector")
                    .key("labels"),
                format!(
                    "no Pod, Deployment or WorkloadEntry in namespace {namespace} has labels {}, \
                     so this Sidecar applies to nothing; check the selector against the \
                     workloads' labels",
                    format_selector(selector)
                ),
            );
        }
        selecting.push((entry, selected));
    }

    for (entry, selected) in &selecting {
        let mut others: BTreeSet<&str> = BTreeSet::new();
        let mut shared: BTreeSet<usize> = BTreeSet::new();
        for (other, theirs) in &selecting {
            if std::ptr::eq(*other, *entry) {
                continue;
            }
            let common: Vec<usize> = selected
                .intersection(theirs)
                .copied()
                .filter(|&index| !in_ambient_mode(&ctx.workloads()[index], &ambient))
                .collect();
            if !common.is_empty() {
                others.insert(other.name());
                shared.extend(common);
            }
        }
        if others.is_empty() {
            continue;
        }
        let workloads: Vec<String> = shared
            .iter()
            .map(|&index| ctx.workloads()[index].entry.resource.display_name())
            .collect();
        report.add(
            messages::CONFLICTING_SIDECAR_WORKLOAD_SELECTORS,
            entry,
            FieldPath::root().key("spec").key("workloadSelector"),
            format!(
                "{} also {} {}; a workload takes one Sidecar, and which one is not defined: make \
                 the selectors select different workloads, or merge the Sidecars",
                sidecar_names(others.iter().copied()),
                if others.len() == 1 {
                    "selects"
                } else {
                    "select"
                },
                workloads.join(", "),
            ),
        );
    }

    for (namespace, entries) in namespace_wide {
        if entries.len() < 2 || ambient.contains(namespace) {
            continue;
        }
        for entry in &entries {
            let others = entries
                .iter()
                .filter(|e| !std::ptr::eq(**e, *entry))
                .map(|e| e.name());
            report.add(
                messages::MULTIPLE_SIDECARS_WITHOUT_WORKLOAD_SELECTORS,
                entry,
                FieldPath::root(),
                format!(
                    "{} in namespace {namespace} also {} no workloadSelector; the namespace's \
                     workloads take one of them, and which one is not defined: merge them, or \
                     give all but one a workloadSelector",
                    sidecar_names(others),
                    if entries.len() == 2 { "has" } else { "have" },
                ),
            );
        }
    }
}

/// `Sidecar a` or `Sidecars a, b`, sorted.
fn sidecar_names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let mut names: Vec<&str> = names.collect();
    names.sort_unstable();
    let kind = if names.len() == 1 {
        "Sidecar"
    } else {
        "Sidecars"
    };
    format!("{kind} {}", names.join(", "))
}

/// The namespaces labelled for ambient mode (and not also for sidecar injection).
fn ambient_namespaces<'a>(ctx: &Context<'a>) -> BTreeSet<&'a str> {
    ctx.each::<NamespaceSpec>()
        .filter(|(_, namespace)| is_ambient_namespace(&namespace.metadata.labels))
        .map(|(entry, _)| entry.name())
        .collect()
}

fn is_ambient_namespace(labels: &Labels) -> bool {
    let injected = labels
        .get("istio-injection")
        .is_some_and(|v| v == "enabled")
        || labels.get("istio.io/rev").is_some_and(|v| !v.is_empty());
    !injected
        && labels
            .get(DATAPLANE_MODE_LABEL)
            .is_some_and(|v| v == "ambient")
}

fn in_ambient_mode(workload: &Workload<'_>, ambient: &BTreeSet<&str>) -> bool {
    ambient.contains(workload.namespace)
        || PodSpec::object(&workload.entry.resource).is_some_and(|pod| {
            pod.metadata
                .annotations
                .get(AMBIENT_REDIRECTION_ANNOTATION)
                .is_some_and(|v| v == "enabled")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_namespace_is_ambient_unless_it_also_asks_for_sidecars() {
        assert!(is_ambient_namespace(&labels(&[(
            DATAPLANE_MODE_LABEL,
            "ambient"
        )])));
        assert!(!is_ambient_namespace(&labels(&[(
            DATAPLANE_MODE_LABEL,
            "none"
        )])));
        assert!(!is_ambient_namespace(&labels(&[
            (DATAPLANE_MODE_LABEL, "ambient"),
            ("istio-injection", "enabled")
        ])));
        assert!(!is_ambient_namespace(&labels(&[
            (DATAPLANE_MODE_LABEL, "ambient"),
            ("istio.io/rev", "canary")
        ])));
    }

    #[test]
    fn names_are_sorted_and_counted() {
        assert_eq!(sidecar_names(["b", "a"].into_iter()), "Sidecars a, b");
        assert_eq!(sidecar_names(["a"].into_iter()), "Sidecar a");
    }
}
