//! Rules and matches that can never be used, reported as warnings.
//!
//! Rules are tried in order and the first match wins, so a rule after one without match
//! conditions is never reached, and an HTTP match is never used when an earlier match accepts
//! every request it would (the same match again, or a wider one: a shorter path prefix, fewer
//! headers). The comparison is conservative: it only reports what it can prove.

use std::collections::BTreeMap;

use super::{
    HttpMatchRequest, HttpRoute, L4MatchAttributes, MESH_GATEWAY, TlsMatchAttributes,
    VirtualService,
};
use crate::analyze::messages::{
    VIRTUAL_SERVICE_INEFFECTIVE_MATCH, VIRTUAL_SERVICE_UNREACHABLE_RULE,
};
use crate::types::StringMatch;
use crate::validate::Validator;

/// Analysis codes of the findings this module reports.
const UNREACHABLE_RULE: &str = VIRTUAL_SERVICE_UNREACHABLE_RULE.id;
const INEFFECTIVE_MATCH: &str = VIRTUAL_SERVICE_INEFFECTIVE_MATCH.id;

pub(super) fn check(vs: &VirtualService, v: &mut Validator) {
    check_http(vs, v);
    let tls: Vec<Vec<TlsMatchAttributes>> = vs
        .tls
        .iter()
        .map(|rule| rule.r#match.iter().map(normal_tls).collect())
        .collect();
    check_l4("tls", &tls, "connection", v);
    let tcp: Vec<Vec<L4MatchAttributes>> = vs
        .tcp
        .iter()
        .map(|rule| rule.r#match.iter().map(normal_tcp).collect())
        .collect();
    check_l4("tcp", &tcp, "connection", v);
}

/// How a warning names a rule: by its name when it has one.
fn rule_name(rules: &[HttpRoute], index: usize) -> String {
    match rules[index].name.as_deref().filter(|n| !n.is_empty()) {
        Some(name) => format!("rule {name:?} (http[{index}])"),
        None => format!("http[{index}]"),
    }
}

fn match_name(rules: &[HttpRoute], rule: usize, index: usize) -> String {
    let m = &rules[rule].r#match[index];
    match m.name.as_deref().filter(|n| !n.is_empty()) {
        Some(name) => format!("match {name:?} (http[{rule}].match[{index}])"),
        None => format!("http[{rule}].match[{index}]"),
    }
}

fn check_http(vs: &VirtualService, v: &mut Validator) {
    let rules = &vs.http;
    let default_gateways: Vec<String> = if vs.gateways.is_empty() {
        vec![MESH_GATEWAY.to_owned()]
    } else {
        vs.gateways.clone()
    };
    let scope = Gateways {
        default: &default_gateways,
    };
    // Matches seen so far that nothing before them covers: (rule, match index).
    let mut seen: Vec<(usize, usize)> = Vec::new();
    let mut catch_all: Option<usize> = None;
    v.at("http", |v| {
        for (index, rule) in rules.iter().enumerate() {
            v.at_index(index, |v| {
                if let Some(first) = catch_all {
                    v.warn_coded(UNREACHABLE_RULE, format!(
                        "this rule is never used: {} before it has no match conditions and takes every request",
                        rule_name(rules, first)
                    ));
                    return;
                }
                if rule.r#match.is_empty() {
                    catch_all = Some(index);
                    return;
                }
                let mut taken_by_earlier_rules = 0;
                v.at("match", |v| {
                    for (match_index, m) in rule.r#match.iter().enumerate() {
                        let earlier = seen.iter().find(|(r, k)| scope.covers(&rules[*r].r#match[*k], m));
                        let Some(&(r, k)) = earlier else {
                            seen.push((index, match_index));
                            continue;
                        };
                        if r < index {
                            taken_by_earlier_rules += 1;
                        }
                        let earlier_match = &rules[r].r#match[k];
                        let message = if scope.covers(m, earlier_match) {
                            format!("this match is never used: it is the same as {}", match_name(rules, r, k))
                        } else {
                            format!(
                                "this match is never used: {} comes first and accepts every request this one does",
                                match_name(rules, r, k)
                            )
                        };
                        v.at_index(match_index, |v| v.warn_coded(INEFFECTIVE_MATCH, message));
                    }
                });
                if taken_by_earlier_rules == rule.r#match.len() {
                    v.warn_coded(UNREACHABLE_RULE, "this rule is never used: earlier rules take every request its matches accept");
                }
            });
        }
    });
}

/// TLS and TCP rules: a rule after one without matches, and matches repeated exactly.
fn check_l4<M: PartialEq>(key: &str, rules: &[Vec<M>], unit: &str, v: &mut Validator) {
    let mut catch_all: Option<usize> = None;
    let mut seen: Vec<(usize, usize)> = Vec::new();
    v.at(key, |v| {
        for (index, matches) in rules.iter().enumerate() {
            v.at_index(index, |v| {
                if let Some(first) = catch_all {
                    v.warn_coded(UNREACHABLE_RULE, format!(
                        "this rule is never used: {key}[{first}] before it has no match conditions and takes every {unit}"
                    ));
                    return;
                }
                if matches.is_empty() {
                    catch_all = Some(index);
                    return;
                }
                let mut repeated = 0;
                for (match_index, m) in matches.iter().enumerate() {
                    match seen.iter().find(|(r, k)| rules[*r][*k] == *m) {
                        Some(&(r, k)) => {
                            repeated += 1;
                            v.at("match", |v| {
                                v.at_index(match_index, |v| {
                                    v.warn_coded(INEFFECTIVE_MATCH, format!("this match is never used: it is the same as {key}[{r}].match[{k}]"));
                                });
                            });
                        }
                        None => seen.push((index, match_index)),
                    }
                }
                if repeated == matches.len() {
                    v.warn_coded(UNREACHABLE_RULE, "this rule is never used: earlier rules already have all of its matches");
                }
            });
        }
    });
}

fn normal_tls(m: &TlsMatchAttributes) -> TlsMatchAttributes {
    let mut m = m.clone();
    m.port = m.port.filter(|p| *p != 0);
    m.source_namespace = m.source_namespace.filter(|ns| !ns.is_empty());
    m
}

fn normal_tcp(m: &L4MatchAttributes) -> L4MatchAttributes {
    let mut m = m.clone();
    m.port = m.port.filter(|p| *p != 0);
    m.source_namespace = m.source_namespace.filter(|ns| !ns.is_empty());
    m.source_subnet = m.source_subnet.filter(|s| !s.is_empty());
    m
}

/// The gateways a match without its own `gateways` applies at.
struct Gateways<'a> {
    default: &'a [String],
}

impl Gateways<'_> {
    /// Whether every request `later` accepts is also accepted by `earlier`.
    fn covers(&self, earlier: &HttpMatchRequest, later: &HttpMatchRequest) -> bool {
        let gateways = |m: &HttpMatchRequest| -> Vec<String> {
            if m.gateways.is_empty() {
                self.default.to_vec()
            } else {
                m.gateways.clone()
            }
        };
        let later_gateways = gateways(later);
        let earlier_gateways = gateways(earlier);
        let port = |m: &HttpMatchRequest| m.port.filter(|p| *p != 0);
        let namespace =
            |m: &HttpMatchRequest| m.source_namespace.clone().filter(|ns| !ns.is_empty());
        uri_covers(earlier, later)
            && pseudo_header_covers(&earlier.scheme, &later.scheme)
            && pseudo_header_covers(&earlier.method, &later.method)
            && pseudo_header_covers(&earlier.authority, &later.authority)
            && required_covers(&earlier.headers, &later.headers, true)
            && required_covers(&earlier.query_params, &later.query_params, false)
            && earlier.without_headers.iter().all(|(name, excluded)| {
                later.without_headers.iter().any(|(other, also_excluded)| {
                    other.eq_ignore_ascii_case(name)
                        && condition_covers(
                            &also_excluded.as_string_match(),
                            &excluded.as_string_match(),
                        )
                })
            })
            && (port(earlier).is_none() || port(earlier) == port(later))
            && earlier
                .source_labels
                .iter()
                .all(|(k, value)| later.source_labels.get(k) == Some(value))
            && later_gateways.iter().all(|g| earlier_gateways.contains(g))
            && (namespace(earlier).is_none() || namespace(earlier) == namespace(later))
    }
}

/// Whether every value `later` accepts, `earlier` accepts too.
fn condition_covers(earlier: &StringMatch, later: &StringMatch) -> bool {
    match (earlier, later) {
        (StringMatch::Any, _) => true,
        (StringMatch::Exact(a), StringMatch::Exact(b)) => a == b,
        (StringMatch::Prefix(a), StringMatch::Exact(b) | StringMatch::Prefix(b)) => {
            b.starts_with(a.as_str())
        }
        (StringMatch::Regex(a), StringMatch::Exact(b)) => a.is_match(b),
        (StringMatch::Regex(a), StringMatch::Regex(b)) => a == b,
        _ => false,
    }
}

/// Scheme, method and authority are always present, so `{}` is no condition at all.
fn pseudo_header_covers(earlier: &Option<StringMatch>, later: &Option<StringMatch>) -> bool {
    match (earlier, later) {
        (None | Some(StringMatch::Any), _) => true,
        (Some(_), None) => false,
        (Some(a), Some(b)) => condition_covers(a, b),
    }
}

/// Headers (names compared without case) and query parameters that must be present.
fn required_covers(
    earlier: &BTreeMap<String, StringMatch>,
    later: &BTreeMap<String, StringMatch>,
    fold_case: bool,
) -> bool {
    earlier.iter().all(|(name, condition)| {
        later.iter().any(|(other, narrower)| {
            (if fold_case {
                other.eq_ignore_ascii_case(name)
            } else {
                other == name
            }) && condition_covers(condition, narrower)
        })
    })
}

fn uri_covers(earlier: &HttpMatchRequest, later: &HttpMatchRequest) -> bool {
    let effective = |m: &HttpMatchRequest| m.uri.clone().filter(|u| *u != StringMatch::Any);
    let Some(a) = effective(earlier) else {
        return true;
    };
    let Some(b) = effective(later) else {
        // Every path starts with "/".
        return a == StringMatch::Prefix("/".into()) || a == StringMatch::Prefix(String::new());
    };
    // Case folding applies to exact and prefix paths, not to regexes.
    let folds = |m: &HttpMatchRequest, uri: &StringMatch| {
        m.ignore_uri_case == Some(true) && !matches!(uri, StringMatch::Regex(_))
    };
    let (a_folds, b_folds) = (folds(earlier, &a), folds(later, &b));
    if b_folds && !a_folds {
        return false;
    }
    if !a_folds {
        return condition_covers(&a, &b);
    }
    let lower = |m: StringMatch| match m {
        StringMatch::Exact(s) => StringMatch::Exact(s.to_lowercase()),
        StringMatch::Prefix(s) => StringMatch::Prefix(s.to_lowercase()),
        other => other,
    };
    condition_covers(&lower(a), &lower(b))
}

/// `covers` for the tests, with the gateways a match without its own list applies at.
#[cfg(test)]
pub(super) fn tests_scope(
    default: &[String],
) -> impl Fn(&HttpMatchRequest, &HttpMatchRequest) -> bool + '_ {
    move |earlier, later| Gateways { default }.covers(earlier, later)
}
