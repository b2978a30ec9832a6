//! Delegation: a rule with `delegate` hands its requests to the HTTP rules of another
//! VirtualService (one without hosts), whose rules are inlined in its place, as Istio does.
//!
//! Each delegate rule is merged with the delegating rule: its matches must fall within the
//! delegating rule's matches (a prefix within the prefix, the same exact path, compatible
//! headers and ports, ...) and are narrowed by them; a delegate rule that cannot fit is left out
//! with a warning. Fields the delegate rule does not set (rewrite, timeout, retries, headers,
//! fault, mirror, CORS, ...) come from the delegating rule; names are joined with `-`. The
//! delegate must be exported to the delegating VirtualService's namespace, and cannot delegate
//! again.

use trellis_api::networking::{Delegate, HttpMatchRequest, HttpRoute, VirtualService};
use trellis_api::types::StringMatch;

use crate::context::Scope;
use crate::hosts::exported_to;
use crate::resources::Named;
use crate::rules::{Rule, qualify_gateways};
use crate::warnings::Warnings;

/// The rules that replace `root` (rule `index` of `vs`), which delegates to `delegate`.
pub(crate) fn inline<'a>(
    cx: &Scope<'a>,
    vs: Named<'a, VirtualService>,
    index: usize,
    root: &HttpRoute,
    delegate: &Delegate,
    warnings: &mut Warnings,
) -> Vec<Rule<'a>> {
    let path = format!("spec.http[{index}].delegate");
    let namespace = delegate.namespace.as_deref().unwrap_or(vs.namespace());
    let Some(name) = delegate.name.as_deref() else {
        warnings.field(
            "VirtualService",
            vs.meta,
            &path,
            "names no VirtualService; the rule is skipped",
        );
        return Vec::new();
    };
    let Some(target) = cx.index.virtual_service(namespace, name) else {
        warnings.field(
            "VirtualService",
            vs.meta,
            &path,
            format!("VirtualService {namespace}/{name} does not exist; the rule is skipped"),
        );
        return Vec::new();
    };
    if !target.spec.hosts.is_empty() {
        warnings.field("VirtualService", vs.meta, &path, format!("VirtualService {namespace}/{name} has hosts, so it is not a delegate; the rule is skipped"));
        return Vec::new();
    }
    if !exported_to(&target.spec.export_to, namespace, vs.namespace()) {
        warnings.field(
            "VirtualService",
            vs.meta,
            &path,
            format!("VirtualService {namespace}/{name} is not exported to namespace {}; the rule is skipped", vs.namespace()),
        );
        return Vec::new();
    }
    let mut out = Vec::new();
    for (j, child) in target.spec.http.iter().enumerate() {
        let child_path = format!("spec.http[{j}]");
        if child.delegate.is_some() {
            warnings.field(
                "VirtualService",
                target.meta,
                &format!("{child_path}.delegate"),
                "a delegate cannot delegate again; the rule is skipped",
            );
            continue;
        }
        let mut child = child.clone();
        qualify_gateways(&mut child, namespace);
        let Some(merged) = merge(root, child) else {
            warnings.field(
                "VirtualService",
                target.meta,
                &child_path,
                format!("its matches fall outside those of VirtualService {} spec.http[{index}], which delegates to it; the rule is skipped", vs.full_name()),
            );
            continue;
        };
        let name = merged
            .name
            .clone()
            .unwrap_or_else(|| format!("{}.{}.{j}", target.name(), target.namespace()));
        out.push(Rule {
            route: merged,
            name,
            source: target.meta,
            path: child_path,
        });
    }
    out
}

/// The delegate rule narrowed by the delegating rule, or `None` when their matches conflict.
fn merge(root: &HttpRoute, mut child: HttpRoute) -> Option<HttpRoute> {
    child.r#match = merge_matches(&root.r#match, &child.r#match)?;
    child.name = match (&root.name, child.name.take()) {
        (Some(root), Some(own)) => Some(format!("{root}-{own}")),
        (root, own) => own.or_else(|| root.clone()),
    };
    child.delegate = None;
    macro_rules! inherit {
        ($($field:ident),*) => { $( if child.$field.is_none() { child.$field = root.$field.clone(); } )* };
    }
    inherit!(
        rewrite,
        direct_response,
        timeout,
        retries,
        fault,
        mirror,
        mirror_percent,
        mirror_percent_legacy,
        mirror_percentage,
        cors_policy,
        headers
    );
    if child.mirrors.is_empty() {
        child.mirrors = root.mirrors.clone();
    }
    Some(child)
}

fn merge_matches(
    root: &[HttpMatchRequest],
    child: &[HttpMatchRequest],
) -> Option<Vec<HttpMatchRequest>> {
    if root.is_empty() {
        return Some(child.to_vec());
    }
    if child.is_empty() {
        return Some(root.to_vec());
    }
    let mut out = Vec::new();
    for leaf in child {
        let before = out.len();
        out.extend(
            root.iter()
                .filter(|r| !conflict(r, leaf))
                .map(|r| merge_match(r, leaf)),
        );
        if out.len() == before {
            return None;
        }
    }
    Some(out)
}

fn merge_match(root: &HttpMatchRequest, leaf: &HttpMatchRequest) -> HttpMatchRequest {
    let mut out = leaf.clone();
    out.name = match (&root.name, leaf.name.as_deref()) {
        (Some(root), Some(own)) => Some(format!("{root}-{own}")),
        (root, own) => own.map(str::to_owned).or_else(|| root.clone()),
    };
    out.uri = leaf.uri.clone().or_else(|| root.uri.clone());
    out.scheme = leaf.scheme.clone().or_else(|| root.scheme.clone());
    out.method = leaf.method.clone().or_else(|| root.method.clone());
    out.authority = leaf.authority.clone().or_else(|| root.authority.clone());
    for (k, v) in &root.headers {
        out.headers.entry(k.clone()).or_insert_with(|| v.clone());
    }
    for (k, v) in &root.without_headers {
        out.without_headers
            .entry(k.clone())
            .or_insert_with(|| v.clone());
    }
    for (k, v) in &root.query_params {
        out.query_params
            .entry(k.clone())
            .or_insert_with(|| v.clone());
    }
    for (k, v) in &root.source_labels {
        out.source_labels
            .entry(k.clone())
            .or_insert_with(|| v.clone());
    }
    if out.port.unwrap_or(0) == 0 {
        out.port = root.port;
    }
    if out.source_namespace.is_none() {
        out.source_namespace = root.source_namespace.clone();
    }
    if out.gateways.is_empty() {
        out.gateways = root.gateways.clone();
    }
    if out.stat_prefix.is_none() {
        out.stat_prefix = root.stat_prefix.clone();
    }
    out
}

/// Whether a delegate match `leaf` cannot be narrowed by the delegating match `root`.
fn conflict(root: &HttpMatchRequest, leaf: &HttpMatchRequest) -> bool {
    let pairs = [
        (&root.uri, &leaf.uri),
        (&root.scheme, &leaf.scheme),
        (&root.method, &leaf.method),
        (&root.authority, &leaf.authority),
    ];
    if pairs
        .into_iter()
        .any(|(r, l)| string_conflict(r.as_ref(), l.as_ref()))
    {
        return true;
    }
    let maps_conflict = leaf
        .headers
        .iter()
        .any(|(k, l)| string_conflict(root.headers.get(k), Some(l)))
        || leaf
            .query_params
            .iter()
            .any(|(k, l)| string_conflict(root.query_params.get(k), Some(l)))
        || leaf.without_headers.iter().any(|(k, l)| {
            string_conflict(
                root.without_headers
                    .get(k)
                    .map(|m| m.as_string_match())
                    .as_ref(),
                Some(&l.as_string_match()),
            )
        });
    let root_port = root.port.unwrap_or(0);
    let leaf_port = leaf.port.unwrap_or(0);
    maps_conflict
        || root.ignore_uri_case.unwrap_or(false) != leaf.ignore_uri_case.unwrap_or(false)
        || (root_port > 0 && leaf_port > 0 && root_port != leaf_port)
        || root
            .source_namespace
            .as_ref()
            .is_some_and(|ns| leaf.source_namespace.as_ref() != Some(ns))
        || leaf
            .source_labels
            .iter()
            .any(|(k, v)| root.source_labels.get(k).is_some_and(|r| r != v))
        || (!root.gateways.is_empty()
            && !leaf.gateways.is_empty()
            && !leaf.gateways.iter().all(|g| root.gateways.contains(g)))
}

/// Whether `leaf` can describe a subset of what `root` matches (`None`: no condition).
fn string_conflict(root: Option<&StringMatch>, leaf: Option<&StringMatch>) -> bool {
    let (Some(root), Some(leaf)) = (root, leaf) else {
        return false;
    };
    match (root, leaf) {
        (StringMatch::Any, _) | (_, StringMatch::Any) => false,
        (StringMatch::Regex(_), _) | (_, StringMatch::Regex(_)) => true,
        (StringMatch::Exact(r), StringMatch::Exact(l)) => r != l,
        (StringMatch::Exact(_), StringMatch::Prefix(_)) => true,
        (StringMatch::Prefix(r), StringMatch::Prefix(l) | StringMatch::Exact(l)) => {
            !l.starts_with(r.as_str())
        }
    }
}

#[cfg(test)]
mod tests;
