//! Annotation findings: the mesh's annotations (those in `istio.io` domains) that it does not
//! know, that sit on a kind of resource that does not read them, that are deprecated, or whose
//! value is malformed.
//!
//! Namespaces, Services, Pods and Deployments are checked. A Deployment's own annotations are
//! checked as a Deployment's (the mesh reads none there); its pod template's as a Pod's, since
//! that is where the pods get theirs. The cluster's own namespaces are left alone.

mod known;
mod values;

use super::context::is_system_namespace;
use super::{Analyzer, Context, Entry, Report, messages};
use crate::FieldPath;
use crate::kube::{DeploymentSpec, NamespaceSpec, PodSpec, ServiceSpec};
use crate::meta::ObjectMeta;
use known::On;

pub(super) const ANALYZERS: &[Analyzer] = &[annotations];

/// The label that replaces the deprecated `sidecar.istio.io/inject` annotation.
const INJECT_LABEL: &str = "sidecar.istio.io/inject";

fn annotations(ctx: &Context<'_>, report: &mut Report) {
    let metadata = FieldPath::root().key("metadata");
    for (entry, ns) in ctx.each::<NamespaceSpec>() {
        check(entry, &ns.metadata, &metadata, Some(On::Namespace), report);
    }
    for (entry, service) in ctx.each::<ServiceSpec>() {
        check(
            entry,
            &service.metadata,
            &metadata,
            Some(On::Service),
            report,
        );
    }
    for (entry, pod) in ctx.each::<PodSpec>() {
        check(entry, &pod.metadata, &metadata, Some(On::Pod), report);
    }
    let template = FieldPath::root()
        .key("spec")
        .key("template")
        .key("metadata");
    for (entry, deployment) in ctx.each::<DeploymentSpec>() {
        check(entry, &deployment.metadata, &metadata, None, report);
        check(
            entry,
            &deployment.spec.template.metadata,
            &template,
            Some(On::Pod),
            report,
        );
    }
}

/// Whether the mesh owns an annotation key: its prefix is in an `istio.io` domain.
fn is_mesh_annotation(key: &str) -> bool {
    key.split('/')
        .next()
        .is_some_and(|domain| domain.ends_with("istio.io"))
}

/// Checks the annotations of `meta` (at `at`), which sit on a resource of kind `on`, or on a
/// Deployment's own metadata when `on` is `None`.
fn check(entry: &Entry, meta: &ObjectMeta, at: &FieldPath, on: Option<On>, report: &mut Report) {
    let namespace = if on == Some(On::Namespace) {
        entry.name()
    } else {
        entry.namespace()
    };
    if is_system_namespace(namespace) {
        return;
    }
    for (key, value) in &meta.annotations {
        if !is_mesh_annotation(key) || known::SET_BY_MESH.contains(&key.as_str()) {
            continue;
        }
        let path = at.key("annotations").key(key.as_str());
        let Some(annotation) = known::find(key) else {
            let hint = match known::similar(key) {
                Some(name) => format!("did you mean {name}?"),
                None => "check its spelling".to_owned(),
            };
            report.add(
                messages::UNKNOWN_ANNOTATION,
                entry,
                path,
                format!("{key} is not an annotation the mesh knows, so it has no effect; {hint}"),
            );
            continue;
        };
        if let Some(instead) = annotation.deprecated {
            let replaced = key == INJECT_LABEL && meta.labels.contains_key(INJECT_LABEL);
            if !replaced {
                let hint = if instead.is_empty() {
                    "; it may stop working in a future release".to_owned()
                } else {
                    format!("; use {instead}")
                };
                report.add(
                    messages::DEPRECATED_ANNOTATION,
                    entry,
                    path.clone(),
                    format!("{key} is deprecated{hint}"),
                );
            }
        }
        if annotation.on.contains(&On::Any) {
            continue;
        }
        if !on.is_some_and(|on| annotation.on.contains(&on)) {
            let kinds: Vec<&str> = annotation.on.iter().map(|o| o.name()).collect();
            let hint = if on.is_none() && annotation.on.contains(&On::Pod) {
                "; for the deployment's pods, put it in spec.template.metadata.annotations"
            } else {
                ""
            };
            report.add(
                messages::MISPLACED_ANNOTATION,
                entry,
                path,
                format!(
                    "{key} only takes effect on a {}, not on a {}, so here it does nothing{hint}",
                    kinds.join(" or "),
                    on.map_or("Deployment", On::name)
                ),
            );
            continue;
        }
        if let Some(Err(problem)) = annotation.check.map(|check| check(value)) {
            report.add(messages::INVALID_ANNOTATION, entry, path, problem);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mesh_annotations_are_those_in_istio_domains() {
        assert!(is_mesh_annotation("sidecar.istio.io/inject"));
        assert!(is_mesh_annotation("istio.io/rev"));
        assert!(is_mesh_annotation("proxy.istio.io/config"));
        assert!(!is_mesh_annotation(
            "kubectl.kubernetes.io/last-applied-configuration"
        ));
        assert!(!is_mesh_annotation("example.com/istio.io"));
        assert!(!is_mesh_annotation("notistio.io.example.com/x"));
    }
}
