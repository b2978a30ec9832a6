//! HTTP rules of VirtualServices as [`Route`]s.
//!
//! A rule forwards (`route`), redirects (`redirect`) or answers (`directResponse`), in that
//! order of precedence after redirect, as Istio checks them. Forwarding keeps every field the
//! model carries: weighted destinations (a lone destination gets weight 100; with several, one
//! without weight gets none of the traffic and is left out, as in Istio), each destination's
//! header changes, `rewrite` (`uri` as a prefix rewrite, `uriRegexRewrite`, `authority`),
//! `timeout` (`0s`: none) and `retries` ([`crate::retries`]). A rule's `headers` apply to all
//! three actions, in the model's order (set, add, remove); setting the `host` or `:authority`
//! request header is an authority rewrite, as Istio does (for a lone destination its own
//! `host` header too, unless the rule rewrites the authority already). A rule's `fault`
//! ([`crate::faults`]) and `corsPolicy` ([`crate::cors`]) come before any of the three, and
//! the VirtualService's rate-limit annotations ([`crate::rate_limits`]) before those.
//!
//! Mirrors (`mirror` with `mirrorPercentage` or the deprecated `mirrorPercent`, and `mirrors`)
//! become the forward's mirrors: a share of 100 when none is given, none at 0, as in Istio.

use trellis_api::networking::Headers;
use trellis_api::types::Duration;
use trellis_proxy_config::{
    Action, Forward, HeaderChanges, HeaderOperations, Mirror, Rewrite, Route, WeightedCluster,
};

use crate::actions;
use crate::context::Output;
use crate::cors;
use crate::destinations::{self, Written};
use crate::faults;
use crate::matches::{self, At};
use crate::rate_limits;
use crate::retries;
use crate::rules::Rule;

/// The routes of `rules` (one VirtualService's, in order) at a gateway and port. Rules after a
/// catch-all are dropped: no request could reach them.
pub(crate) fn translate_rules(at: At<'_, '_>, rules: &[Rule<'_>], out: &mut Output) -> Vec<Route> {
    let mut routes = Vec::new();
    for rule in rules {
        let Some((matches, catch_all)) = matches::select(at, rule, out) else {
            continue;
        };
        if let Some(route) = translate(at, rule, matches, out) {
            routes.push(route);
        }
        if catch_all {
            break;
        }
    }
    routes
}

fn translate(
    at: At<'_, '_>,
    rule: &Rule<'_>,
    matches: Vec<trellis_proxy_config::RouteMatch>,
    out: &mut Output,
) -> Option<Route> {
    let http = &rule.route;
    let (headers, authority) = header_operations(http.headers.as_ref());
    let action = if let Some(redirect) = &http.redirect {
        Action::Redirect(actions::redirect(rule, redirect, &mut out.warnings))
    } else if let Some(response) = &http.direct_response {
        Action::DirectResponse(actions::direct_response(rule, response, &mut out.warnings))
    } else if !http.route.is_empty() {
        Action::Forward(forward(at, rule, authority, out)?)
    } else {
        let message = "has no route, redirect or direct response; the rule is skipped";
        out.warnings
            .field("VirtualService", rule.source, &rule.path, message);
        return None;
    };
    Some(Route {
        name: rule.name.clone(),
        matches,
        action,
        headers,
        fault: faults::fault(rule, &mut out.warnings),
        cors: cors::policy(rule),
        rate_limit: rate_limits::rate_limit(rule, &mut out.warnings),
        source: Some(format!(
            "VirtualService {}/{} {}",
            rule.source.namespace, rule.source.name, rule.path
        )),
    })
}

fn forward(
    at: At<'_, '_>,
    rule: &Rule<'_>,
    mut authority: Option<String>,
    out: &mut Output,
) -> Option<Forward> {
    let http = &rule.route;
    let lone = http.route.len() == 1;
    let mut destinations = Vec::new();
    for (i, to) in http.route.iter().enumerate() {
        let weight = match to.weight.and_then(|w| u32::try_from(w).ok()).unwrap_or(0) {
            0 if lone => 100,
            0 => continue,
            weight => weight,
        };
        let path = format!("{}.route[{i}].destination", rule.path);
        let written = Written {
            destination: &to.destination,
            source: rule.source,
            path: &path,
        };
        let cluster = destinations::cluster_for(at.cx, written, at.port, out);
        let (mut headers, own_authority) = header_operations(to.headers.as_ref());
        let rewritten = http.rewrite.as_ref().is_some_and(|r| r.authority.is_some());
        match own_authority {
            Some(host) if lone && authority.is_none() && !rewritten => authority = Some(host),
            Some(host) => headers.request.set.push(("host".to_owned(), host)),
            None => {}
        }
        destinations.push(WeightedCluster {
            cluster,
            weight,
            headers,
        });
    }
    if destinations.is_empty() {
        let message = "every destination has weight 0; the rule is skipped";
        out.warnings.field(
            "VirtualService",
            rule.source,
            &format!("{}.route", rule.path),
            message,
        );
        return None;
    }
    let rewrite = http.rewrite.as_ref();
    let path_regex = rewrite
        .and_then(|r| r.uri_regex_rewrite.as_ref())
        .and_then(|r| Some((r.r#match.clone()?, r.rewrite.clone().unwrap_or_default())));
    let rewrite = Rewrite {
        path_prefix: rewrite.and_then(|r| r.uri.clone()),
        path_regex,
        authority: rewrite.and_then(|r| r.authority.clone()).or(authority),
    };
    let empty = rewrite.path_prefix.is_none()
        && rewrite.path_regex.is_none()
        && rewrite.authority.is_none();
    Some(Forward {
        destinations,
        rewrite: (!empty).then_some(rewrite),
        timeout: http.timeout.filter(|t| *t != Duration::default()),
        retry: retries::policy(rule, &mut out.warnings),
        mirrors: mirrors(at, rule, out),
    })
}

/// The rule's `mirror` (with `mirrorPercentage`, or the deprecated `mirrorPercent`) and
/// `mirrors`, as Istio reads them: a share of 100 when none is given, none mirrored at 0.
fn mirrors(at: At<'_, '_>, rule: &Rule<'_>, out: &mut Output) -> Vec<Mirror> {
    let http = &rule.route;
    let single = http.mirror.as_ref().map(|destination| {
        let percent = match (&http.mirror_percentage, http.deprecated_mirror_percent()) {
            (Some(percentage), _) => percentage.get(),
            (None, Some(percent)) => f64::from(percent.min(100)),
            (None, None) => 100.0,
        };
        (destination, percent, format!("{}.mirror", rule.path))
    });
    let listed = http.mirrors.iter().enumerate().map(|(i, policy)| {
        let percent = policy.percentage.as_ref().map_or(100.0, |p| p.get());
        let path = format!("{}.mirrors[{i}].destination", rule.path);
        (&policy.destination, percent, path)
    });
    single
        .into_iter()
        .chain(listed)
        .filter(|(_, percent, _)| *percent > 0.0)
        .map(|(destination, percent, path)| {
            let written = Written {
                destination,
                source: rule.source,
                path: &path,
            };
            Mirror {
                cluster: destinations::cluster_for(at.cx, written, at.port, out),
                percent,
            }
        })
        .collect()
}

/// Istio's header operations as the model's, and the authority a `host` (or `:authority`)
/// request `set` asks for.
fn header_operations(headers: Option<&Headers>) -> (HeaderOperations, Option<String>) {
    let Some(headers) = headers else {
        return (HeaderOperations::default(), None);
    };
    let changes = |ops: Option<&trellis_api::networking::HeaderOperations>| {
        ops.map(|o| HeaderChanges {
            set: o.set.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            add: o.add.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            remove: o.remove.clone(),
        })
        .unwrap_or_default()
    };
    let mut request = changes(headers.request.as_ref());
    let mut authority = None;
    request.set.retain(|(name, value)| {
        let is_authority =
            name.eq_ignore_ascii_case("host") || name.eq_ignore_ascii_case(":authority");
        if is_authority {
            authority = Some(value.clone());
        }
        !is_authority
    });
    (
        HeaderOperations {
            request,
            response: changes(headers.response.as_ref()),
        },
        authority,
    )
}

/// A virtual host's routes in Istio's order: routes that accept every request move to the end,
/// the others keep their order. A route with both kinds of matches is split in two.
pub(crate) fn catch_all_last(routes: Vec<Route>) -> Vec<Route> {
    let mut specific = Vec::new();
    let mut catch_all = Vec::new();
    for route in routes {
        if route.matches.is_empty() {
            catch_all.push(route);
            continue;
        }
        let (everything, narrow): (Vec<_>, Vec<_>) = route
            .matches
            .iter()
            .cloned()
            .partition(matches::accepts_everything);
        if !narrow.is_empty() {
            specific.push(Route {
                matches: narrow,
                ..route.clone()
            });
        }
        if !everything.is_empty() {
            catch_all.push(Route {
                matches: everything,
                ..route
            });
        }
    }
    specific.extend(catch_all);
    specific
}

#[cfg(test)]
mod tests;
