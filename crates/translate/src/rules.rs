//! The HTTP rules of a VirtualService as a flat list, delegations inlined
//! ([`crate::delegate`]), each with its route name and where it was written.
//!
//! Route names: the rule's `name` when it has one (Istio's route name, as access logs show it),
//! else `<virtual service>.<namespace>.<index>`. Gateway names in matches are qualified
//! (`namespace/name`) here, with the namespace of the VirtualService that wrote them.

use trellis_api::ObjectMeta;
use trellis_api::networking::{HttpRoute, VirtualService};

use crate::context::Scope;
use crate::delegate;
use crate::hosts::qualify_gateway;
use crate::resources::Named;
use crate::warnings::Warnings;

/// One HTTP rule to translate.
#[derive(Debug, Clone)]
pub(crate) struct Rule<'a> {
    pub(crate) route: HttpRoute,
    pub(crate) name: String,
    /// The VirtualService that wrote the rule (the delegate, for a delegated rule): its
    /// namespace completes short host names, and warnings name it.
    pub(crate) source: &'a ObjectMeta,
    /// The rule's path in `source` (`spec.http[2]`).
    pub(crate) path: String,
}

/// The HTTP rules of `vs`, in order.
pub(crate) fn http_rules<'a>(
    cx: &Scope<'a>,
    vs: Named<'a, VirtualService>,
    warnings: &mut Warnings,
) -> Vec<Rule<'a>> {
    let mut out = Vec::new();
    for (i, rule) in vs.spec.http.iter().enumerate() {
        let mut route = rule.clone();
        qualify_gateways(&mut route, vs.namespace());
        match &rule.delegate {
            Some(target) => out.extend(delegate::inline(cx, vs, i, &route, target, warnings)),
            None => out.push(Rule {
                name: rule
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("{}.{}.{i}", vs.name(), vs.namespace())),
                route,
                source: vs.meta,
                path: format!("spec.http[{i}]"),
            }),
        }
    }
    out
}

/// Writes every gateway named in the rule's matches as `namespace/name`.
pub(crate) fn qualify_gateways(route: &mut HttpRoute, namespace: &str) {
    for m in &mut route.r#match {
        for gateway in &mut m.gateways {
            if let Some(qualified) = qualify_gateway(gateway, namespace) {
                *gateway = qualified;
            }
        }
    }
}
