//! Replies the proxy makes itself (no route, no healthy endpoint, timeouts, direct responses,
//! redirects). gRPC clients get them the way gRPC expects: HTTP 200 with the status in
//! `grpc-status`, mapped from the HTTP status as gRPC's spec does.

use http::{HeaderValue, Response, StatusCode, header};

use crate::body::{self, Body};

/// The reply when the upstream could not be reached, or failed before its response headers.
pub const UPSTREAM_FAILED: &str = "upstream connect error or disconnect/reset before headers";
/// The reply when a cluster's limit refused the request (Envoy's words).
pub const UPSTREAM_OVERFLOW: &str =
    "upstream connect error or disconnect/reset before headers. reset reason: overflow";

/// A plain-text reply, or its gRPC equivalent when the request was gRPC.
pub fn reply(status: StatusCode, message: &'static str, grpc: bool) -> Response<Body> {
    if grpc {
        return grpc_reply(grpc_code(status), message);
    }
    let mut response = Response::new(body::full(message));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

/// A gRPC reply with status `code`: HTTP 200, trailers only.
pub fn grpc_reply(code: u32, message: &'static str) -> Response<Body> {
    let mut response = Response::new(body::empty());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-status", HeaderValue::from(code));
    headers.insert("grpc-message", HeaderValue::from_static(message));
    response
}

/// A reply with a body from configuration.
pub fn direct(status: u16, text: Option<&str>) -> Response<Body> {
    let mut response = Response::new(match text {
        Some(text) => body::full(text.to_owned()),
        None => body::empty(),
    });
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if text.is_some() {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    }
    response
}

/// A redirect to `location`.
pub fn redirect(status: u16, location: &str) -> Response<Body> {
    let mut response = Response::new(body::empty());
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::MOVED_PERMANENTLY);
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// The gRPC status for an HTTP status (gRPC's "HTTP to gRPC status code mapping").
pub fn grpc_code(status: StatusCode) -> u32 {
    match status.as_u16() {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502..=504 => 14,
        _ => 2,
    }
}

/// The HTTP status for a gRPC status, for a client that does not speak gRPC (the mapping Envoy
/// and grpc-gateway use).
pub fn http_status(grpc_code: u32) -> StatusCode {
    match grpc_code {
        0 => StatusCode::OK,
        3 | 9 | 11 => StatusCode::BAD_REQUEST,
        4 => StatusCode::GATEWAY_TIMEOUT,
        5 => StatusCode::NOT_FOUND,
        6 | 10 => StatusCode::CONFLICT,
        7 => StatusCode::FORBIDDEN,
        8 => StatusCode::TOO_MANY_REQUESTS,
        12 => StatusCode::NOT_IMPLEMENTED,
        14 => StatusCode::SERVICE_UNAVAILABLE,
        16 => StatusCode::UNAUTHORIZED,
        // CANCELLED: the client closed the request, as nginx's 499 says.
        1 => StatusCode::from_u16(499).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Whether a request is gRPC (by its content type).
pub fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_clients_get_grpc_statuses() {
        let response = reply(StatusCode::SERVICE_UNAVAILABLE, "no healthy upstream", true);
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["grpc-status"], "14");
        let response = reply(StatusCode::NOT_FOUND, "route not found", false);
        assert_eq!(response.status(), 404);
    }
}
