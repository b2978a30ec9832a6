//! Route tables: how HTTP requests are matched and what is done with them.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::{Duration, Regex, StringMatch};

/// The routes of one HTTP listener (or several sharing it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteTable {
    pub name: String,
    pub virtual_hosts: Vec<VirtualHost>,
    /// The virtual hosts are sent one by one, as requests need them: a proxy configured by a
    /// control plane holds only those it was asked for, and asks for the one a request's
    /// authority needs when it holds none (docs/xds.md, "On-demand virtual hosts"). Without a
    /// control plane the table is used as it is.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub on_demand: bool,
}

/// `host:port` to `host` (IPv6 literals keep their brackets): virtual hosts are looked up by
/// the authority without its port first, then with it.
pub fn strip_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority
            .find(']')
            .map_or(authority, |end| &authority[..=end]);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

/// Routes for a set of authorities. A request goes to the virtual host whose domain matches its
/// authority (port ignored) most specifically: an exact name, then the longest `*.suffix`, then
/// `*`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VirtualHost {
    pub name: String,
    /// `reviews.default.svc.cluster.local`, `*.example.com`, `*`.
    pub domains: Vec<String>,
    /// Tried in order; the first whose match accepts the request wins.
    pub routes: Vec<Route>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    /// For logs and metrics (`bookinfo.default.0`).
    pub name: String,
    /// Any one of these selects the route; none selects every request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<RouteMatch>,
    pub action: Action,
    /// Header changes on the request to the upstream and the response to the client.
    #[serde(default, skip_serializing_if = "HeaderOperations::is_empty")]
    pub headers: HeaderOperations,
    /// Faults injected into the requests the route selects, before its action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<Fault>,
    /// Cross-origin requests from browsers: preflights answered, responses marked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsPolicy>,
    /// A token bucket the route's requests draw from; past it, 429.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Where the route was written (`VirtualService default/reviews spec.http[0]`), for
    /// `trellis explain` and the configuration dump; the proxy does not act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Local rate limiting: a token bucket, shared by every route (and worker) that names it,
/// refilled at `requests_per_second` up to `burst` tokens; a request finding it empty is
/// answered 429 with flag `RL`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateLimit {
    /// Routes naming the same bucket share it.
    pub bucket: String,
    pub requests_per_second: f64,
    pub burst: u32,
}

/// Istio's `corsPolicy`, with Envoy's CORS filter's semantics.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CorsPolicy {
    /// Origins allowed; an exact `*` allows any.
    pub allow_origins: Vec<StringMatch>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_methods: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    /// How long a browser may keep a preflight's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<Duration>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_credentials: bool,
    /// A preflight from an origin not allowed goes upstream (Istio's `FORWARD`, the default)
    /// rather than being answered without CORS headers (`IGNORE`).
    #[serde(default)]
    pub forward_unmatched_preflights: bool,
}

/// Faults injected into requests (Istio's `fault`): a delay, an abort, or both, each falling on
/// its own share of requests, independently; a delayed request may then be aborted too.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Fault {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<FaultDelay>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<FaultAbort>,
}

/// Holds a request for `fixed` before it goes on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultDelay {
    pub fixed: Duration,
    /// The share of requests delayed, from 0 to 100.
    pub percent: f64,
}

/// Answers a request for the upstream, which never sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultAbort {
    pub status: AbortStatus,
    /// The share of requests aborted, from 0 to 100.
    pub percent: f64,
}

/// What an aborted request is answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AbortStatus {
    /// This HTTP status (a gRPC request gets the gRPC status gRPC maps it to).
    Http(u16),
    /// This gRPC status, in a trailers-only response.
    Grpc(u32),
}

/// Conditions that must all hold.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RouteMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<StringMatch>,
    /// Path matching ignores case (`ignoreUriCase`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ignore_case: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<StringMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<StringMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<StringMatch>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderMatch>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query: Vec<QueryMatch>,
    /// The listener port the request arrived on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// A header must be present and match (`StringMatch::Any`: present with any value), or, with
/// `absent`, must not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeaderMatch {
    /// Lowercase.
    pub name: String,
    pub value: StringMatch,
    /// The request matches when the header does not (Istio's `withoutHeaders`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub absent: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryMatch {
    pub name: String,
    pub value: StringMatch,
}

/// What a route does with a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
// Most routes forward, and the request path reads a forward in place rather than through a box.
#[allow(clippy::large_enum_variant)]
pub enum Action {
    Forward(Forward),
    Redirect(Redirect),
    DirectResponse(DirectResponse),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forward {
    /// Weighted clusters; a request goes to one of them in proportion to the weights.
    pub destinations: Vec<WeightedCluster>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<Rewrite>,
    /// From the start of the upstream request to the end of the response headers, retries
    /// included. None: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    /// Clusters a copy of the request also goes to, its answer discarded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<Mirror>,
}

/// A cluster that gets a copy of a share of the requests (Istio's `mirror`, `mirrors`): the
/// copy's authority has `-shadow` appended, its answer is discarded, and the request it copies
/// never waits for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mirror {
    pub cluster: String,
    /// The share of requests copied, from 0 to 100.
    pub percent: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightedCluster {
    pub cluster: String,
    pub weight: u32,
    /// Header changes applied when this destination is chosen.
    #[serde(default, skip_serializing_if = "HeaderOperations::is_empty")]
    pub headers: HeaderOperations,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Rewrite {
    /// Replaces the part of the path the route's prefix match matched (the whole path for
    /// other matches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// Rewrites the path with a regex and a substitution (`\1` for groups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_regex: Option<(Regex, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Redirect {
    /// 301 unless set.
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<RedirectPort>,
    /// Replaces the whole path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Replaces the part of the path the route's prefix match matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedirectPort {
    Number(u16),
    /// 80 for http, 443 for https.
    FromScheme,
    FromRequest,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectResponse {
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// Header changes, in Istio's order: set, then add, then remove.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HeaderOperations {
    #[serde(default, skip_serializing_if = "HeaderChanges::is_empty")]
    pub request: HeaderChanges,
    #[serde(default, skip_serializing_if = "HeaderChanges::is_empty")]
    pub response: HeaderChanges,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HeaderChanges {
    /// Replaces any value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<(String, String)>,
    /// Appends a value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

impl HeaderChanges {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }
}

impl HeaderOperations {
    pub fn is_empty(&self) -> bool {
        self.request.is_empty() && self.response.is_empty()
    }
}

/// When and how often a failed request is tried again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Retries after the first try (0: none).
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_try_timeout: Option<Duration>,
    pub retry_on: BTreeSet<RetryOn>,
    /// HTTP status codes that count as failures (`retriable-status-codes`, or a bare code in
    /// Istio's `retryOn`).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub retriable_status_codes: BTreeSet<u16>,
    /// The first backoff; each retry doubles it (up to ten times), with full jitter.
    pub backoff: Duration,
}

impl RetryPolicy {
    /// The mesh's default when a route sets none: two retries on connection failures, refused
    /// streams, gRPC `unavailable`/`cancelled` and 503, with a 25 ms base backoff.
    pub fn mesh_default() -> Self {
        Self {
            attempts: 2,
            per_try_timeout: None,
            retry_on: BTreeSet::from([
                RetryOn::ConnectFailure,
                RetryOn::RefusedStream,
                RetryOn::Unavailable,
                RetryOn::Cancelled,
                RetryOn::RetriableStatusCodes,
            ]),
            retriable_status_codes: BTreeSet::from([503]),
            backoff: Duration::from_millis(25),
        }
    }
}

/// Conditions under which a try counts as failed and may be retried (Envoy's `retry_on`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RetryOn {
    /// Any 5xx response, and connection failures and resets.
    #[serde(rename = "5xx")]
    ServerError,
    /// 502, 503 and 504.
    GatewayError,
    /// A connection to the endpoint could not be made.
    ConnectFailure,
    /// The endpoint reset the connection or stream before responding.
    Reset,
    /// The upstream HTTP/2 stream was refused (REFUSED_STREAM).
    RefusedStream,
    /// A status in `retriable_status_codes`.
    RetriableStatusCodes,
    /// Any 4xx.
    #[serde(rename = "retriable-4xx")]
    Retriable4xx,
    /// gRPC statuses.
    Cancelled,
    DeadlineExceeded,
    Internal,
    ResourceExhausted,
    Unavailable,
}

impl RetryOn {
    /// Reads one of Envoy's (and Istio's `retryOn`) condition names.
    pub fn parse(name: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(name.trim().to_owned())).ok()
    }
}
