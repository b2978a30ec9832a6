//! The HTTP connection manager: every request on an HTTP listener goes through [`handle`],
//! which finds its route and carries out the route's action.
//!
//! Request lifecycle: load the snapshot in force → find the virtual host (asking the control
//! plane for it when the table is on-demand and none serves the authority) and route → local
//! rate limit → CORS (answer a preflight) → inject the route's faults → direct response,
//! redirect, or forward (pick a weighted cluster, change headers, pick an endpoint, send, retry
//! within the policy and timeout) → change response headers → stream the response body back,
//! recording telemetry when it ends.

mod cors;
mod fault;
mod forward;
pub mod headers;
pub mod local;
mod mirror;
mod outcome;
pub mod tracked;
mod upgrade;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use trellis_proxy_config::Action;

pub use outcome::Outcome;

use self::cors::Cors;
use crate::Proxy;
use crate::body::{Body, ClientBody};
use crate::state::Snapshot;
use crate::telemetry::ResponseFlags;

/// What a request knows about the connection it came on.
#[derive(Debug, Clone)]
pub struct Downstream {
    /// The proxy the connection belongs to (a request clones the connection's handle, not the
    /// proxy's, whose reference count every worker would share).
    pub proxy: Arc<Proxy>,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub route_table: Arc<str>,
    /// The client's address as an `x-forwarded-for` entry.
    pub peer_value: http::HeaderValue,
    /// Requests in progress on the connection, for its idle timeout.
    pub activity: Arc<crate::listener::Activity>,
    /// The client's SPIFFE id, when it came over the mesh's mutual TLS.
    pub peer_identity: Option<Arc<str>>,
    /// On an inbound listener: the client as the destination reports it.
    pub inbound: Option<Arc<crate::telemetry::InboundPeer>>,
}

/// Handles one request.
pub fn handle(
    downstream: Arc<Downstream>,
    request: Request<Incoming>,
) -> impl Future<Output = Result<Response<Body>, Infallible>> + Send {
    // Split before the future is made: it then holds the head once, not the request as well.
    let (parts, body) = request.into_parts();
    async move { handle_parts(&downstream, parts, ClientBody::Http2(body)).await }
}

/// Handles one request, given as its head and body.
pub(crate) async fn handle_parts(
    downstream: &Arc<Downstream>,
    mut parts: http::request::Parts,
    body: ClientBody,
) -> Result<Response<Body>, Infallible> {
    let started = crate::clock::now();
    let proxy = &downstream.proxy;
    let first = proxy.config.load();
    let logged = proxy.access_log.is_enabled();
    // Boxed: it moves into the response body's record of the request, a pointer's worth.
    let mut outcome = Box::new(Outcome::new(
        &parts,
        downstream,
        first.clone(),
        started,
        logged,
    ));
    let (table, port) = (&*downstream.route_table, downstream.local.port());
    let mut snapshot = &first;
    let mut matched = find_route(snapshot, table, &parts, outcome.authority.as_str(), port);
    // A miss in an on-demand table asks the control plane for the virtual host, and goes on
    // with the configuration that has it. The cold path, boxed: inline, its future would make
    // every request's larger.
    let waited;
    if matched.is_none() && snapshot.routers.get(table).is_some_and(|r| r.on_demand) {
        let authority = outcome.authority.as_str();
        waited = Box::pin(proxy.on_demand.wait(&proxy.config, table, authority)).await;
        if let Some(newer) = &waited {
            outcome.snapshot = newer.clone();
            snapshot = newer;
            matched = find_route(snapshot, table, &parts, outcome.authority.as_str(), port);
        }
    }
    let Some(matched) = matched else {
        let reply = outcome.fail(
            ResponseFlags::NO_ROUTE,
            StatusCode::NOT_FOUND,
            "route not found",
        );
        return Ok(finish(downstream, outcome, reply, None));
    };
    // Only the access log names the route.
    if outcome.logged {
        outcome.route = Some(matched.route.clone());
    }
    if let Some(limit) = &matched.route.rate_limit
        && let Some(bucket) = snapshot.buckets.get(&limit.bucket)
        && !bucket.take()
    {
        let refused = outcome.fail(
            ResponseFlags::RATE_LIMITED,
            StatusCode::TOO_MANY_REQUESTS,
            "local_rate_limited",
        );
        return Ok(finish(downstream, outcome, refused, None));
    }
    // CORS next, as in Istio's filter chain: a preflight never meets a fault, and every
    // answer to an allowed origin is marked, the proxy's own included.
    let allowed = match matched.route.cors.as_ref() {
        None => None,
        Some(policy) => match cors::check(policy, &parts) {
            Cors::Answer(answer) => return Ok(finish(downstream, outcome, answer, None)),
            Cors::Allowed(origin) => Some((policy, origin)),
            Cors::Untouched => None,
        },
    };
    if let Some(fault) = &matched.route.fault {
        // Boxed, as the rare path it is: inline, its future would make every request's larger.
        if let Some(aborted) = Box::pin(fault::inject(fault, &mut outcome)).await {
            return Ok(finish(downstream, outcome, aborted, allowed));
        }
    }
    let mut response = match &matched.route.action {
        Action::DirectResponse(direct) => local::direct(direct.status, direct.body.as_deref()),
        Action::Redirect(redirect) => {
            let location = headers::redirect_location(
                redirect,
                &parts,
                outcome.authority.as_str(),
                matched.prefix_len,
            );
            local::redirect(redirect.status, &location)
        }
        Action::Forward(forward) => match forward::pick_destination(&forward.destinations) {
            None => outcome.fail(
                ResponseFlags::NO_CLUSTER_FOUND,
                StatusCode::SERVICE_UNAVAILABLE,
                "no cluster",
            ),
            Some(destination) => {
                let mut response = forward::forward(
                    snapshot,
                    downstream,
                    &matched,
                    forward,
                    destination,
                    &mut parts,
                    body,
                    &mut outcome,
                )
                .await;
                // The destination's changes after the route's, on responses as on requests:
                // the more specific one wins a conflict.
                headers::apply(&matched.route.headers.response, response.headers_mut());
                headers::apply(&destination.headers.response, response.headers_mut());
                crate::h1::keep_map(std::mem::take(&mut parts.headers));
                return Ok(finish(downstream, outcome, response, allowed));
            }
        },
    };
    headers::apply(&matched.route.headers.response, response.headers_mut());
    Ok(finish(downstream, outcome, response, allowed))
}

/// The route of `table` in `snapshot` for the request.
fn find_route<'s>(
    snapshot: &'s Snapshot,
    table: &str,
    parts: &http::request::Parts,
    authority: &str,
    port: u16,
) -> Option<crate::router::Matched<'s>> {
    snapshot.routers.get(table)?.find(parts, authority, port)
}

/// Sends a response on its way, recording the request (metrics, access log) when the response
/// body ends; marks it for the allowed origin of a cross-origin request.
fn finish(
    downstream: &Arc<Downstream>,
    mut outcome: Box<Outcome>,
    mut response: Response<Body>,
    allowed: Option<(&trellis_proxy_config::CorsPolicy, http::HeaderValue)>,
) -> Response<Body> {
    if let Some((policy, origin)) = allowed {
        cors::mark(policy, origin, response.headers_mut());
    }
    outcome.status = response.status().as_u16();
    if outcome.grpc {
        outcome.grpc_status = tracked::grpc_status(response.headers());
    }
    let downstream = downstream.clone();
    response.map(|body| {
        let tracked = tracked::Tracked::new(body, move |end| downstream.proxy.record(outcome, end));
        http_body_util::BodyExt::boxed(tracked)
    })
}
