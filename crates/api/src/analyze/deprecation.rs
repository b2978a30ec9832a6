//! Deprecated fields in use (IST0002), where each kind's validation does not already say so.
//!
//! Validation warns about most deprecated fields as it reads them (a VirtualService's
//! `mirrorPercent` and `fault.delay.percent`, `corsPolicy.allowOrigin`, a DestinationRule's
//! `consecutiveErrors` and `minimumRingSize`, old EnvoyFilter filter names, `targetPort` on
//! Gateway and Sidecar ports); those are not repeated here. This module reports the rest.

use super::{Analyzer, Context, Report, messages};
use crate::FieldPath;
use crate::kube::{DeploymentSpec, PodSpec};
use crate::networking::{
    ApplyTo, DestinationRule, EnvoyFilter, LoadBalancerSettings, OutboundTrafficPolicyMode,
    Sidecar, SimpleLb, TrafficPolicy,
};

pub(super) const ANALYZERS: &[Analyzer] = &[
    sidecar_egress_proxy,
    load_balancer_fields,
    envoy_filter_bootstrap,
    pod_service_account,
];

/// A Sidecar's `outboundTrafficPolicy.egressProxy`. (Without `mode: ALLOW_ANY` validation
/// already refuses it.)
fn sidecar_egress_proxy(ctx: &Context<'_>, report: &mut Report) {
    for (entry, sidecar) in ctx.each::<Sidecar>() {
        let Some(policy) = &sidecar.spec.outbound_traffic_policy else {
            continue;
        };
        if policy.egress_proxy.is_none() || policy.mode != Some(OutboundTrafficPolicyMode::AllowAny)
        {
            continue;
        }
        report.add(
            messages::DEPRECATED,
            entry,
            FieldPath::root().key("spec").key("outboundTrafficPolicy").key("egressProxy"),
            "egressProxy is deprecated and may be ignored by the proxy; send traffic for unknown hosts through an egress gateway instead",
        );
    }
}

/// A DestinationRule's `simple: LEAST_CONN` and `warmupDurationSecs`, wherever a load balancer
/// is set: the rule's traffic policy, its subsets', and their port-level settings.
fn load_balancer_fields(ctx: &Context<'_>, report: &mut Report) {
    for (entry, rule) in ctx.each::<DestinationRule>() {
        let spec = FieldPath::root().key("spec");
        let mut policies: Vec<(FieldPath, &TrafficPolicy)> = Vec::new();
        if let Some(policy) = &rule.spec.traffic_policy {
            policies.push((spec.key("trafficPolicy"), policy));
        }
        for (index, subset) in rule.spec.subsets.iter().enumerate() {
            if let Some(policy) = &subset.traffic_policy {
                policies.push((
                    spec.key("subsets").index(index).key("trafficPolicy"),
                    policy,
                ));
            }
        }
        let mut balancers: Vec<(FieldPath, &LoadBalancerSettings)> = Vec::new();
        for (at, policy) in policies {
            if let Some(lb) = &policy.load_balancer {
                balancers.push((at.key("loadBalancer"), lb));
            }
            for (index, port) in policy.port_level_settings.iter().enumerate() {
                if let Some(lb) = &port.load_balancer {
                    let at = at.key("portLevelSettings").index(index).key("loadBalancer");
                    balancers.push((at, lb));
                }
            }
        }
        for (at, lb) in balancers {
            if lb.simple == Some(SimpleLb::LeastConn) {
                report.add(
                    messages::DEPRECATED,
                    entry,
                    at.key("simple"),
                    "LEAST_CONN is deprecated; use LEAST_REQUEST, which balances the same way",
                );
            }
            if lb.warmup_duration_secs.is_some() {
                report.add(
                    messages::DEPRECATED,
                    entry,
                    at.key("warmupDurationSecs"),
                    "warmupDurationSecs is deprecated; use warmup.duration",
                );
            }
        }
    }
}

/// An EnvoyFilter patch with `applyTo: BOOTSTRAP`.
fn envoy_filter_bootstrap(ctx: &Context<'_>, report: &mut Report) {
    for (entry, filter) in ctx.each::<EnvoyFilter>() {
        for (index, patch) in filter.spec.config_patches.iter().enumerate() {
            if patch.apply_to != Some(ApplyTo::Bootstrap) {
                continue;
            }
            report.add(
                messages::DEPRECATED,
                entry,
                FieldPath::root()
                    .key("spec")
                    .key("configPatches")
                    .index(index)
                    .key("applyTo"),
                "applyTo BOOTSTRAP is deprecated; set bootstrap overrides with the proxy's bootstrap template (the sidecar.istio.io/bootstrapOverride annotation) instead",
            );
        }
    }
}

/// A pod's `serviceAccount`, the deprecated spelling of `serviceAccountName`. (When both are
/// set and differ, validation already says so.)
fn pod_service_account(ctx: &Context<'_>, report: &mut Report) {
    let pods = ctx
        .each::<PodSpec>()
        .map(|(entry, pod)| (entry, &pod.spec, FieldPath::root().key("spec")));
    let templates = ctx.each::<DeploymentSpec>().map(|(entry, deployment)| {
        let at = FieldPath::root().key("spec").key("template").key("spec");
        (entry, &deployment.spec.template.spec, at)
    });
    for (entry, pod, at) in pods.chain(templates) {
        let Some(old) = pod.service_account.as_deref().filter(|s| !s.is_empty()) else {
            continue;
        };
        let name = pod.service_account_name.as_deref().unwrap_or_default();
        if !name.is_empty() && name != old {
            continue;
        }
        report.add(
            messages::DEPRECATED,
            entry,
            at.key("serviceAccount"),
            format!("serviceAccount is deprecated; write serviceAccountName: {old}"),
        );
    }
}
