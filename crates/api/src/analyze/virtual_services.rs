//! VirtualService findings: routes to hosts, ports and subsets nobody defines; gateways that do
//! not exist or do not serve the VirtualService's hosts; sidecar rules that claim the same host
//! twice; subsets an ingress route bypasses; routing on JWT claims nothing verifies.
//!
//! The checks are grouped by what they read: [`destinations`] (services and destination rules),
//! [`gateways`] (gateways and the policies of their workloads) and [`mesh_hosts`] (the other
//! VirtualServices). This file holds what they share: the walk over a VirtualService's
//! destinations and the ways hosts match.

mod destinations;
mod gateways;
mod mesh_hosts;

use super::Analyzer;
use crate::FieldPath;
use crate::networking::{Destination, MESH_GATEWAY, VirtualService};

pub(super) const ANALYZERS: &[Analyzer] = &[
    destinations::unknown_hosts_and_ports,
    destinations::unknown_subsets,
    destinations::subsets_bypassed_by_ingress,
    gateways::gateway_references,
    gateways::jwt_claim_routes_without_authentication,
    mesh_hosts::conflicting_mesh_hosts,
];

/// One place a VirtualService sends traffic: a route destination or a mirror.
struct Target<'a> {
    destination: &'a Destination,
    /// The destination's field, from the document root (`spec.http[0].route[1].destination`,
    /// `spec.http[0].mirror`).
    path: FieldPath,
    kind: TargetKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TargetKind {
    Tcp,
    Tls,
    Http,
    Mirror,
}

/// Every destination of `vs`: TCP, TLS and HTTP routes, then HTTP mirrors.
fn targets<'a>(vs: &'a VirtualService) -> Vec<Target<'a>> {
    let spec = FieldPath::root().key("spec");
    let mut out = Vec::new();
    let route = |out: &mut Vec<Target<'a>>, kind, path: FieldPath, destination: &'a Destination| {
        out.push(Target {
            destination,
            path: path.key("destination"),
            kind,
        });
    };
    for (i, rule) in vs.tcp.iter().enumerate() {
        for (j, to) in rule.route.iter().enumerate() {
            route(
                &mut out,
                TargetKind::Tcp,
                spec.key("tcp").index(i).key("route").index(j),
                &to.destination,
            );
        }
    }
    for (i, rule) in vs.tls.iter().enumerate() {
        for (j, to) in rule.route.iter().enumerate() {
            route(
                &mut out,
                TargetKind::Tls,
                spec.key("tls").index(i).key("route").index(j),
                &to.destination,
            );
        }
    }
    for (i, rule) in vs.http.iter().enumerate() {
        for (j, to) in rule.route.iter().enumerate() {
            route(
                &mut out,
                TargetKind::Http,
                spec.key("http").index(i).key("route").index(j),
                &to.destination,
            );
        }
    }
    for (i, rule) in vs.http.iter().enumerate() {
        let rule_path = spec.key("http").index(i);
        if let Some(destination) = &rule.mirror {
            out.push(Target {
                destination,
                path: rule_path.key("mirror"),
                kind: TargetKind::Mirror,
            });
        }
        for (j, mirror) in rule.mirrors.iter().enumerate() {
            let path = rule_path.key("mirrors").index(j).key("destination");
            out.push(Target {
                destination: &mirror.destination,
                path,
                kind: TargetKind::Mirror,
            });
        }
    }
    out
}

/// A gateway reference (`namespace/name`, or a bare name in the VirtualService's namespace) as
/// `(namespace, name)`; `None` for `mesh`, which stands for the sidecars.
fn gateway_ref<'a>(reference: &'a str, namespace: &'a str) -> Option<(&'a str, &'a str)> {
    if reference == MESH_GATEWAY {
        return None;
    }
    Some(reference.split_once('/').unwrap_or((namespace, reference)))
}

/// Whether two hosts, either of which may be a wildcard (`*`, `*.example.com`), share any name.
fn hosts_overlap(a: &str, b: &str) -> bool {
    match (a.strip_prefix('*'), b.strip_prefix('*')) {
        (Some(a), Some(b)) => a.ends_with(b) || b.ends_with(a),
        (Some(suffix), None) => b.ends_with(suffix),
        (None, Some(suffix)) => a.ends_with(suffix),
        (None, None) => a == b,
    }
}

/// Whether every name `host` stands for is also a name of `pattern`: `*.example.com` covers
/// `a.example.com` and `*.a.example.com`, but not `example.com`.
fn host_covers(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix('*') {
        Some(suffix) => host.strip_prefix('*').unwrap_or(host).ends_with(suffix),
        None => pattern == host,
    }
}

/// How many names a host stands for, as an order: an exact host is more specific than any
/// wildcard, and a longer wildcard more specific than a shorter one.
fn specificity(host: &str) -> (bool, usize) {
    (!host.starts_with('*'), host.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_hosts_overlap_both_ways() {
        assert!(hosts_overlap("*", "reviews.default.svc.cluster.local"));
        assert!(hosts_overlap("*.example.com", "web.example.com"));
        assert!(hosts_overlap("web.example.com", "*.example.com"));
        assert!(hosts_overlap("*.example.com", "*.a.example.com"));
        assert!(hosts_overlap("*.a.example.com", "*.example.com"));
        assert!(!hosts_overlap("*.example.com", "example.com"));
        assert!(!hosts_overlap("a.example.com", "b.example.com"));
    }

    #[test]
    fn a_pattern_covers_only_narrower_hosts() {
        assert!(host_covers("*", "*.example.com"));
        assert!(host_covers("*.example.com", "web.example.com"));
        assert!(host_covers("*.example.com", "*.a.example.com"));
        assert!(host_covers("web.example.com", "web.example.com"));
        assert!(!host_covers("web.example.com", "*.example.com"));
        assert!(!host_covers("*.a.example.com", "*.example.com"));
        assert!(!host_covers("*.example.com", "example.com"));
    }

    #[test]
    fn exact_hosts_are_more_specific_than_wildcards() {
        assert!(specificity("a.example.com") > specificity("*.a.example.com"));
        assert!(specificity("*.a.example.com") > specificity("*.example.com"));
        assert!(specificity("*.example.com") > specificity("*"));
    }

    #[test]
    fn gateway_references_default_to_the_namespace() {
        assert_eq!(gateway_ref("mesh", "default"), None);
        assert_eq!(gateway_ref("web", "default"), Some(("default", "web")));
        assert_eq!(
            gateway_ref("istio-system/web", "default"),
            Some(("istio-system", "web"))
        );
    }
}
