//! The forward action: weighted cluster, header changes, endpoint, send, retries, timeouts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::uri::{Authority, PathAndQuery};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Limited};
use trellis_proxy_config::{Forward, RetryOn, RetryPolicy, WeightedCluster};

use super::{Downstream, Outcome, headers, local, mirror, upgrade};
use crate::body::{self, Body, ClientBody};
use crate::clock;
use crate::router::Matched;
use crate::state::Snapshot;
use crate::telemetry::ResponseFlags;
use crate::upstream::{ClusterRuntime, Outgoing, SendError, Slot, Stat, Version};

/// Request bodies up to this size are kept so the request can be retried; larger ones stream
/// through once.
const MAX_RETRY_BODY: usize = 64 * 1024;
/// How many endpoints already tried a retry steers away from.
const MAX_AVOIDED: usize = 8;
/// Backoff grows up to this multiple of the policy's base.
const MAX_BACKOFF_FACTOR: u32 = 10;

/// Forwards the request whose head is `parts` (changed here as it goes upstream) and body is
/// `body`. The head is borrowed, not moved, all the way to the connection: a request's future
/// is moved whole at each await, and every copy of the head would be in it.
#[allow(clippy::too_many_arguments)]
pub(super) async fn forward(
    snapshot: &Snapshot,
    downstream: &Downstream,
    matched: &Matched<'_>,
    forward: &Forward,
    destination: &WeightedCluster,
    parts: &mut http::request::Parts,
    body: ClientBody,
    outcome: &mut Outcome,
) -> Response<Body> {
    let Some((id, cluster)) = snapshot.cluster(&destination.cluster) else {
        return outcome.fail(
            ResponseFlags::NO_CLUSTER_FOUND,
            StatusCode::SERVICE_UNAVAILABLE,
            "cluster not found",
        );
    };
    outcome.cluster = Some(id);
    cluster.stats.bump(Stat::Requests);
    if let Some(limits) = &cluster.limits {
        // Held by the request's record, so until its response ends.
        match limits.request() {
            Ok(slot) => outcome.request_slot = Some(slot),
            Err(_) => return overflow(cluster, outcome),
        }
    }

    let upgrading =
        parts.version == http::Version::HTTP_11 && parts.headers.contains_key(header::UPGRADE);
    let upgrade_headers = upgrading.then(|| {
        (
            parts.headers.get(header::CONNECTION).cloned(),
            parts.headers.get(header::UPGRADE).cloned(),
        )
    });
    headers::strip_hop_by_hop(&mut parts.headers);
    headers::add_forwarding_headers(&mut parts.headers, &downstream.peer_value);
    if outcome.logged && outcome.request_id.is_none() {
        outcome.request_id = parts.headers.get(headers::REQUEST_ID).cloned();
    }
    headers::apply(&matched.route.headers.request, &mut parts.headers);
    headers::apply(&destination.headers.request, &mut parts.headers);

    let mut rewritten_authority = None;
    if let Some(rewrite) = &forward.rewrite {
        if let Some(path) = parts
            .uri
            .path_and_query()
            .and_then(|p| headers::rewritten_path(rewrite, p.as_str(), matched.prefix_len))
            && let Ok(path) = PathAndQuery::try_from(path)
        {
            let mut uri = parts.uri.clone().into_parts();
            uri.path_and_query = Some(path);
            if let Ok(uri) = Uri::from_parts(uri) {
                parts.uri = uri;
            }
        }
        rewritten_authority = rewrite.authority.as_deref();
    }
    let authority = rewritten_authority.unwrap_or(outcome.authority.as_str());

    let hash = crate::balance::hash_key(&cluster.config.load_balancer)
        .and_then(|key| crate::balance::request_hash(key, parts, downstream.peer));

    if let Some((connection, upgrade)) = upgrade_headers {
        let request = take_request(parts, body);
        let authority = authority.to_owned();
        // Boxed, as the rare path it is: inline, its future would make every request's larger.
        return Box::pin(upgrade::forward_upgrade(
            cluster, request, &authority, connection, upgrade, hash, outcome,
        ))
        .await;
    }

    let version = cluster.version_for(parts.version);
    // The authority came from the `host` header: no need to look for one.
    let has_host = matches!(outcome.authority, super::outcome::Authority::Host(_))
        || parts.headers.contains_key(header::HOST);
    let target = Target::new(
        parts,
        authority,
        rewritten_authority.is_some(),
        has_host,
        version,
    );
    let policy = forward.retry.as_ref();
    let deadline = forward.timeout.map(|t| clock::now() + t.as_std());
    let mirrored = if forward.mirrors.is_empty() {
        Vec::new()
    } else {
        mirror::falling(&forward.mirrors)
    };
    let keep = policy.is_some_and(|p| p.attempts > 0) || !mirrored.is_empty();
    let body = RequestBody::prepare(body, &parts.headers, keep).await;
    let body = match body {
        Ok(body) => body,
        Err(()) => {
            return outcome.fail(
                ResponseFlags::DOWNSTREAM_CONNECTION_TERMINATION,
                StatusCode::BAD_REQUEST,
                "request body could not be read",
            );
        }
    };
    outcome.bytes_received = body.buffered_len();
    if !mirrored.is_empty() {
        let timeout = forward.timeout.map(|t| t.as_std());
        mirror::send(snapshot, &mirrored, parts, authority, body.kept(), timeout);
    }
    send_with_retries(
        cluster, parts, target, version, body, policy, deadline, hash, outcome,
    )
    .await
}

/// The request `parts` and `body` make, taking the head out of `parts` (its extensions carry
/// the connection's handle on an upgrade) and leaving an empty one.
fn take_request(parts: &mut http::request::Parts, body: ClientBody) -> Request<ClientBody> {
    let (empty, ()) = Request::new(()).into_parts();
    Request::from_parts(std::mem::replace(parts, empty), body)
}

/// The reply to a request past one of the cluster's limits.
fn overflow(cluster: &ClusterRuntime, outcome: &mut Outcome) -> Response<Body> {
    cluster.stats.bump(Stat::Overflows);
    outcome.fail(
        ResponseFlags::UPSTREAM_OVERFLOW,
        StatusCode::SERVICE_UNAVAILABLE,
        local::UPSTREAM_OVERFLOW,
    )
}

/// Whether one more retry fits under the cluster's retry limit (always, without limits); its
/// place goes in `held`, in place of the previous retry's, which is over.
fn retry_slot(cluster: &ClusterRuntime, held: &mut Option<Slot>) -> bool {
    let Some(limits) = &cluster.limits else {
        return true;
    };
    *held = None;
    *held = limits.retry();
    if held.is_none() {
        cluster.stats.bump(Stat::RetryOverflows);
    }
    held.is_some()
}

/// Chooses one destination in proportion to the weights.
pub(super) fn pick_destination(destinations: &[WeightedCluster]) -> Option<&WeightedCluster> {
    let total: u64 = destinations.iter().map(|d| u64::from(d.weight)).sum();
    if total == 0 {
        return destinations.first();
    }
    let mut ticket = fastrand::u64(..total);
    for destination in destinations {
        let weight = u64::from(destination.weight);
        if ticket < weight {
            return Some(destination);
        }
        ticket -= weight;
    }
    destinations.last()
}

/// A request body: kept in memory when small enough to send again, else streamed once.
enum RequestBody {
    Replayable(Bytes),
    Streaming(Option<ClientBody>),
}

impl RequestBody {
    async fn prepare(
        body: ClientBody,
        headers: &http::HeaderMap,
        retries: bool,
    ) -> Result<Self, ()> {
        use http_body::Body as _;
        if body.is_end_stream() {
            return Ok(Self::Replayable(Bytes::new()));
        }
        let declared: Option<usize> = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        if retries && declared.is_some_and(|n| n <= MAX_RETRY_BODY) {
            let collected = Limited::new(body, MAX_RETRY_BODY)
                .collect()
                .await
                .map_err(|_| ())?;
            return Ok(Self::Replayable(collected.to_bytes()));
        }
        Ok(Self::Streaming(Some(body)))
    }

    /// The body, when it is kept in memory.
    fn kept(&self) -> Option<Bytes> {
        match self {
            Self::Replayable(bytes) => Some(bytes.clone()),
            Self::Streaming(_) => None,
        }
    }

    fn buffered_len(&self) -> u64 {
        match self {
            Self::Replayable(bytes) => bytes.len() as u64,
            Self::Streaming(_) => 0,
        }
    }

    /// The body for the next try, if there can be one.
    fn next(&mut self) -> Option<Body> {
        match self {
            Self::Replayable(bytes) if bytes.is_empty() => Some(body::empty()),
            Self::Replayable(bytes) => Some(body::full(bytes.clone())),
            Self::Streaming(body) => body.take().map(BodyExt::boxed),
        }
    }
}

/// Why one try failed.
enum TryFailure {
    Send(SendError),
    Timeout,
}

#[allow(clippy::too_many_arguments)]
async fn send_with_retries(
    cluster: &Arc<ClusterRuntime>,
    parts: &http::request::Parts,
    target: Target,
    version: Version,
    mut body: RequestBody,
    policy: Option<&RetryPolicy>,
    deadline: Option<Instant>,
    hash: Option<u64>,
    outcome: &mut Outcome,
) -> Response<Body> {
    let attempts = policy.map_or(0, |p| p.attempts);
    // Endpoints tried so far, kept inline (the first few are what steer retries elsewhere).
    let mut tried = [0usize; MAX_AVOIDED];
    let mut tried_count = 0;
    let mut retry = 0u32;
    // The retry in progress's place under the cluster's retry limit.
    let mut retrying: Option<Slot> = None;
    loop {
        let Some(index) = cluster.pick(hash, &tried[..tried_count]) else {
            cluster.stats.bump(Stat::NoEndpoint);
            return outcome.fail(
                ResponseFlags::NO_HEALTHY_UPSTREAM,
                StatusCode::SERVICE_UNAVAILABLE,
                "no healthy upstream",
            );
        };
        if tried_count < MAX_AVOIDED {
            tried[tried_count] = index;
            tried_count += 1;
        }
        let Some(try_body) = body.next() else {
            // A streamed body was already sent once; it cannot go again.
            return outcome.fail(
                ResponseFlags::UPSTREAM_RETRY_LIMIT_EXCEEDED,
                StatusCode::SERVICE_UNAVAILABLE,
                local::UPSTREAM_FAILED,
            );
        };
        let endpoint = &cluster.endpoints[index];
        outcome.upstream = Some(endpoint.address);
        outcome.endpoint = Some(index);
        let request = Outgoing {
            parts,
            host: target.host.as_ref(),
            authority: target.authority.as_ref(),
            body: try_body,
        };
        let per_try = policy.and_then(|p| p.per_try_timeout).map(|t| t.as_std());
        let budget = match (per_try, deadline) {
            (Some(t), Some(d)) => Some(t.min(d.saturating_duration_since(clock::now()))),
            (Some(t), None) => Some(t),
            (None, Some(d)) => Some(d.saturating_duration_since(clock::now())),
            (None, None) => None,
        };
        let in_flight = endpoint.start();
        let sent = clock::now();
        let pool = cluster.pool(index);
        let admission = cluster.admission();
        let result = match budget {
            Some(budget) => {
                match tokio::time::timeout(budget, pool.send(request, version, admission)).await {
                    Ok(result) => result.map_err(TryFailure::Send),
                    Err(_) => Err(TryFailure::Timeout),
                }
            }
            None => pool
                .send(request, version, admission)
                .await
                .map_err(TryFailure::Send),
        };
        if let Err(TryFailure::Send(SendError::Overflow(_))) = result {
            // Nothing was sent: not the endpoint's failure, and not retried.
            return overflow(cluster, outcome);
        }
        let out_of_time = deadline.is_some_and(|d| clock::now() >= d);
        let may_retry = retry < attempts && !out_of_time;
        // Outlier detection counts what the try got, whatever the retry policy makes of it
        // (not the proxy's own failures, such as having no certificate yet).
        match &result {
            Ok(response) => cluster.report(index, response.status().as_u16()),
            Err(TryFailure::Timeout) => cluster.report(index, 504),
            Err(TryFailure::Send(error)) if error.is_local() => {}
            Err(TryFailure::Send(_)) => cluster.report(index, 503),
        }
        match result {
            Ok(response) => {
                let round_trip = clock::now().saturating_duration_since(sent);
                if cluster.measures_latency() {
                    endpoint.observe(round_trip);
                }
                drop(in_flight);
                outcome.upstream_service_time = Some(round_trip);
                let retryable = policy.is_some_and(|p| retryable_response(p, &response));
                if retryable && may_retry && body.can_repeat() && retry_slot(cluster, &mut retrying)
                {
                    retry += 1;
                    cluster.stats.bump(Stat::Retries);
                    drop(response);
                    backoff(policy, retry, deadline).await;
                    continue;
                }
                if retryable && retry > 0 {
                    outcome
                        .flags
                        .insert(ResponseFlags::UPSTREAM_RETRY_LIMIT_EXCEEDED);
                }
                return response.map(|b| b.boxed());
            }
            Err(failure) => {
                drop(in_flight);
                let (flag, status, message) = match &failure {
                    TryFailure::Timeout => {
                        cluster.stats.bump(Stat::Timeouts);
                        (
                            ResponseFlags::UPSTREAM_REQUEST_TIMEOUT,
                            StatusCode::GATEWAY_TIMEOUT,
                            "upstream request timeout",
                        )
                    }
                    TryFailure::Send(error) if error.is_connect_failure() => {
                        cluster.stats.bump(Stat::ConnectFailures);
                        tracing::debug!(%error, "upstream connect failure");
                        (
                            ResponseFlags::UPSTREAM_CONNECTION_FAILURE,
                            StatusCode::SERVICE_UNAVAILABLE,
                            local::UPSTREAM_FAILED,
                        )
                    }
                    TryFailure::Send(error) => {
                        cluster.stats.bump(Stat::Resets);
                        tracing::debug!(%error, "upstream reset");
                        (
                            ResponseFlags::UPSTREAM_CONNECTION_TERMINATION,
                            StatusCode::SERVICE_UNAVAILABLE,
                            local::UPSTREAM_FAILED,
                        )
                    }
                };
                let retryable = policy.is_some_and(|p| retryable_failure(p, &failure));
                if retryable && may_retry && body.can_repeat() && retry_slot(cluster, &mut retrying)
                {
                    retry += 1;
                    cluster.stats.bump(Stat::Retries);
                    backoff(policy, retry, deadline).await;
                    continue;
                }
                // A per-try timeout that used up the route's timeout is the route timing out.
                let flag = if out_of_time && deadline.is_some() {
                    ResponseFlags::UPSTREAM_REQUEST_TIMEOUT
                } else {
                    flag
                };
                let status = if flag == ResponseFlags::UPSTREAM_REQUEST_TIMEOUT {
                    StatusCode::GATEWAY_TIMEOUT
                } else {
                    status
                };
                if retry > 0 && retryable {
                    outcome
                        .flags
                        .insert(ResponseFlags::UPSTREAM_RETRY_LIMIT_EXCEEDED);
                }
                return outcome.fail(flag, status, message);
            }
        }
    }
}

impl RequestBody {
    fn can_repeat(&self) -> bool {
        matches!(self, Self::Replayable(_))
    }
}

/// Where a request goes, as its headers say it: the `host` header for HTTP/1.1 and the
/// `:authority` for HTTP/2, worked out once per request rather than once per try.
struct Target {
    /// A `host` header to set: the request has none (it came over HTTP/2) or it was rewritten.
    host: Option<HeaderValue>,
    /// The `:authority`, when the request goes up as HTTP/2.
    authority: Option<Authority>,
}

impl Target {
    fn new(
        parts: &http::request::Parts,
        authority: &str,
        rewritten: bool,
        has_host: bool,
        version: Version,
    ) -> Self {
        let host = (rewritten || !has_host)
            .then(|| HeaderValue::from_str(authority).ok())
            .flatten();
        let authority = (version == Version::Http2).then(|| match parts.uri.authority() {
            Some(written) if !rewritten => written.clone(),
            _ => Authority::try_from(authority)
                .unwrap_or_else(|_| Authority::from_static("localhost")),
        });
        Self { host, authority }
    }
}

/// Whether a response counts as a failed try under the policy.
fn retryable_response<B>(policy: &RetryPolicy, response: &Response<B>) -> bool {
    let status = response.status().as_u16();
    let on = |c: RetryOn| policy.retry_on.contains(&c);
    if (on(RetryOn::ServerError) && status >= 500)
        || (on(RetryOn::GatewayError) && matches!(status, 502..=504))
        || (on(RetryOn::RetriableStatusCodes) && policy.retriable_status_codes.contains(&status))
        || (on(RetryOn::Retriable4xx) && status == 409)
    {
        return true;
    }
    // gRPC statuses are only retried when they come in the headers (a trailers-only
    // response): once a body has started, the response is on its way to the client.
    match super::tracked::grpc_status(response.headers()) {
        Some(1) => on(RetryOn::Cancelled),
        Some(4) => on(RetryOn::DeadlineExceeded),
        Some(8) => on(RetryOn::ResourceExhausted),
        Some(13) => on(RetryOn::Internal),
        Some(14) => on(RetryOn::Unavailable),
        _ => false,
    }
}

/// Whether a failed try (no response) may be retried under the policy.
fn retryable_failure(policy: &RetryPolicy, failure: &TryFailure) -> bool {
    let on = |c: RetryOn| policy.retry_on.contains(&c);
    match failure {
        // A try that ran out of its per-try time is a request that got no response.
        TryFailure::Timeout => {
            on(RetryOn::ServerError) || on(RetryOn::GatewayError) || on(RetryOn::Reset)
        }
        TryFailure::Send(e) if e.is_connect_failure() => {
            on(RetryOn::ConnectFailure) || on(RetryOn::ServerError) || on(RetryOn::GatewayError)
        }
        TryFailure::Send(SendError::Reset {
            refused_stream: true,
            ..
        }) => on(RetryOn::RefusedStream) || on(RetryOn::Reset) || on(RetryOn::ServerError),
        TryFailure::Send(_) => {
            on(RetryOn::Reset) || on(RetryOn::ServerError) || on(RetryOn::GatewayError)
        }
    }
}

/// Waits before a retry: exponential from the policy's base, with full jitter, never past the
/// deadline.
async fn backoff(policy: Option<&RetryPolicy>, retry: u32, deadline: Option<Instant>) {
    let base = policy.map_or(Duration::from_millis(25), |p| p.backoff.as_std());
    let cap = base * MAX_BACKOFF_FACTOR;
    let ceiling = base
        .saturating_mul(1u32 << retry.saturating_sub(1).min(16))
        .min(cap);
    let mut wait = ceiling.mul_f64(fastrand::f64());
    if let Some(deadline) = deadline {
        wait = wait.min(deadline.saturating_duration_since(clock::now()));
    }
    tokio::time::sleep(wait).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_destinations_follow_their_weights() {
        let destinations: Vec<WeightedCluster> = [("a", 90), ("b", 10)]
            .iter()
            .map(|(c, w)| WeightedCluster {
                cluster: (*c).into(),
                weight: *w,
                headers: Default::default(),
            })
            .collect();
        let picks = (0..20_000)
            .filter(|_| pick_destination(&destinations).unwrap().cluster == "a")
            .count();
        assert!((17_400..=18_600).contains(&picks), "{picks}");
        assert!(pick_destination(&[]).is_none());
    }
}
