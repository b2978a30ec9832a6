//! CORS (a route's [`CorsPolicy`]), as Envoy's CORS filter does it.
//!
//! A request with an `Origin` is a cross-origin request. A preflight (`OPTIONS` with `Origin`
//! and `Access-Control-Request-Method`) from an allowed origin is answered here, 200 with the
//! policy's `Access-Control-Allow-*` and `Max-Age` headers, and never goes upstream; one from
//! another origin goes upstream as any request (`FORWARD`), or is answered 200 without CORS
//! headers (`IGNORE`). Any other cross-origin request goes on, and its response, when its
//! origin is allowed, gets `Access-Control-Allow-Origin` (the request's origin),
//! `-Allow-Credentials` and `-Expose-Headers`.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode};
use trellis_proxy_config::{CorsPolicy, StringMatch};

use crate::body::{self, Body};

/// What CORS does with a request.
pub(super) enum Cors {
    /// Answered here (a preflight).
    Answer(Response<Body>),
    /// Goes on; its response is marked for this allowed origin.
    Allowed(HeaderValue),
    /// Goes on untouched (no origin, or one not allowed).
    Untouched,
}

/// Looks at a request under `policy`.
pub(super) fn check(policy: &CorsPolicy, request: &http::request::Parts) -> Cors {
    let Some(origin) = request.headers.get(header::ORIGIN) else {
        return Cors::Untouched;
    };
    let allowed = origin.to_str().is_ok_and(|origin| allows(policy, origin));
    let preflight = request.method == Method::OPTIONS
        && request
            .headers
            .get(header::ACCESS_CONTROL_REQUEST_METHOD)
            .is_some_and(|m| !m.is_empty());
    match (preflight, allowed) {
        (true, true) => Cors::Answer(preflight_answer(policy, origin)),
        (true, false) if !policy.forward_unmatched_preflights => {
            Cors::Answer(Response::new(body::empty()))
        }
        (false, true) => Cors::Allowed(origin.clone()),
        _ => Cors::Untouched,
    }
}

fn allows(policy: &CorsPolicy, origin: &str) -> bool {
    policy.allow_origins.iter().any(|allowed| match allowed {
        StringMatch::Exact(exact) if exact == "*" => true,
        other => other.matches(origin),
    })
}

fn preflight_answer(policy: &CorsPolicy, origin: &HeaderValue) -> Response<Body> {
    let mut response = Response::new(body::empty());
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    set_list(
        headers,
        header::ACCESS_CONTROL_ALLOW_METHODS,
        &policy.allow_methods,
    );
    set_list(
        headers,
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        &policy.allow_headers,
    );
    if let Some(max_age) = policy.max_age {
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from(max_age.as_std().as_secs()),
        );
    }
    if policy.allow_credentials {
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    response
}

/// Marks the response to an allowed cross-origin request.
pub(super) fn mark(policy: &CorsPolicy, origin: HeaderValue, headers: &mut HeaderMap) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    if policy.allow_credentials {
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    set_list(
        headers,
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        &policy.expose_headers,
    );
}

/// Sets `name` to `values` joined with commas, unless there are none.
fn set_list(headers: &mut HeaderMap, name: HeaderName, values: &[String]) {
    if values.is_empty() {
        return;
    }
    if let Ok(value) = HeaderValue::from_str(&values.join(",")) {
        headers.insert(name, value);
    }
}
