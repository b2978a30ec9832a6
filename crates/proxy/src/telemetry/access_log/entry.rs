//! One access log entry and its two renderings: Istio's default text line (Envoy's default
//! format, extended) and the same fields as a JSON object under Istio's key names.
//!
//! The entry borrows from the request's state; rendering happens on the request path into one
//! `String`, which is all that crosses to the writer thread.

use std::fmt::{self, Display, Write as _};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use serde::{Serialize, Serializer};

use super::time::Rfc3339Millis;
use crate::telemetry::ResponseFlags;

/// What an HTTP request contributes to its entry; `None` in a TCP connection's entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequestInfo<'a> {
    pub method: &'a str,
    /// `x-envoy-original-path` if the path was rewritten, else the request's path and query.
    pub path: &'a str,
    pub version: http::Version,
    pub authority: Option<&'a str>,
    pub x_forwarded_for: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub request_id: Option<&'a str>,
}

/// One finished request (or TCP connection). Missing values print as `-` (text) or `null`
/// (JSON). Build it with [`AccessLogEntry::new`] and set what is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogEntry<'a> {
    pub start_time: SystemTime,
    pub duration: Duration,
    /// `None` for a TCP connection, whose request fields print as `-`.
    pub request: Option<HttpRequestInfo<'a>>,
    /// 0 when no response was sent (and always for TCP), as Envoy prints it.
    pub response_code: u16,
    pub response_flags: ResponseFlags,
    /// Envoy's `%RESPONSE_CODE_DETAILS%`: `via_upstream`, `route_not_found`, ...
    pub response_code_details: Option<&'a str>,
    pub connection_termination_details: Option<&'a str>,
    pub upstream_transport_failure_reason: Option<&'a str>,
    /// Body bytes from the client (all bytes for TCP).
    pub bytes_received: u64,
    /// Body bytes to the client (all bytes for TCP).
    pub bytes_sent: u64,
    /// From sending the request upstream to its response headers (`x-envoy-upstream-service-time`).
    pub upstream_service_time: Option<Duration>,
    pub upstream_host: Option<SocketAddr>,
    pub upstream_cluster: Option<&'a str>,
    pub upstream_local_address: Option<SocketAddr>,
    pub downstream_local_address: Option<SocketAddr>,
    pub downstream_remote_address: Option<SocketAddr>,
    /// The TLS SNI, when the connection had one.
    pub requested_server_name: Option<&'a str>,
    pub route_name: Option<&'a str>,
}

impl<'a> AccessLogEntry<'a> {
    /// An entry with nothing known but its start.
    pub fn new(start_time: SystemTime) -> Self {
        Self {
            start_time,
            duration: Duration::ZERO,
            request: None,
            response_code: 0,
            response_flags: ResponseFlags::NONE,
            response_code_details: None,
            connection_termination_details: None,
            upstream_transport_failure_reason: None,
            bytes_received: 0,
            bytes_sent: 0,
            upstream_service_time: None,
            upstream_host: None,
            upstream_cluster: None,
            upstream_local_address: None,
            downstream_local_address: None,
            downstream_remote_address: None,
            requested_server_name: None,
            route_name: None,
        }
    }

    fn request_field(&self, field: fn(&HttpRequestInfo<'a>) -> Option<&'a str>) -> Option<&'a str> {
        self.request
            .as_ref()
            .and_then(field)
            .filter(|value| !value.is_empty())
    }

    fn protocol(&self) -> Option<&'static str> {
        self.request.as_ref().map(|request| match request.version {
            http::Version::HTTP_09 => "HTTP/0.9",
            http::Version::HTTP_10 => "HTTP/1.0",
            http::Version::HTTP_2 => "HTTP/2",
            http::Version::HTTP_3 => "HTTP/3",
            _ => "HTTP/1.1",
        })
    }
}

/// A value or `-`.
struct Or<T>(Option<T>);

impl<T: Display> Display for Or<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(value) => value.fmt(f),
            None => f.write_str("-"),
        }
    }
}

/// Empty values count as missing, as in Envoy.
fn present(value: Option<&str>) -> Option<&str> {
    value.filter(|v| !v.is_empty())
}

/// Appends Istio's default text line, newline included.
pub(super) fn write_text(out: &mut String, e: &AccessLogEntry<'_>) -> fmt::Result {
    writeln!(
        out,
        "[{}] \"{} {} {}\" {} {} {} {} \"{}\" {} {} {} {} \"{}\" \"{}\" \"{}\" \"{}\" \"{}\" {} {} {} {} {} {}",
        Rfc3339Millis(e.start_time),
        Or(e.request_field(|r| Some(r.method))),
        Or(e.request_field(|r| Some(r.path))),
        Or(e.protocol()),
        e.response_code,
        e.response_flags,
        Or(present(e.response_code_details)),
        Or(present(e.connection_termination_details)),
        Or(present(e.upstream_transport_failure_reason)),
        e.bytes_received,
        e.bytes_sent,
        e.duration.as_millis(),
        Or(e.upstream_service_time.map(|t| t.as_millis())),
        Or(e.request_field(|r| r.x_forwarded_for)),
        Or(e.request_field(|r| r.user_agent)),
        Or(e.request_field(|r| r.request_id)),
        Or(e.request_field(|r| r.authority)),
        Or(e.upstream_host),
        Or(present(e.upstream_cluster)),
        Or(e.upstream_local_address),
        Or(e.downstream_local_address),
        Or(e.downstream_remote_address),
        Or(present(e.requested_server_name)),
        Or(present(e.route_name)),
    )
}

/// Serializes a `Display` value as a JSON string.
struct AsString<T>(T);

impl<T: Display> Serialize for AsString<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

/// The JSON object, keys in Envoy's (alphabetical) order; numbers where Envoy prints numbers.
#[derive(Serialize)]
struct JsonEntry<'a> {
    authority: Option<&'a str>,
    bytes_received: u64,
    bytes_sent: u64,
    connection_termination_details: Option<&'a str>,
    downstream_local_address: Option<SocketAddr>,
    downstream_remote_address: Option<SocketAddr>,
    duration: u128,
    method: Option<&'a str>,
    path: Option<&'a str>,
    protocol: Option<&'static str>,
    request_id: Option<&'a str>,
    requested_server_name: Option<&'a str>,
    response_code: u16,
    response_code_details: Option<&'a str>,
    response_flags: AsString<ResponseFlags>,
    route_name: Option<&'a str>,
    start_time: AsString<Rfc3339Millis>,
    upstream_cluster: Option<&'a str>,
    upstream_host: Option<SocketAddr>,
    upstream_local_address: Option<SocketAddr>,
    /// A header value in Envoy, hence a string.
    upstream_service_time: Option<AsString<u128>>,
    upstream_transport_failure_reason: Option<&'a str>,
    user_agent: Option<&'a str>,
    x_forwarded_for: Option<&'a str>,
}

/// The JSON line, newline included.
pub(super) fn to_json(e: &AccessLogEntry<'_>) -> serde_json::Result<String> {
    let entry = JsonEntry {
        authority: e.request_field(|r| r.authority),
        bytes_received: e.bytes_received,
        bytes_sent: e.bytes_sent,
        connection_termination_details: present(e.connection_termination_details),
        downstream_local_address: e.downstream_local_address,
        downstream_remote_address: e.downstream_remote_address,
        duration: e.duration.as_millis(),
        method: e.request_field(|r| Some(r.method)),
        path: e.request_field(|r| Some(r.path)),
        protocol: e.protocol(),
        request_id: e.request_field(|r| r.request_id),
        requested_server_name: present(e.requested_server_name),
        response_code: e.response_code,
        response_code_details: present(e.response_code_details),
        response_flags: AsString(e.response_flags),
        route_name: present(e.route_name),
        start_time: AsString(Rfc3339Millis(e.start_time)),
        upstream_cluster: present(e.upstream_cluster),
        upstream_host: e.upstream_host,
        upstream_local_address: e.upstream_local_address,
        upstream_service_time: e.upstream_service_time.map(|t| AsString(t.as_millis())),
        upstream_transport_failure_reason: present(e.upstream_transport_failure_reason),
        user_agent: e.request_field(|r| r.user_agent),
        x_forwarded_for: e.request_field(|r| r.x_forwarded_for),
    };
    let mut line = serde_json::to_string(&entry)?;
    line.push('\n');
    Ok(line)
}
