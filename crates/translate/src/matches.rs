//! HTTP match conditions: which of a rule's matches apply at this proxy, and how each becomes a
//! [`RouteMatch`].
//!
//! As in Istio, conditions about the proxy rather than the request are settled here: a match
//! whose `gateways` do not name this gateway, whose `port` is not the listener's, whose
//! `sourceNamespace` is not the proxy's or whose `sourceLabels` do not select the proxy's labels
//! is left out (and a rule left with no match is dropped, not turned into a catch-all). A match
//! that is a catch-all (`prefix: /` and nothing else) ends the VirtualService: later matches and
//! rules could never be reached. Header conditions on JWT claims (`@request.auth.claims.*`) need
//! request authentication, which is not implemented: such a match is left out, with a warning.

use trellis_api::networking::HttpMatchRequest;
use trellis_api::types::{StringMatch, labels_match};
use trellis_proxy_config::{HeaderMatch, QueryMatch, RouteMatch};

use crate::context::{Output, Scope};
use crate::rules::Rule;

/// The header-name prefix of conditions on JWT claims.
const JWT_CLAIM_PREFIX: &str = "@request.auth.claims";

/// Where rules are being translated: for which gateway (`namespace/name`) and listener port.
#[derive(Debug, Clone, Copy)]
pub(crate) struct At<'a, 'b> {
    pub(crate) cx: &'b Scope<'a>,
    pub(crate) gateway: &'b str,
    pub(crate) port: u16,
}

/// The rule's matches that apply here, and whether the rule is a catch-all (nothing after it
/// can match). `None` when the rule has matches and none applies.
pub(crate) fn select(
    at: At<'_, '_>,
    rule: &Rule<'_>,
    out: &mut Output,
) -> Option<(Vec<RouteMatch>, bool)> {
    if rule.route.r#match.is_empty() {
        return Some((Vec::new(), true));
    }
    let mut matches = Vec::new();
    let mut catch_all = false;
    for (j, m) in rule.route.r#match.iter().enumerate() {
        let path = format!("{}.match[{j}]", rule.path);
        if !applies(at, m, &path, rule, out) {
            continue;
        }
        if let Some(translated) = translate(m, at.port, &path, rule, out) {
            matches.push(translated);
        }
        if is_catch_all(m) {
            catch_all = true;
            break;
        }
    }
    (!matches.is_empty()).then_some((matches, catch_all))
}

fn applies(
    at: At<'_, '_>,
    m: &HttpMatchRequest,
    path: &str,
    rule: &Rule<'_>,
    out: &mut Output,
) -> bool {
    if m.port.is_some_and(|p| p != 0 && p != u32::from(at.port)) {
        return false;
    }
    if !m.gateways.is_empty() && !m.gateways.iter().any(|g| g == at.gateway) {
        return false;
    }
    if m.source_namespace
        .as_ref()
        .is_some_and(|ns| ns != at.cx.namespace)
    {
        return false;
    }
    if !m.source_labels.is_empty() {
        let Some(labels) = at.cx.labels else {
            out.warnings.field(
                "VirtualService",
                rule.source,
                &format!("{path}.sourceLabels"),
                "the gateway's labels are not known, so this match is left out",
            );
            return false;
        };
        return labels_match(&m.source_labels, labels);
    }
    true
}

/// A match as a [`RouteMatch`]; `None` when it cannot be expressed (and is left out).
fn translate(
    m: &HttpMatchRequest,
    port: u16,
    path: &str,
    rule: &Rule<'_>,
    out: &mut Output,
) -> Option<RouteMatch> {
    if let Some(prefix) = &m.stat_prefix {
        out.warnings.field(
            "VirtualService",
            rule.source,
            &format!("{path}.statPrefix"),
            format!("{prefix:?}: per-route statistics are not supported yet; ignored"),
        );
    }
    let claims = m
        .headers
        .keys()
        .chain(m.without_headers.keys())
        .find(|k| is_jwt_claim(k));
    if let Some(claim) = claims {
        out.warnings.field(
            "VirtualService",
            rule.source,
            path,
            format!("matching on JWT claim {claim:?} needs request authentication, which is not supported yet; this match is left out"),
        );
        return None;
    }
    let mut headers: Vec<HeaderMatch> = m
        .headers
        .iter()
        .map(|(name, value)| HeaderMatch {
            name: name.to_ascii_lowercase(),
            value: value.clone(),
            absent: false,
        })
        .collect();
    headers.extend(m.without_headers.iter().map(|(name, value)| HeaderMatch {
        name: name.to_ascii_lowercase(),
        value: value.as_string_match(),
        absent: true,
    }));
    Some(RouteMatch {
        path: m.uri.clone(),
        ignore_case: m.ignore_uri_case.unwrap_or(false),
        method: m.method.clone(),
        authority: m.authority.clone(),
        scheme: m.scheme.clone(),
        headers,
        query: m
            .query_params
            .iter()
            .map(|(name, value)| QueryMatch {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
        port: m.port.filter(|p| *p != 0).map(|_| port),
    })
}

fn is_jwt_claim(name: &str) -> bool {
    name.get(..JWT_CLAIM_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(JWT_CLAIM_PREFIX))
}

/// Istio's catch-all match: `uri: {prefix: /}` and no other condition.
fn is_catch_all(m: &HttpMatchRequest) -> bool {
    matches!(&m.uri, Some(StringMatch::Prefix(prefix)) if prefix == "/")
        && m.headers.is_empty()
        && m.query_params.is_empty()
        && m.source_labels.is_empty()
        && m.without_headers.is_empty()
        && m.gateways.is_empty()
        && m.method.is_none()
        && m.scheme.is_none()
        && m.port.unwrap_or(0) == 0
        && m.authority.is_none()
        && m.source_namespace.is_none()
}

/// Whether a translated match accepts every request (what Istio moves to the end of a virtual
/// host): any path (or `/` as a prefix), and no condition on method, authority, scheme, headers
/// or query.
pub(crate) fn accepts_everything(m: &RouteMatch) -> bool {
    let any_path = match &m.path {
        None | Some(StringMatch::Any) => true,
        Some(StringMatch::Prefix(prefix)) => prefix == "/",
        Some(_) => false,
    };
    any_path
        && m.method.is_none()
        && m.authority.is_none()
        && m.scheme.is_none()
        && m.headers.is_empty()
        && m.query.is_empty()
}

#[cfg(test)]
mod tests;
