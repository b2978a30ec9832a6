//! What the proxy remembers about a request for its access log line and metrics.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::HeaderValue;

use super::Downstream;
use super::local::is_grpc;
use crate::state::{ClusterId, Snapshot};
use crate::telemetry::ResponseFlags;
use crate::upstream::ClusterRuntime;

/// The authority a request was sent to: the URI's (HTTP/2's `:authority`, an absolute-form
/// HTTP/1 target) or else the `Host` header, shared with the request rather than copied.
#[derive(Debug, Clone)]
pub enum Authority {
    Uri(http::uri::Authority),
    /// A `Host` header that is valid text.
    Host(HeaderValue),
    None,
}

impl Authority {
    pub fn as_str(&self) -> &str {
        match self {
            Self::Uri(authority) => authority.as_str(),
            Self::Host(host) => host.to_str().unwrap_or_default(),
            Self::None => "",
        }
    }
}

/// One request's story, filled in as it goes.
#[derive(Debug)]
pub struct Outcome {
    pub started: Instant,
    pub method: http::Method,
    /// The path and query as the client sent them (shared with the request, not copied).
    pub path: http::uri::PathAndQuery,
    pub version: http::Version,
    pub authority: Authority,
    /// Whether the request's access log line is written: the fields only it shows are kept
    /// then only.
    pub logged: bool,
    pub request_id: Option<HeaderValue>,
    pub user_agent: Option<HeaderValue>,
    pub forwarded_for: Option<HeaderValue>,
    pub grpc: bool,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub route: Option<Arc<trellis_proxy_config::Route>>,
    /// The snapshot the request was served with: it names the request's cluster.
    pub snapshot: Arc<Snapshot>,
    pub cluster: Option<ClusterId>,
    /// The request's place under its cluster's request limit, given back when it is recorded.
    pub request_slot: Option<crate::upstream::Slot>,
    pub upstream: Option<SocketAddr>,
    /// The endpoint's place in its cluster.
    pub endpoint: Option<usize>,
    /// On an inbound listener: the client as the destination reports it.
    pub inbound: Option<Arc<crate::telemetry::InboundPeer>>,
    pub status: u16,
    pub flags: ResponseFlags,
    pub bytes_received: u64,
    pub upstream_service_time: Option<std::time::Duration>,
    pub grpc_status: Option<u32>,
    /// Keeps the connection from counting as idle until the request is recorded.
    pub _in_progress: crate::listener::RequestGuard,
}

impl Outcome {
    /// Notes why the request failed and makes the proxy's reply for it.
    pub fn fail(
        &mut self,
        flag: ResponseFlags,
        status: http::StatusCode,
        message: &'static str,
    ) -> http::Response<crate::body::Body> {
        self.flags.insert(flag);
        super::local::reply(status, message, self.grpc)
    }

    /// The cluster the request went to, if it got that far.
    pub fn cluster(&self) -> Option<&ClusterRuntime> {
        Some(self.snapshot.cluster_at(self.cluster?))
    }

    /// Envoy's `%RESPONSE_CODE_DETAILS%` for how the request ended.
    pub fn details(&self) -> &'static str {
        let flags = self.flags;
        if flags.contains(ResponseFlags::NO_ROUTE) {
            "route_not_found"
        } else if flags.contains(ResponseFlags::NO_CLUSTER_FOUND) {
            "cluster_not_found"
        } else if flags.contains(ResponseFlags::NO_HEALTHY_UPSTREAM) {
            "no_healthy_upstream"
        } else if flags.contains(ResponseFlags::UPSTREAM_REQUEST_TIMEOUT) {
            "response_timeout"
        } else if flags.contains(ResponseFlags::UPSTREAM_CONNECTION_FAILURE) {
            "upstream_reset_before_response_started{connection_failure}"
        } else if flags.contains(ResponseFlags::UPSTREAM_CONNECTION_TERMINATION) {
            "upstream_reset_before_response_started{connection_termination}"
        } else if self.upstream_service_time.is_some() {
            "via_upstream"
        } else {
            "direct_response"
        }
    }

    /// The story of the request whose head is `request` so far. The headers only the access
    /// log shows are kept when `logged`.
    pub fn new(
        request: &http::request::Parts,
        downstream: &Downstream,
        snapshot: Arc<Snapshot>,
        started: Instant,
        logged: bool,
    ) -> Self {
        let headers = &request.headers;
        let authority = match request.uri.authority() {
            Some(authority) => Authority::Uri(authority.clone()),
            None => headers
                .get(http::header::HOST)
                .filter(|h| h.to_str().is_ok())
                .map_or(Authority::None, |h| Authority::Host(h.clone())),
        };
        Self {
            started,
            method: request.method.clone(),
            path: request
                .uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/")),
            version: request.version,
            authority,
            logged,
            request_id: logged
                .then(|| headers.get(super::headers::REQUEST_ID).cloned())
                .flatten(),
            user_agent: logged
                .then(|| headers.get(http::header::USER_AGENT).cloned())
                .flatten(),
            forwarded_for: logged
                .then(|| headers.get(super::headers::FORWARDED_FOR).cloned())
                .flatten(),
            grpc: is_grpc(headers),
            peer: downstream.peer,
            local: downstream.local,
            route: None,
            snapshot,
            cluster: None,
            request_slot: None,
            upstream: None,
            endpoint: None,
            inbound: downstream.inbound.clone(),
            status: 0,
            flags: ResponseFlags::NONE,
            bytes_received: 0,
            upstream_service_time: None,
            grpc_status: None,
            _in_progress: downstream.activity.begin(),
        }
    }
}
