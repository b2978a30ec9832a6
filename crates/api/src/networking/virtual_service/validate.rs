//! The rules of a whole VirtualService: its hosts and gateways, what a delegate may hold, the
//! TLS and TCP rules, and the destinations and weights every kind of rule shares. The HTTP rule
//! itself is checked in `http.rs`.

use std::net::IpAddr;
use std::time::Duration as StdDuration;

use super::{
    L4MatchAttributes, RouteDestination, TcpRoute, TlsMatchAttributes, TlsRoute, VirtualService,
    http, reachability,
};
use crate::meta::ObjectMeta;
use crate::networking::{ExportKind, validate_export_to};
use crate::resource::Spec;
use crate::types::names::{check_fqdn, check_ip_or_cidr, check_wildcard_domain, is_dns1123_label};
use crate::types::{Duration, Labels, validate_labels};
use crate::validate::{Validate, Validator};

/// What the rules of one HTTP/TLS/TCP route need to know about the VirtualService around them.
#[derive(Debug, Clone, Copy)]
pub(super) struct Scope<'a> {
    pub(super) vs: &'a VirtualService,
    /// The VirtualService has no hosts: its rules are delegated to.
    pub(super) delegate: bool,
    /// The rules apply at gateways only, never at sidecars.
    pub(super) gateway_only: bool,
}

impl Spec for VirtualService {
    fn validate_object(&self, meta: &ObjectMeta, v: &mut Validator) {
        v.at("spec", |v| {
            validate_export_to(
                &meta.namespace,
                &self.export_to,
                ExportKind::VirtualService,
                v,
            )
        });
    }
}

impl Validate for VirtualService {
    fn validate(&self, v: &mut Validator) {
        let scope = Scope {
            vs: self,
            delegate: self.is_delegate(),
            gateway_only: self.is_gateway_only(),
        };
        if scope.delegate {
            const WHY: &str = "a VirtualService without hosts is a delegate, and";
            if !self.gateways.is_empty() {
                v.error_at(
                    "gateways",
                    format!("{WHY} the VirtualService that delegates to it decides the gateways; remove gateways (or add hosts)"),
                );
            }
            if !self.tls.is_empty() {
                v.error_at("tls", format!("{WHY} delegates can only hold http rules"));
            }
            if !self.tcp.is_empty() {
                v.error_at("tcp", format!("{WHY} delegates can only hold http rules"));
            }
        }
        v.each("gateways", &self.gateways, |v, name| {
            check_gateway_name(name, v)
        });
        self.check_hosts(v);
        if self.http.is_empty() && self.tls.is_empty() && self.tcp.is_empty() {
            v.error("a VirtualService needs at least one http, tls or tcp rule");
        }
        v.each("http", &self.http, |v, route| {
            http::check_route(route, scope, v)
        });
        v.each("tls", &self.tls, |v, route| route.check(scope, v));
        v.each("tcp", &self.tcp, |v, route| route.check(v));
        reachability::check(self, v);
    }
}

impl VirtualService {
    fn check_hosts(&self, v: &mut Validator) {
        let gateway_only = self.is_gateway_only();
        let sni = self
            .tls
            .iter()
            .flat_map(|t| &t.r#match)
            .any(|m| !m.sni_hosts.is_empty());
        let mut all_valid = true;
        v.each("hosts", &self.hosts, |v, host| {
            let checked =
                if gateway_only { check_gateway_bound_host(host, sni) } else { check_wildcard_domain(host) };
            match checked {
                Err(problem) if host.parse::<IpAddr>().is_err() => {
                    v.error(problem);
                    all_valid = false;
                }
                Ok(()) if host == "*" && !gateway_only => {
                    v.error(
                        "\"*\" cannot be a host of rules that apply to sidecars (the mesh gateway); \
                         list the hosts, or bind the VirtualService to gateways only",
                    );
                    all_valid = false;
                }
                _ => {}
            }
        });
        if !all_valid {
            return;
        }
        v.at("hosts", |v| {
            for (later, host) in self.hosts.iter().enumerate() {
                if let Some(earlier) = self.hosts[..later].iter().find(|h| hosts_overlap(h, host)) {
                    v.at_index(later, |v| {
                        v.error(format!(
                            "host {host:?} overlaps {earlier:?}, listed before it; each host may be covered by one entry only"
                        ));
                    });
                }
            }
        });
    }
}

impl TlsRoute {
    fn check(&self, scope: Scope<'_>, v: &mut Validator) {
        if self.r#match.is_empty() {
            v.error_at("match", "a TLS rule needs at least one match with sniHosts");
        }
        v.each("match", &self.r#match, |v, m| m.check(scope, v));
        if self.route.is_empty() {
            v.error_at("route", "a TLS rule needs at least one destination");
        }
        check_route_destinations(&self.route, v);
    }
}

impl TlsMatchAttributes {
    fn check(&self, scope: Scope<'_>, v: &mut Validator) {
        if self.sni_hosts.is_empty() {
            v.error_at("sniHosts", "a TLS match needs at least one SNI host");
        }
        v.each("sniHosts", &self.sni_hosts, |v, sni| {
            check_sni_host(sni, scope, v)
        });
        check_l4_fields(
            &self.destination_subnets,
            self.port,
            &self.source_labels,
            &self.gateways,
            &self.source_namespace,
            v,
        );
    }
}

impl TcpRoute {
    fn check(&self, v: &mut Validator) {
        v.each("match", &self.r#match, |v, m| m.check(v));
        if self.route.is_empty() {
            v.error_at("route", "a TCP rule needs at least one destination");
        }
        check_route_destinations(&self.route, v);
    }
}

impl L4MatchAttributes {
    fn check(&self, v: &mut Validator) {
        check_l4_fields(
            &self.destination_subnets,
            self.port,
            &self.source_labels,
            &self.gateways,
            &self.source_namespace,
            v,
        );
        if let Some(subnet) = self.source_subnet.as_deref().filter(|s| !s.is_empty())
            && let Err(problem) = check_ip_or_cidr(subnet)
        {
            v.warn_at(
                "sourceSubnet",
                format!("{problem}; this condition can never match"),
            );
        }
    }
}

/// The fields TLS and TCP matches share.
fn check_l4_fields(
    subnets: &[String],
    port: Option<u32>,
    source_labels: &Labels,
    gateways: &[String],
    source_namespace: &Option<String>,
    v: &mut Validator,
) {
    v.each("destinationSubnets", subnets, |v, subnet| {
        if let Err(problem) = check_ip_or_cidr(subnet) {
            v.error(problem);
        }
    });
    check_match_port(port, v);
    v.at("sourceLabels", |v| validate_labels(source_labels, v));
    v.each("gateways", gateways, |v, name| check_gateway_name(name, v));
    check_source_namespace(source_namespace, v);
}

/// `port` of a match: 0 (or absent) means any port.
pub(super) fn check_match_port(port: Option<u32>, v: &mut Validator) {
    if let Some(port) = port.filter(|p| *p > 65535) {
        v.error_at(
            "port",
            format!("port must be between 1 and 65535 (got {port})"),
        );
    }
}

pub(super) fn check_source_namespace(namespace: &Option<String>, v: &mut Validator) {
    if let Some(ns) = namespace.as_deref().filter(|ns| !ns.is_empty())
        && !is_dns1123_label(ns)
    {
        v.error_at(
            "sourceNamespace",
            format!("{ns:?} is not a valid namespace name"),
        );
    }
}

/// A gateway reference: `namespace/name`, `mesh`, a bare name (the VirtualService's own
/// namespace), or the old `name.namespace...` form, which still works but is discouraged.
pub(super) fn check_gateway_name(name: &str, v: &mut Validator) {
    let Some((namespace, gateway)) = name.split_once('/') else {
        if let Some((first, rest)) = name.split_once('.') {
            let namespace = rest.split('.').next().unwrap_or_default();
            v.warn(format!(
                "{name:?} uses the old gateway name form; write it as {:?}",
                format!("{namespace}/{first}")
            ));
        }
        if check_fqdn(name).is_err() {
            v.error(format!(
                "{name:?} is not a valid gateway reference: use namespace/name, where both are lowercase letters, digits and '-'"
            ));
        }
        return;
    };
    if namespace.is_empty() || gateway.is_empty() {
        v.error(format!(
            "gateway {name:?} needs both a namespace and a name (namespace/name)"
        ));
    }
    if !namespace.is_empty() && !is_dns1123_label(namespace) {
        v.error(format!(
            "gateway {name:?}: {namespace:?} is not a valid namespace name"
        ));
    }
    if !gateway.is_empty() && !is_dns1123_label(gateway) {
        v.error(format!(
            "gateway {name:?}: {gateway:?} is not a valid gateway name (lowercase letters, digits and '-'; no wildcards)"
        ));
    }
}

/// The prefix of the SNI names sidecars use for mesh traffic through an AUTO_PASSTHROUGH
/// gateway: `outbound_.<port>_.<subset>_.<host>`.
const GENERATED_SNI_PREFIX: &str = "outbound_";

/// A host of a VirtualService bound to gateways only; with TLS rules, the SNI names the mesh
/// generates are accepted too.
fn check_gateway_bound_host(host: &str, sni: bool) -> Result<(), String> {
    if !(sni && host.starts_with(GENERATED_SNI_PREFIX)) {
        return check_wildcard_domain(host);
    }
    if host.len() > 255 {
        return Err(format!(
            "host name {host:?} is too long (at most 255 characters)"
        ));
    }
    let parts: Vec<&str> = host.split('_').collect();
    let port = parts
        .get(1)
        .map(|p| p.trim_matches('.'))
        .unwrap_or_default();
    let name = parts
        .get(3)
        .map(|p| p.trim_matches('.'))
        .unwrap_or_default();
    let well_formed = parts.len() >= 4
        && !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
        && name.bytes().any(|b| b.is_ascii_alphabetic());
    if well_formed {
        Ok(())
    } else {
        Err(format!(
            "{host:?} is not a valid generated SNI name: expected outbound_.<port>_.<subset>_.<host>"
        ))
    }
}

fn check_sni_host(sni: &str, scope: Scope<'_>, v: &mut Validator) {
    let checked = if scope.gateway_only {
        check_gateway_bound_host(sni, true)
    } else {
        check_wildcard_domain(sni)
    };
    if let Err(problem) = checked {
        if sni.parse::<IpAddr>().is_ok() {
            v.warn(format!(
                "{sni:?} is an IP address: TLS clients do not send IP addresses as SNI, so this rarely matches"
            ));
        } else {
            v.error(problem);
        }
        return;
    }
    if !scope.vs.hosts.iter().any(|host| host_is_subset(sni, host)) {
        v.error(format!(
            "SNI host {sni:?} is not within any of the VirtualService's hosts [{}]; add a host that covers it",
            scope.vs.hosts.join(", ")
        ));
    }
}

/// Whether two hosts (either may be a `*.` wildcard) have names in common.
pub(super) fn hosts_overlap(a: &str, b: &str) -> bool {
    match (a.strip_prefix('*'), b.strip_prefix('*')) {
        (Some(a), Some(b)) => a.ends_with(b) || b.ends_with(a),
        (Some(suffix), None) => b.ends_with(suffix),
        (None, Some(suffix)) => a.ends_with(suffix),
        (None, None) => a == b,
    }
}

/// Whether every name `host` stands for is also one `of` stands for.
fn host_is_subset(host: &str, of: &str) -> bool {
    match (host.strip_prefix('*'), of.strip_prefix('*')) {
        (Some(inner), Some(outer)) => inner.len() >= outer.len() && inner.ends_with(outer),
        (Some(_), None) => false,
        (None, Some(suffix)) => host.ends_with(suffix),
        (None, None) => host == of,
    }
}

/// The destinations of a TLS or TCP rule.
fn check_route_destinations(route: &[RouteDestination], v: &mut Validator) {
    v.each("route", route, |v, dest| {
        v.nested("destination", &dest.destination);
        check_weight(dest.weight, v);
    });
    check_total_weight(route.iter().map(|d| d.weight), v);
}

pub(super) fn check_weight(weight: Option<i32>, v: &mut Validator) {
    if let Some(weight) = weight.filter(|w| *w < 0) {
        v.error_at(
            "weight",
            format!("a weight cannot be negative (got {weight})"),
        );
    }
}

/// With several destinations the weights are relative shares; they cannot all be zero.
pub(super) fn check_total_weight(
    weights: impl ExactSizeIterator<Item = Option<i32>>,
    v: &mut Validator,
) {
    let count = weights.len();
    let total: i64 = weights.map(|w| i64::from(w.unwrap_or(0))).sum();
    if count > 1 && total == 0 {
        v.error_at(
            "route",
            "the destinations' weights add up to 0, so no traffic can be sent; give them weights",
        );
    }
}

pub(super) const MILLISECOND: StdDuration = StdDuration::from_millis(1);

/// A duration the proxy takes in milliseconds: at least 1ms, and no finer than 1ms.
pub(super) fn check_millis(key: &str, value: Option<Duration>, v: &mut Validator) {
    let Some(value) = value else { return };
    let value = value.as_std();
    if value < MILLISECOND {
        v.min_duration(key, Some(value), MILLISECOND);
    } else if value.subsec_nanos() % 1_000_000 != 0 {
        v.error_at(
            key,
            format!(
                "must be a whole number of milliseconds (got {})",
                Duration::from(value)
            ),
        );
    }
}
