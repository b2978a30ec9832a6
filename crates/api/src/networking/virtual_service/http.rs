//! The rules of one HTTP rule: what it may combine (route, redirect, direct response,
//! delegate), its match conditions, and each of its actions (rewrite, retries, fault, mirrors,
//! CORS). Header names and values are checked in `headers.rs`.

use super::headers::{
    check_authority_rewrite, check_cors_header_name, check_headers, check_match_header_name,
    is_jwt_claim,
};
use super::validate::{
    MILLISECOND, Scope, check_gateway_name, check_match_port, check_millis, check_source_namespace,
    check_total_weight, check_weight,
};
use super::{
    CorsPolicy, Delegate, HttpBody, HttpDirectResponse, HttpFaultInjection,
    HttpFaultInjectionAbort, HttpFaultInjectionDelay, HttpMatchRequest, HttpRedirect, HttpRetry,
    HttpRewrite, HttpRoute, WithoutHeaderMatch,
};
use crate::types::names::{check_resource_name, is_dns1123_label};
use crate::types::{Percent, StringMatch, validate_labels};
use crate::validate::Validator;

/// The longest regex accepted; the proxy's regex engine limits program size, and length is
/// the measure users can see.
const MAX_REGEX_LENGTH: usize = 1024;

/// Direct response bodies above this size are refused; above [`BODY_WARN_BYTES`], warned about.
const BODY_MAX_BYTES: usize = 1024 * 1024;
const BODY_WARN_BYTES: usize = 100 * 1024;

/// Methods a CORS policy may allow.
const CORS_METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE", "*",
];

/// Named `retryOn` conditions (besides HTTP status codes).
const RETRY_ON_POLICIES: [&str; 16] = [
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "envoy-ratelimited",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

/// HTTP status codes with a registered meaning, which `retryOn` also accepts.
const KNOWN_STATUS_CODES: [u16; 62] = [
    100, 101, 102, 103, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304,
    305, 307, 308, 400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415,
    416, 417, 418, 421, 422, 423, 424, 425, 426, 428, 429, 431, 451, 500, 501, 502, 503, 504, 505,
    506, 507, 508, 510, 511,
];

/// gRPC status names a fault may abort with, each at its code.
pub(super) const GRPC_STATUSES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// A string field that is set and not empty (the proxy treats `""` as unset).
fn given(value: &Option<String>) -> bool {
    value.as_deref().is_some_and(|s| !s.is_empty())
}

pub(super) fn check_route(route: &HttpRoute, scope: Scope<'_>, v: &mut Validator) {
    check_actions(route, scope, v);
    v.each("match", &route.r#match, |v, m| check_match(m, scope, v));
    if let Some(headers) = &route.headers {
        v.at("headers", |v| check_headers(headers, v));
    }
    if let Some(cors) = &route.cors_policy {
        v.at("corsPolicy", |v| check_cors(cors, v));
    }
    if let Some(fault) = &route.fault {
        v.at("fault", |v| check_fault(fault, v));
    }
    for (key, percent) in [
        ("mirrorPercent", route.mirror_percent),
        ("mirror_percent", route.mirror_percent_legacy),
    ] {
        if let Some(percent) = percent {
            if percent > 100 {
                v.error_at(key, format!("must be at most 100 (got {percent})"));
            }
            v.warn_at(key, format!("{key} is deprecated; use mirrorPercentage"));
        }
    }
    v.nested("mirror", &route.mirror);
    v.each("mirrors", &route.mirrors, |v, mirror| {
        v.nested("destination", &mirror.destination)
    });
    if let Some(redirect) = &route.redirect {
        v.at("redirect", |v| check_redirect(redirect, &route.r#match, v));
    }
    if let Some(response) = &route.direct_response {
        v.at("directResponse", |v| check_direct_response(response, v));
    }
    if let Some(retries) = &route.retries {
        v.at("retries", |v| check_retries(retries, v));
    }
    if let Some(rewrite) = &route.rewrite {
        v.at("rewrite", |v| check_rewrite(rewrite, v));
    }
    check_authority_rewrite(route, v);
    v.each("route", &route.route, |v, dest| {
        v.nested("destination", &dest.destination);
        if let Some(headers) = &dest.headers {
            v.at("headers", |v| check_headers(headers, v));
        }
        check_weight(dest.weight, v);
    });
    check_total_weight(route.route.iter().map(|d| d.weight), v);
    check_millis("timeout", route.timeout, v);
    if let Some(delegate) = &route.delegate {
        v.at("delegate", |v| check_delegate(delegate, v));
    }
}

/// What a rule does with a request: exactly one of route, redirect, directResponse or (in a
/// VirtualService with hosts) delegate, and only the actions that go with it.
fn check_actions(route: &HttpRoute, scope: Scope<'_>, v: &mut Validator) {
    if route.delegate.is_some() && !scope.delegate {
        if route.redirect.is_some() {
            v.error_at(
                "redirect",
                "a rule that delegates cannot redirect: the delegate's rules handle its requests",
            );
        }
        if !route.route.is_empty() {
            v.error_at("route", "a rule that delegates cannot have a route: the delegate's rules handle its requests");
        }
        return;
    }
    if route.delegate.is_some() {
        v.error_at(
            "delegate",
            "a delegate VirtualService (one without hosts) cannot delegate further",
        );
    }
    let conflicts = |v: &mut Validator, action: &str, others: &[(&str, bool)]| {
        for (other, set) in others {
            if *set {
                v.error_at(action, format!("{action} cannot be combined with {other}: the request is answered by the {action}"));
            }
        }
    };
    if route.redirect.is_some() {
        conflicts(
            v,
            "redirect",
            &[
                ("route", !route.route.is_empty()),
                ("fault", route.fault.is_some()),
                ("rewrite", route.rewrite.is_some()),
                ("directResponse", route.direct_response.is_some()),
            ],
        );
    } else if route.direct_response.is_some() {
        conflicts(
            v,
            "directResponse",
            &[
                ("route", !route.route.is_empty()),
                ("fault", route.fault.is_some()),
                ("rewrite", route.rewrite.is_some()),
            ],
        );
    } else if route.route.is_empty() {
        v.error_at(
            "route",
            "a rule needs a route, a redirect or a directResponse",
        );
    }
    if route.mirror.is_some() && !route.mirrors.is_empty() {
        v.error_at(
            "mirrors",
            "mirror and mirrors cannot both be set; list every mirror under mirrors",
        );
    }
}

fn check_match(m: &HttpMatchRequest, scope: Scope<'_>, v: &mut Validator) {
    let claim_outside_gateway = |name: &str, v: &mut Validator| {
        if !scope.gateway_only && is_jwt_claim(name) {
            v.error(
                "routing on JWT claims only works at gateways: list the gateways in spec.gateways (without mesh)",
            );
        }
    };
    v.at("headers", |v| {
        for (name, condition) in &m.headers {
            v.at(name, |v| {
                check_match_header_name(name, v);
                claim_outside_gateway(name, v);
                check_string_match(condition, false, v);
            });
        }
    });
    v.at("withoutHeaders", |v| {
        for (name, condition) in &m.without_headers {
            v.at(name, |v| {
                check_match_header_name(name, v);
                claim_outside_gateway(name, v);
                if let WithoutHeaderMatch::Match(condition) = condition {
                    check_string_match(condition, false, v);
                }
            });
        }
    });
    // An empty path prefix is allowed (it matches every path); elsewhere the proxy refuses it.
    for (key, condition, empty_prefix_ok) in [
        ("uri", &m.uri, true),
        ("scheme", &m.scheme, false),
        ("method", &m.method, false),
        ("authority", &m.authority, false),
    ] {
        if let Some(condition) = condition {
            v.at(key, |v| check_string_match(condition, empty_prefix_ok, v));
        }
    }
    v.at("queryParams", |v| {
        for (name, condition) in &m.query_params {
            v.at(name, |v| check_string_match(condition, false, v));
        }
    });
    check_match_port(m.port, v);
    v.at("sourceLabels", |v| validate_labels(&m.source_labels, v));
    v.each("gateways", &m.gateways, |v, name| {
        check_gateway_name(name, v)
    });
    check_source_namespace(&m.source_namespace, v);
}

/// The value checks a [`StringMatch`] needs beyond compiling its regex.
pub(super) fn check_string_match(
    condition: &StringMatch,
    empty_prefix_ok: bool,
    v: &mut Validator,
) {
    match condition {
        StringMatch::Prefix(prefix) if prefix.is_empty() && !empty_prefix_ok => {
            v.error_at(
                "prefix",
                "cannot be empty; to accept any value, use an empty condition ({})",
            );
        }
        StringMatch::Regex(regex) => v.at("regex", |v| check_regex_text(regex.as_str(), v)),
        _ => {}
    }
}

fn check_regex_text(pattern: &str, v: &mut Validator) {
    if pattern.is_empty() {
        v.error("a regex cannot be empty");
    } else if pattern.len() > MAX_REGEX_LENGTH {
        v.error(format!(
            "a regex can be at most {MAX_REGEX_LENGTH} characters long (this one has {})",
            pattern.len()
        ));
    }
}

fn check_redirect(redirect: &HttpRedirect, matches: &[HttpMatchRequest], v: &mut Validator) {
    v.at_most_one(&[
        ("uri", given(&redirect.uri)),
        ("prefixRewrite", given(&redirect.prefix_rewrite)),
    ]);
    v.at_most_one(&[
        ("port", redirect.port.is_some()),
        ("derivePort", redirect.derive_port.is_some()),
    ]);
    if given(&redirect.prefix_rewrite) {
        let not_prefix = matches.iter().position(|m| {
            m.uri
                .as_ref()
                .is_some_and(|uri| !matches!(uri, StringMatch::Prefix(_)))
        });
        if let Some(index) = not_prefix {
            v.error_at(
                "prefixRewrite",
                format!("prefixRewrite needs every uri match of the rule to be a prefix match; match[{index}].uri is not"),
            );
        }
    }
    let changes_something = given(&redirect.uri)
        || given(&redirect.prefix_rewrite)
        || given(&redirect.authority)
        || given(&redirect.scheme)
        || redirect.port.is_some()
        || redirect.derive_port.is_some();
    if !changes_something {
        v.error("a redirect must set at least one of uri, prefixRewrite, authority, scheme, port or derivePort");
    }
    if let Some(code) = redirect
        .redirect_code
        .filter(|c| *c != 0 && !(300..=399).contains(c))
    {
        v.error_at(
            "redirectCode",
            format!("{code} is not a redirect status: use a 3xx code such as 301 or 302"),
        );
    }
    if let Some(scheme) = redirect
        .scheme
        .as_deref()
        .filter(|s| !s.is_empty() && !matches!(*s, "http" | "https"))
    {
        v.error_at(
            "scheme",
            format!("the scheme must be http or https (got {scheme:?})"),
        );
    }
    if let Some(port) = redirect.port.filter(|p| *p > 65535) {
        v.error_at(
            "port",
            format!("port must be between 1 and 65535 (got {port})"),
        );
    }
}

fn check_http_status(key: &str, status: i64, v: &mut Validator) {
    if !(200..=599).contains(&status) {
        v.error_at(
            key,
            format!("must be an HTTP status from 200 to 599 (got {status})"),
        );
    }
}

fn check_direct_response(response: &HttpDirectResponse, v: &mut Validator) {
    check_http_status("status", response.status.into(), v);
    let size = match &response.body {
        Some(HttpBody::String(text)) => Some(text.len()),
        Some(HttpBody::Bytes(encoded)) => match base64_decoded_len(encoded) {
            Some(size) => Some(size),
            None => {
                v.at("body", |v| v.error_at("bytes", "is not valid base64"));
                None
            }
        },
        Some(HttpBody::Empty) | None => None,
    };
    match size {
        Some(size) if size > BODY_MAX_BYTES => v.error_at(
            "body",
            format!("the body is {size} bytes; direct responses must be at most 1 MiB (serve large content from a backend)"),
        ),
        Some(size) if size > BODY_WARN_BYTES => v.warn_at(
            "body",
            format!("the body is {size} bytes; direct responses over 100 KiB slow down configuration updates"),
        ),
        _ => {}
    }
}

/// The number of bytes standard or URL-safe base64 text (padding optional) decodes to, or
/// `None` when it is not base64.
fn base64_decoded_len(text: &str) -> Option<usize> {
    let body = text.trim_end_matches('=');
    let padding = text.len() - body.len();
    let alphabet = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_');
    if padding > 2
        || !body.bytes().all(alphabet)
        || body.len() % 4 == 1
        || (padding > 0 && !text.len().is_multiple_of(4))
    {
        return None;
    }
    Some(body.len() * 3 / 4)
}

fn check_retries(retries: &HttpRetry, v: &mut Validator) {
    let attempts = retries.attempts.unwrap_or(0);
    if attempts < 0 {
        v.error_at("attempts", format!("cannot be negative (got {attempts})"));
    }
    if attempts == 0 {
        let set: Vec<&str> = [
            ("perTryTimeout", retries.per_try_timeout.is_some()),
            ("retryOn", given(&retries.retry_on)),
            (
                "retryRemoteLocalities",
                retries.retry_remote_localities.is_some(),
            ),
        ]
        .iter()
        .filter(|(_, on)| *on)
        .map(|(key, _)| *key)
        .collect();
        if !set.is_empty() {
            v.error(format!(
                "attempts is 0 (or unset), which turns retries off, yet {} is set; set attempts or remove the retry settings",
                set.join(" and ")
            ));
        }
    }
    check_millis("perTryTimeout", retries.per_try_timeout, v);
    if let Some(retry_on) = retries.retry_on.as_deref().filter(|s| !s.is_empty()) {
        for condition in retry_on.split(',') {
            let status = condition
                .parse::<u16>()
                .ok()
                .filter(|code| KNOWN_STATUS_CODES.contains(code));
            if status.is_none() && !RETRY_ON_POLICIES.contains(&condition) {
                v.error_at(
                    "retryOn",
                    format!(
                        "{condition:?} is not a retry condition: use names such as 5xx, gateway-error, connect-failure, \
                         retriable-4xx, reset or unavailable, or HTTP status codes, separated by commas without spaces"
                    ),
                );
            }
        }
    }
    check_millis("backoff", retries.backoff, v);
}

fn check_rewrite(rewrite: &HttpRewrite, v: &mut Validator) {
    v.at_most_one(&[
        ("uri", given(&rewrite.uri)),
        ("uriRegexRewrite", rewrite.uri_regex_rewrite.is_some()),
    ]);
    if !given(&rewrite.uri) && rewrite.uri_regex_rewrite.is_none() && !given(&rewrite.authority) {
        v.error("a rewrite must set uri, uriRegexRewrite or authority");
    }
    if let Some(regex_rewrite) = &rewrite.uri_regex_rewrite {
        v.at("uriRegexRewrite", |v| {
            match regex_rewrite
                .r#match
                .as_ref()
                .filter(|m| !m.as_str().is_empty())
            {
                Some(pattern) => v.at("match", |v| check_regex_text(pattern.as_str(), v)),
                None => v.error_at("match", "a regex rewrite needs both match and rewrite"),
            }
            if !given(&regex_rewrite.rewrite) {
                v.error_at("rewrite", "a regex rewrite needs both match and rewrite");
            }
        });
    }
}

fn check_fault(fault: &HttpFaultInjection, v: &mut Validator) {
    if fault.delay.is_none() && fault.abort.is_none() {
        v.error("a fault needs a delay, an abort, or both");
    }
    if let Some(abort) = &fault.abort {
        v.at("abort", |v| check_abort(abort, v));
    }
    if let Some(delay) = &fault.delay {
        v.at("delay", |v| check_delay(delay, v));
    }
}

/// A fault's share of requests: 0, or at least the smallest fraction the proxy can express.
fn check_fault_percentage(percentage: &Option<Percent>, v: &mut Validator) {
    let value = percentage.as_ref().map_or(0.0, Percent::get);
    if value > 0.0 && value < 0.0001 {
        v.at("percentage", |v| {
            v.error_at(
                "value",
                format!("must be 0 or at least 0.0001 (got {value})"),
            )
        });
    }
}

fn check_abort(abort: &HttpFaultInjectionAbort, v: &mut Validator) {
    check_fault_percentage(&abort.percentage, v);
    v.at_most_one(&[
        ("httpStatus", abort.http_status.is_some()),
        ("grpcStatus", abort.grpc_status.is_some()),
        ("http2Error", abort.http2_error.is_some()),
    ]);
    if let Some(status) = abort.http_status {
        check_http_status("httpStatus", status.into(), v);
    }
    if let Some(status) = &abort.grpc_status
        && !GRPC_STATUSES.contains(&status.as_str())
    {
        v.error_at(
            "grpcStatus",
            format!("{status:?} is not a gRPC status name; use one such as NOT_FOUND, UNAVAILABLE or INTERNAL"),
        );
    }
    if abort.http2_error.is_some() {
        v.error_at(
            "http2Error",
            "aborting with an HTTP/2 error is not supported yet; use httpStatus or grpcStatus",
        );
    }
    if abort.http_status.is_none() && abort.grpc_status.is_none() && abort.http2_error.is_none() {
        v.warn("the abort sets no httpStatus, grpcStatus or http2Error, so nothing is aborted");
    }
}

fn check_delay(delay: &HttpFaultInjectionDelay, v: &mut Validator) {
    check_fault_percentage(&delay.percentage, v);
    v.at_most_one(&[
        ("fixedDelay", delay.fixed_delay.is_some()),
        ("exponentialDelay", delay.exponential_delay.is_some()),
    ]);
    check_millis("fixedDelay", delay.fixed_delay, v);
    if delay.exponential_delay.is_some() {
        check_millis("exponentialDelay", delay.exponential_delay, v);
        v.error_at(
            "exponentialDelay",
            "exponential delays are not supported yet; use fixedDelay",
        );
    }
    if delay.fixed_delay.is_none() && delay.exponential_delay.is_none() {
        v.warn("the delay sets no fixedDelay, so nothing is delayed");
    }
    if let Some(percent) = delay.percent {
        if !(0..=100).contains(&percent) {
            v.error_at(
                "percent",
                format!("must be between 0 and 100 (got {percent})"),
            );
        }
        v.warn_at("percent", "percent is deprecated; use percentage");
    }
}

fn check_cors(cors: &CorsPolicy, v: &mut Validator) {
    if !cors.allow_origin.is_empty() {
        v.warn_at("allowOrigin", "allowOrigin is deprecated; use allowOrigins");
    }
    v.each("allowOrigins", &cors.allow_origins, |v, origin| {
        if origin.text().is_none_or(str::is_empty) {
            v.error("an allowed origin needs a non-empty exact, prefix or regex");
        } else {
            check_string_match(origin, false, v);
        }
    });
    v.each("allowMethods", &cors.allow_methods, |v, method| {
        if !CORS_METHODS.contains(&method.as_str()) {
            let upper = method.to_ascii_uppercase();
            let hint = if CORS_METHODS.contains(&upper.as_str()) {
                format!("methods are case-sensitive: write {upper}")
            } else {
                format!("use one of {}", CORS_METHODS.join(", "))
            };
            v.error(format!("{method:?} is not an HTTP method; {hint}"));
        }
    });
    for (key, names) in [
        ("allowHeaders", &cors.allow_headers),
        ("exposeHeaders", &cors.expose_headers),
    ] {
        v.each(key, names, |v, name| {
            if let Err(problem) = check_cors_header_name(name) {
                v.error(problem);
            }
        });
    }
    if let Some(max_age) = cors.max_age {
        if max_age.as_std() < MILLISECOND {
            check_millis("maxAge", Some(max_age), v);
        } else if max_age.as_std().subsec_nanos() != 0 {
            v.error_at(
                "maxAge",
                format!("must be a whole number of seconds (got {max_age})"),
            );
        }
    }
}

fn check_delegate(delegate: &Delegate, v: &mut Validator) {
    match delegate.name.as_deref().filter(|n| !n.is_empty()) {
        None => v.error_at("name", "name the VirtualService to delegate to"),
        Some(name) => {
            if let Err(problem) = check_resource_name(name) {
                v.error_at("name", problem);
            }
        }
    }
    if let Some(namespace) = delegate.namespace.as_deref().filter(|n| !n.is_empty())
        && !is_dns1123_label(namespace)
    {
        v.error_at(
            "namespace",
            format!("{namespace:?} is not a valid namespace name"),
        );
    }
}
