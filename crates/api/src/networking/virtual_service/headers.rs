//! Header names and values in HTTP rules: names matched on, headers changed on the way to the
//! destination and back, CORS header lists, and the proxy's `%VARIABLE%` syntax in values.

use super::{HeaderOperations, Headers, HttpRoute};
use crate::types::names::is_header_token;
use crate::validate::Validator;

/// The special header name that routes on a claim of the request's JWT, at gateways.
const JWT_CLAIM_HEADER: &str = "@request.auth.claims";

/// HTTP/2 pseudo-headers a match may test.
const MATCHABLE_PSEUDO_HEADERS: [&str; 5] =
    [":method", ":scheme", ":authority", ":path", ":status"];

/// `@request.auth.claims.<name>[.<nested>...]` or `@request.auth.claims[<name>][<nested>]...`.
pub(super) fn is_jwt_claim(name: &str) -> bool {
    let Some(prefix) = name.get(..JWT_CLAIM_HEADER.len()) else {
        return false;
    };
    if !prefix.eq_ignore_ascii_case(JWT_CLAIM_HEADER) {
        return false;
    }
    let claim = &name[JWT_CLAIM_HEADER.len()..];
    (claim.starts_with('.') && claim.len() > 1)
        || (claim.starts_with('[') && claim.ends_with(']') && claim.len() > 2)
}

/// The name of a header a match tests.
pub(super) fn check_match_header_name(name: &str, v: &mut Validator) {
    if name.is_empty() {
        v.error("a header name cannot be empty");
    } else if is_jwt_claim(name) || MATCHABLE_PSEUDO_HEADERS.contains(&name) {
    } else if name.starts_with(':') {
        v.error(format!(
            "{name:?} is not a pseudo-header that can be matched; use one of {}",
            MATCHABLE_PSEUDO_HEADERS.join(", ")
        ));
    } else if !is_header_token(name) {
        v.error(format!("{name:?} is not a valid HTTP header name"));
    }
}

/// A header name in a CORS list, where `*` stands for every header.
pub(super) fn check_cors_header_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        Err("a header name cannot be empty".into())
    } else if name == "*" || is_header_token(name) {
        Ok(())
    } else {
        Err(format!("{name:?} is not a valid HTTP header name"))
    }
}

fn is_authority_header(name: &str) -> bool {
    name.eq_ignore_ascii_case(":authority") || name.eq_ignore_ascii_case("host")
}

/// Header changes on requests and responses.
pub(super) fn check_headers(headers: &Headers, v: &mut Validator) {
    if let Some(request) = &headers.request {
        v.at("request", |v| check_operations(request, true, v));
    }
    if let Some(response) = &headers.response {
        v.at("response", |v| check_operations(response, false, v));
    }
}

fn check_operations(ops: &HeaderOperations, request: bool, v: &mut Validator) {
    for (key, entries) in [("set", &ops.set), ("add", &ops.add)] {
        v.at(key, |v| {
            for (name, value) in entries {
                v.at(name, |v| {
                    // Requests may have their authority set here (see check_authority_rewrite).
                    if !(request && is_authority_header(name)) {
                        check_changed_header_name(name, v);
                    }
                    if let Err(problem) = check_header_value(value) {
                        v.error(problem);
                    }
                });
            }
        });
    }
    v.each("remove", &ops.remove, |v, name| {
        check_changed_header_name(name, v)
    });
}

/// A header that is removed, or changed on a response (or changed on a request, other than the
/// authority).
fn check_changed_header_name(name: &str, v: &mut Validator) {
    if name.is_empty() {
        v.error("a header name cannot be empty");
    } else if name.eq_ignore_ascii_case("host") {
        v.error("the host header cannot be removed or changed here; to change a request's authority, use rewrite.authority");
    } else if name.starts_with(':') {
        v.error(format!(
            "{name:?} is a pseudo-header (it starts with ':'); pseudo-headers cannot be changed"
        ));
    }
}

/// The authority of a request may be rewritten in one place only: `rewrite.authority`, or one
/// `:authority`/`host` entry of the rule's `headers.request.set` or `add`.
pub(super) fn check_authority_rewrite(route: &HttpRoute, v: &mut Validator) {
    let mut first: Option<String> = route
        .rewrite
        .as_ref()
        .and_then(|r| r.authority.as_deref())
        .filter(|a| !a.is_empty())
        .map(|_| "rewrite.authority".to_owned());
    let Some(request) = route.headers.as_ref().and_then(|h| h.request.as_ref()) else {
        return;
    };
    for (key, entries) in [("set", &request.set), ("add", &request.add)] {
        for (name, value) in entries {
            if !is_authority_header(name) || value.is_empty() {
                continue;
            }
            let here = format!("headers.request.{key}[{name:?}]");
            match &first {
                Some(earlier) => v.at("headers", |v| {
                    v.at("request", |v| {
                        v.at(key, |v| {
                            v.error_at(name, format!("the authority is already rewritten by {earlier}; rewrite it in one place only"));
                        });
                    });
                }),
                None => first = Some(here),
            }
        }
    }
}

/// A header value as the proxy reads it: no control characters other than tab, and `%` only
/// as `%%` or around a variable (`%HOSTNAME%`, `%REQ(x-id)%`, `%FILTER_STATE(["a", "b"])%`).
pub(super) fn check_header_value(value: &str) -> Result<(), String> {
    if value.chars().any(|c| c.is_ascii_control() && c != '\t') {
        return Err(format!(
            "header value {value:?} contains control characters"
        ));
    }
    let bytes = value.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] != b'%' {
            at += 1;
        } else if bytes.get(at + 1) == Some(&b'%') {
            at += 2;
        } else if at + 1 == bytes.len() {
            return Err(format!(
                "header value {value:?} ends with a lone '%'; write %% for a literal percent sign"
            ));
        } else {
            at = skip_variable(bytes, at + 1)
                .map_err(|problem| format!("header value {value:?}: {problem}"))?;
        }
    }
    Ok(())
}

/// Where a `%VARIABLE%` or `%VARIABLE(arguments)%` expression is being read.
#[derive(Clone, Copy, PartialEq)]
enum Reading {
    Name,
    /// After `(`: a `[`-list of quoted strings, or a bare argument.
    ArgumentsStart,
    /// Inside the list, before a quoted string.
    ListItem,
    /// Inside a quoted string, or a bare argument.
    Text,
    /// After a quoted string: `,` or `]`.
    ListSeparator,
    /// After `]`: `)`.
    ArgumentsEnd,
    /// After `)`: the closing `%`.
    Close,
}

/// Reads a variable expression starting after its opening `%`; returns the index after its
/// closing `%`.
fn skip_variable(bytes: &[u8], mut at: usize) -> Result<usize, &'static str> {
    let mut reading = Reading::Name;
    while let Some(&b) = bytes.get(at) {
        let space = b == b' ';
        reading = match (reading, b) {
            (Reading::Name | Reading::Close, b'%') => return Ok(at + 1),
            (Reading::Name, b'(') => Reading::ArgumentsStart,
            (Reading::Name, _) => Reading::Name,
            (Reading::ArgumentsStart, b'[') => Reading::ListItem,
            (Reading::ArgumentsStart, _) if space => Reading::ArgumentsStart,
            (Reading::ArgumentsStart, _) => Reading::Text,
            (Reading::ListItem, b'"') => Reading::Text,
            (Reading::ListItem, _) if space => Reading::ListItem,
            (Reading::ListItem, _) => return Err("expected '\"' to start a string argument"),
            (Reading::Text, b'\\') => {
                if at + 1 == bytes.len() {
                    return Err("a backslash at the end of a string argument escapes nothing");
                }
                at += 1;
                Reading::Text
            }
            (Reading::Text, b')') => Reading::Close,
            (Reading::Text, b'"') => Reading::ListSeparator,
            (Reading::Text, _) => Reading::Text,
            (Reading::ListSeparator, b',') => Reading::ListItem,
            (Reading::ListSeparator, b']') => Reading::ArgumentsEnd,
            (Reading::ListSeparator, _) if space => Reading::ListSeparator,
            (Reading::ListSeparator, _) => {
                return Err("expected ',' or ']' after a string argument");
            }
            (Reading::ArgumentsEnd, b')') => Reading::Close,
            (Reading::ArgumentsEnd, _) if space => Reading::ArgumentsEnd,
            (Reading::ArgumentsEnd, _) => return Err("expected ')' after the argument list"),
            (Reading::Close, _) if space => Reading::Close,
            (Reading::Close, _) => return Err("expected '%' to close the variable"),
        };
        at += 1;
    }
    Err("a %VARIABLE% expression is not closed; write %% for a literal percent sign")
}
