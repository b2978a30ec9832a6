//! The gateways a VirtualService binds to: that they exist, that they serve at least one of its
//! hosts, and that routing on JWT claims there has a RequestAuthentication to set the claims.

use std::collections::BTreeSet;

use super::{gateway_ref, hosts_overlap};
use crate::FieldPath;
use crate::analyze::{Context, Entry, Report, messages, to_fqdn};
use crate::meta::ROOT_NAMESPACE;
use crate::networking::{Gateway, VirtualService};
use crate::resource::{Kind, Object};
use crate::security::RequestAuthentication;
use crate::types::{format_selector, labels_match};

/// The header-name prefix that matches on a claim of the request's verified JWT.
const JWT_CLAIM_PREFIX: &str = "@request.auth.claims";

fn find_gateway<'a>(
    ctx: &Context<'a>,
    namespace: &str,
    name: &str,
) -> Option<(&'a Entry, &'a Object<Gateway>)> {
    ctx.each::<Gateway>()
        .find(|(e, _)| e.namespace() == namespace && e.name() == name)
}

/// IST0101: a gateway named in `gateways` (or in a match's `gateways`) that does not exist.
/// IST0132: a gateway none of whose servers serves any host of the VirtualService, seen from
/// the VirtualService's namespace; the rules then never apply at that gateway.
pub(super) fn gateway_references(ctx: &Context<'_>, report: &mut Report) {
    for (entry, vs) in ctx.each::<VirtualService>() {
        let namespace = entry.namespace();
        let spec = FieldPath::root().key("spec");
        let mut bound = BTreeSet::new();
        for (i, reference) in vs.spec.gateways.iter().enumerate() {
            let Some((gw_namespace, gw_name)) = gateway_ref(reference, namespace) else {
                continue;
            };
            bound.insert((gw_namespace, gw_name));
            let path = spec.key("gateways").index(i);
            match find_gateway(ctx, gw_namespace, gw_name) {
                None => missing_gateway(ctx, entry, path, gw_namespace, gw_name, report),
                Some(gateway) if !vs.spec.hosts.is_empty() => {
                    check_hosts_served(entry, &vs.spec, path, gateway, report);
                }
                Some(_) => {}
            }
        }
        for (rule, matches) in match_gateways(&vs.spec) {
            for (j, gateways) in matches.into_iter().enumerate() {
                for (k, reference) in gateways.iter().enumerate() {
                    let Some((gw_namespace, gw_name)) = gateway_ref(reference, namespace) else {
                        continue;
                    };
                    // A gateway also listed in `gateways` is reported there.
                    if bound.contains(&(gw_namespace, gw_name))
                        || find_gateway(ctx, gw_namespace, gw_name).is_some()
                    {
                        continue;
                    }
                    let path = rule.key("match").index(j).key("gateways").index(k);
                    missing_gateway(ctx, entry, path, gw_namespace, gw_name, report);
                }
            }
        }
    }
}

fn missing_gateway(
    ctx: &Context<'_>,
    entry: &Entry,
    path: FieldPath,
    namespace: &str,
    name: &str,
    report: &mut Report,
) {
    let elsewhere = ctx
        .each::<Gateway>()
        .find(|(e, _)| e.name() == name)
        .map(|(e, _)| e.full_name());
    let hint = match elsewhere {
        Some(other) => format!("did you mean {other}?"),
        None => {
            "name an existing Gateway as namespace/name, or \"mesh\" for the sidecars".to_owned()
        }
    };
    let text = format!("gateway {namespace}/{name} does not exist; {hint}");
    let code = messages::REFERENCED_RESOURCE_NOT_FOUND;
    if ctx.files_describe(Kind::Gateway, namespace) {
        report.add(code, entry, path, text);
    } else {
        let why = format!(
            "the analyzed files define no gateways in namespace {namespace}, so it may exist in the running mesh"
        );
        report.add_uncertain(code, entry, path, text, &why);
    }
}

/// The `gateways` lists of every rule's matches, with the rule's path.
fn match_gateways(vs: &VirtualService) -> Vec<(FieldPath, Vec<&Vec<String>>)> {
    let spec = FieldPath::root().key("spec");
    let mut out = Vec::new();
    for (i, rule) in vs.http.iter().enumerate() {
        out.push((
            spec.key("http").index(i),
            rule.r#match.iter().map(|m| &m.gateways).collect(),
        ));
    }
    for (i, rule) in vs.tls.iter().enumerate() {
        out.push((
            spec.key("tls").index(i),
            rule.r#match.iter().map(|m| &m.gateways).collect(),
        ));
    }
    for (i, rule) in vs.tcp.iter().enumerate() {
        out.push((
            spec.key("tcp").index(i),
            rule.r#match.iter().map(|m| &m.gateways).collect(),
        ));
    }
    out
}

fn check_hosts_served(
    entry: &Entry,
    vs: &VirtualService,
    path: FieldPath,
    (gw_entry, gateway): (&Entry, &Object<Gateway>),
    report: &mut Report,
) {
    let (gw_namespace, gw_name) = (gw_entry.namespace(), gw_entry.name());
    let namespace = entry.namespace();
    let served: Vec<&str> = gateway
        .spec
        .servers
        .iter()
        .flat_map(|s| &s.hosts)
        .filter_map(|h| server_host_for(h, gw_namespace, namespace))
        .collect();
    let hosts: Vec<String> = vs.hosts.iter().map(|h| to_fqdn(h, namespace)).collect();
    if hosts
        .iter()
        .any(|h| served.iter().any(|s| hosts_overlap(s, h)))
    {
        return;
    }
    let missing = match &vs.hosts[..] {
        [one] => format!("does not serve host {one}"),
        all => format!("serves none of the hosts {}", all.join(", ")),
    };
    let offered = if served.is_empty() {
        "it serves no host to that namespace".to_owned()
    } else {
        format!("it serves {}", served.join(", "))
    };
    report.add(
        messages::VIRTUAL_SERVICE_HOST_NOT_FOUND_IN_GATEWAY,
        entry,
        path,
        format!(
            "gateway {gw_namespace}/{gw_name} {missing} to namespace {namespace} ({offered}), \
             so these rules never apply there; add the host to the gateway's servers or bind \
             another gateway"
        ),
    );
}

/// The host a gateway server's `hosts` entry offers to VirtualServices in `vs_namespace`:
/// `namespace/host` only to that namespace (`.` is the gateway's own), `*/host` and a bare host
/// to every namespace.
fn server_host_for<'a>(entry: &'a str, gw_namespace: &str, vs_namespace: &str) -> Option<&'a str> {
    match entry.split_once('/') {
        None => Some(entry),
        Some(("*", host)) => Some(host),
        Some((".", host)) => (gw_namespace == vs_namespace).then_some(host),
        Some((namespace, host)) => (namespace == vs_namespace).then_some(host),
    }
}

/// IST0149: an HTTP match on a JWT claim (`@request.auth.claims.<name>`) at a gateway whose
/// workloads no RequestAuthentication applies to. Claims exist only once a RequestAuthentication
/// has verified the token, so the match can never succeed.
pub(super) fn jwt_claim_routes_without_authentication(ctx: &Context<'_>, report: &mut Report) {
    let authentications: Vec<_> = ctx.each::<RequestAuthentication>().collect();
    for (entry, vs) in ctx.each::<VirtualService>() {
        let Some((claim_path, key)) = first_claim_match(&vs.spec) else {
            continue;
        };
        let mut reported = BTreeSet::new();
        for reference in &vs.spec.gateways {
            let Some((gw_namespace, gw_name)) = gateway_ref(reference, entry.namespace()) else {
                continue;
            };
            let Some((_, gateway)) = find_gateway(ctx, gw_namespace, gw_name) else {
                continue;
            };
            let selector = &gateway.spec.selector;
            if selector.is_empty() {
                continue;
            }
            for workload in ctx.workloads_where(None, |labels| labels_match(selector, labels)) {
                if workload.pod.is_none() {
                    continue;
                }
                let verified = authentications.iter().any(|(ra_entry, ra)| {
                    (ra_entry.namespace() == ROOT_NAMESPACE
                        || ra_entry.namespace() == workload.namespace)
                        && applies_to(&ra.spec, workload.labels)
                });
                let workload_name = workload.entry.resource.display_name();
                if verified || !reported.insert((gw_namespace, gw_name, workload_name.clone())) {
                    continue;
                }
                report.add(
                    messages::JWT_CLAIM_BASED_ROUTING_WITHOUT_REQUEST_AUTHN,
                    entry,
                    claim_path.clone(),
                    format!(
                        "this rule routes on JWT claim {key:?} at gateway \
                         {gw_namespace}/{gw_name}, but no RequestAuthentication applies to its \
                         workload {workload_name}, so the claim is never set; add one in {} \
                         selecting {}",
                        if workload.namespace == ROOT_NAMESPACE {
                            ROOT_NAMESPACE.to_owned()
                        } else {
                            format!("{} or {ROOT_NAMESPACE}", workload.namespace)
                        },
                        format_selector(selector),
                    ),
                );
            }
        }
    }
}

/// Whether a RequestAuthentication applies to a workload with these labels: by its selector,
/// or to its whole namespace when it has neither a selector nor target references.
fn applies_to(ra: &RequestAuthentication, labels: &crate::types::Labels) -> bool {
    match &ra.selector {
        Some(selector) => selector.matches(labels),
        None => ra.target_ref.is_none() && ra.target_refs.is_empty(),
    }
}

/// The first header match (or `withoutHeaders` entry) on a JWT claim, with its path and key.
fn first_claim_match(vs: &VirtualService) -> Option<(FieldPath, &str)> {
    let spec = FieldPath::root().key("spec");
    for (i, rule) in vs.http.iter().enumerate() {
        for (j, m) in rule.r#match.iter().enumerate() {
            let at = spec.key("http").index(i).key("match").index(j);
            if let Some(key) = m.headers.keys().find(|k| is_jwt_claim(k)) {
                return Some((at.key("headers").key(key.as_str()), key));
            }
            if let Some(key) = m.without_headers.keys().find(|k| is_jwt_claim(k)) {
                return Some((at.key("withoutHeaders").key(key.as_str()), key));
            }
        }
    }
    None
}

/// `@request.auth.claims.<name>...` or `@request.auth.claims[<name>]...`.
fn is_jwt_claim(name: &str) -> bool {
    let Some(claim) = name.get(JWT_CLAIM_PREFIX.len()..) else {
        return false;
    };
    if !name[..JWT_CLAIM_PREFIX.len()].eq_ignore_ascii_case(JWT_CLAIM_PREFIX) {
        return false;
    }
    (claim.starts_with('.') && claim.len() > 1)
        || (claim.starts_with('[') && claim.ends_with(']') && claim.len() > 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_hosts_are_offered_by_namespace() {
        assert_eq!(
            server_host_for("a.com", "istio-system", "default"),
            Some("a.com")
        );
        assert_eq!(
            server_host_for("*/a.com", "istio-system", "default"),
            Some("a.com")
        );
        assert_eq!(server_host_for("./a.com", "istio-system", "default"), None);
        assert_eq!(
            server_host_for("./a.com", "default", "default"),
            Some("a.com")
        );
        assert_eq!(
            server_host_for("default/a.com", "istio-system", "default"),
            Some("a.com")
        );
        assert_eq!(
            server_host_for("prod/a.com", "istio-system", "default"),
            None
        );
    }

    #[test]
    fn jwt_claim_headers() {
        assert!(is_jwt_claim("@request.auth.claims.group"));
        assert!(is_jwt_claim("@request.auth.claims[group][sub]"));
        assert!(!is_jwt_claim("@request.auth.claims"));
        assert!(!is_jwt_claim("@request.auth.claims."));
        assert!(!is_jwt_claim("x-user"));
    }
}
