//! The DestinationRule in force for a service, found as Istio finds it, and the traffic policy
//! it gives one cluster (one port, one subset).
//!
//! Lookup order, for a proxy in namespace P and a service in namespace S: the rules of P that P
//! sees (a rule with a `workloadSelector` only when it selects the proxy's labels); then the
//! rules of S exported to P; then the rules of the root namespace `istio-system` exported to P.
//! The first namespace with a rule for the host wins, and within it the most specific host: an
//! exact host, else the longest wildcard covering it. Several rules for that host in that
//! namespace are merged: the first (by name) that has a traffic policy supplies it, and each
//! subset comes from the first rule that defines its name.
//!
//! The policy of a cluster is the rule's `trafficPolicy`, overridden wholesale (load balancer,
//! connection pool, outlier detection, TLS, set or not) by its `portLevelSettings` entry for the
//! port; then each field the subset's `trafficPolicy` sets replaces the rule's, and the subset's
//! own port-level entry replaces those four again. This is Istio's merge. What the TLS in force
//! becomes is [`crate::upstream_tls`]'s concern.

use trellis_api::ObjectMeta;
use trellis_api::meta::ROOT_NAMESPACE;
use trellis_api::networking::{
    ClientTlsSettings, ConnectionPoolSettings, DestinationRule, LoadBalancerSettings,
    OutlierDetection, RetryBudget, Subset, TrafficPolicy,
};
use trellis_api::types::labels_match;

use crate::context::Scope;
use crate::hosts::{covers, exported_to, to_fqdn};
use crate::resources::Named;
use crate::warnings::Warnings;

/// The rules in force for one host: one rule, or several of one namespace merged.
#[derive(Debug)]
pub(crate) struct RuleInForce<'a> {
    rules: Vec<Named<'a, DestinationRule>>,
}

/// A subset, with the rule and index it was defined at.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SubsetRef<'a> {
    pub(crate) rule: &'a ObjectMeta,
    pub(crate) index: usize,
    pub(crate) subset: &'a Subset,
}

impl<'a> RuleInForce<'a> {
    fn traffic_policy(&self) -> Option<(&'a ObjectMeta, &'a TrafficPolicy)> {
        self.rules
            .iter()
            .find_map(|r| Some((r.meta, r.spec.traffic_policy.as_ref()?)))
    }

    pub(crate) fn subset(&self, name: &str) -> Option<SubsetRef<'a>> {
        self.rules.iter().find_map(|r| {
            let (index, subset) = r
                .spec
                .subsets
                .iter()
                .enumerate()
                .find(|(_, s)| s.name == name)?;
            Some(SubsetRef {
                rule: r.meta,
                index,
                subset,
            })
        })
    }

    /// The first of the rules (by name) that has any annotation starting with `prefix`.
    pub(crate) fn annotated(&self, prefix: &str) -> Option<&'a ObjectMeta> {
        self.rules
            .iter()
            .map(|r| r.meta)
            .find(|meta| meta.annotations.keys().any(|k| k.starts_with(prefix)))
    }

    /// `namespace/name` of the rules, for messages.
    pub(crate) fn names(&self) -> String {
        let names: Vec<String> = self.rules.iter().map(|r| r.full_name()).collect();
        names.join(", ")
    }
}

/// The rules in force for `host` (fully qualified), whose service lives in `service_namespace`
/// when the registry knows it.
pub(crate) fn lookup<'a>(
    cx: &Scope<'a>,
    host: &str,
    service_namespace: Option<&str>,
) -> Option<RuleInForce<'a>> {
    let rules = &cx.index.destination_rules;
    let local = rules.iter().filter(|r| {
        r.namespace() == cx.namespace
            && exported_to(&r.spec.export_to, r.namespace(), cx.namespace)
            && r.spec.workload_selector.as_ref().is_none_or(|selector| {
                cx.labels
                    .is_some_and(|labels| labels_match(&selector.match_labels, labels))
            })
    });
    if let Some(found) = most_specific(local, host) {
        return Some(found);
    }
    let exported_from = |namespace: &str| {
        let namespace = namespace.to_owned();
        rules.iter().filter(move |r| {
            r.namespace() == namespace
                && r.spec.workload_selector.is_none()
                && exported_to(&r.spec.export_to, r.namespace(), cx.namespace)
        })
    };
    if let Some(namespace) = service_namespace
        && namespace != cx.namespace
        && let Some(found) = most_specific(exported_from(namespace), host)
    {
        return Some(found);
    }
    if cx.namespace == ROOT_NAMESPACE {
        return None;
    }
    most_specific(exported_from(ROOT_NAMESPACE), host)
}

/// Among `candidates` (all of one namespace), the rules for the most specific host covering
/// `host`.
fn most_specific<'a, 'b>(
    candidates: impl Iterator<Item = &'b Named<'a, DestinationRule>>,
    host: &str,
) -> Option<RuleInForce<'a>>
where
    'a: 'b,
{
    let mut best: Option<(String, Vec<Named<'a, DestinationRule>>)> = None;
    for rule in candidates {
        let pattern = to_fqdn(&rule.spec.host, rule.namespace());
        if !covers(&pattern, host) {
            continue;
        }
        let rank = |p: &str| (!p.starts_with('*'), p.len());
        match &mut best {
            Some((current, rules)) if *current == pattern => rules.push(*rule),
            Some((current, _)) if rank(current) >= rank(&pattern) => {}
            _ => best = Some((pattern, vec![*rule])),
        }
    }
    best.map(|(_, rules)| RuleInForce { rules })
}

/// A setting, with where it was written.
#[derive(Debug, Clone)]
pub(crate) struct Sourced<'a, T> {
    pub(crate) value: &'a T,
    pub(crate) rule: &'a ObjectMeta,
    pub(crate) path: String,
}

impl<T> Sourced<'_, T> {
    /// Reports `field` (under this setting's path) as not supported.
    pub(crate) fn unsupported(&self, field: &str, warnings: &mut Warnings) {
        let path = if field.is_empty() {
            self.path.clone()
        } else {
            format!("{}.{field}", self.path)
        };
        warnings.field(
            "DestinationRule",
            self.rule,
            &path,
            "not supported yet; ignored",
        );
    }
}

/// The traffic policy of one cluster.
#[derive(Debug, Default)]
pub(crate) struct Policy<'a> {
    pub(crate) load_balancer: Option<Sourced<'a, LoadBalancerSettings>>,
    pub(crate) connection_pool: Option<Sourced<'a, ConnectionPoolSettings>>,
    pub(crate) outlier_detection: Option<Sourced<'a, OutlierDetection>>,
    pub(crate) retry_budget: Option<Sourced<'a, RetryBudget>>,
    pub(crate) tls: Option<Sourced<'a, ClientTlsSettings>>,
    /// Settings with no counterpart at all: where they were written.
    others: Vec<(&'a ObjectMeta, String)>,
}

impl<'a> Policy<'a> {
    /// The policy for `port` and `subset` of the service the rules are in force for.
    pub(crate) fn new(
        rules: Option<&RuleInForce<'a>>,
        subset: Option<SubsetRef<'a>>,
        port: u16,
    ) -> Self {
        let mut policy = Self::default();
        if let Some((rule, top)) = rules.and_then(RuleInForce::traffic_policy) {
            policy.apply(rule, "spec.trafficPolicy".to_owned(), top, port);
        }
        if let Some(SubsetRef {
            rule,
            index,
            subset,
        }) = subset
            && let Some(own) = &subset.traffic_policy
        {
            policy.apply(
                rule,
                format!("spec.subsets[{index}].trafficPolicy"),
                own,
                port,
            );
        }
        policy
    }

    fn apply(&mut self, rule: &'a ObjectMeta, base: String, tp: &'a TrafficPolicy, port: u16) {
        fn set<'a, T>(
            slot: &mut Option<Sourced<'a, T>>,
            value: Option<&'a T>,
            rule: &'a ObjectMeta,
            path: String,
        ) {
            if let Some(value) = value {
                *slot = Some(Sourced { value, rule, path });
            }
        }
        set(
            &mut self.load_balancer,
            tp.load_balancer.as_ref(),
            rule,
            format!("{base}.loadBalancer"),
        );
        set(
            &mut self.connection_pool,
            tp.connection_pool.as_ref(),
            rule,
            format!("{base}.connectionPool"),
        );
        set(
            &mut self.outlier_detection,
            tp.outlier_detection.as_ref(),
            rule,
            format!("{base}.outlierDetection"),
        );
        set(&mut self.tls, tp.tls.as_ref(), rule, format!("{base}.tls"));
        set(
            &mut self.retry_budget,
            tp.retry_budget.as_ref(),
            rule,
            format!("{base}.retryBudget"),
        );
        for (field, present) in [
            ("tunnel", tp.tunnel.is_some()),
            ("proxyProtocol", tp.proxy_protocol.is_some()),
        ] {
            if present {
                self.others.push((rule, format!("{base}.{field}")));
            }
        }
        let port_level = tp
            .port_level_settings
            .iter()
            .enumerate()
            .find(|(_, p)| p.port.is_some_and(|p| p.number.get() == port));
        if let Some((i, settings)) = port_level {
            let at = |field: &str| format!("{base}.portLevelSettings[{i}].{field}");
            fn source<'a, T>(
                value: Option<&'a T>,
                rule: &'a ObjectMeta,
                path: String,
            ) -> Option<Sourced<'a, T>> {
                value.map(|value| Sourced { value, rule, path })
            }
            self.load_balancer = source(settings.load_balancer.as_ref(), rule, at("loadBalancer"));
            self.connection_pool = source(
                settings.connection_pool.as_ref(),
                rule,
                at("connectionPool"),
            );
            self.outlier_detection = source(
                settings.outlier_detection.as_ref(),
                rule,
                at("outlierDetection"),
            );
            self.tls = source(settings.tls.as_ref(), rule, at("tls"));
        }
    }

    /// Reports the settings in force that clusters cannot express yet.
    pub(crate) fn warn_unsupported(&self, warnings: &mut Warnings) {
        for (rule, path) in &self.others {
            warnings.field("DestinationRule", rule, path, "not supported yet; ignored");
        }
    }
}
