//! Connections to one endpoint: a pool of idle HTTP/1.1 connections (see [`super::http1`]),
//! or one shared HTTP/2 connection that multiplexes every request.
//!
//! The proxy keeps its own pools (rather than a generic HTTP client) so that the request it
//! sends keeps the authority the client wrote while the connection goes to the endpoint the
//! balancer chose.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use http::header::{self, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use super::http1;
use super::limits::{Limits, Overflow, Slot};
use super::secure::Security;

use crate::body::{Body, BoxError};
use crate::telemetry::EdgeMetrics;
use crate::tls::Alpn;
use crate::transport::Io;
use crate::worker::PerWorker;

/// Idle HTTP/1.1 connections kept per endpoint, at most.
const MAX_IDLE_PER_ENDPOINT: usize = 256;
/// The connect timeout when a cluster sets none.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an idle connection is kept when a cluster sets no idle timeout.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a request could not be sent, or got no response.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("connecting to {address} failed: {source}")]
    Connect {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("connecting to {address} timed out after {timeout:?}")]
    ConnectTimeout {
        address: SocketAddr,
        timeout: Duration,
    },
    #[error("securing the connection to {address} failed: {source}")]
    Tls {
        address: SocketAddr,
        source: super::secure::SecureError,
    },
    #[error("HTTP handshake with {address} failed: {source}")]
    Handshake {
        address: SocketAddr,
        source: hyper::Error,
    },
    /// A limit of the cluster was reached: the request was not sent.
    #[error(transparent)]
    Overflow(#[from] Overflow),
    /// The request was sent (at least in part) and the connection failed before a response.
    #[error("{address} reset or closed the connection before responding: {source}")]
    Reset {
        address: SocketAddr,
        source: BoxError,
        refused_stream: bool,
    },
}

impl SendError {
    /// Whether the failure is the proxy's own (see [`super::secure::SecureError::is_local`]):
    /// not the endpoint's, so outlier detection does not count it.
    pub fn is_local(&self) -> bool {
        matches!(self, Self::Tls { source, .. } if source.is_local())
    }

    /// Whether the endpoint was never reached (the request can go elsewhere untouched).
    pub fn is_connect_failure(&self) -> bool {
        matches!(
            self,
            Self::Connect { .. }
                | Self::ConnectTimeout { .. }
                | Self::Tls { .. }
                | Self::Handshake { .. }
        )
    }
}

/// A request as it goes to an endpoint: the client's head, borrowed (it is kept for retries,
/// and HTTP/1.1 writes it out without a copy), and this try's body.
#[derive(Debug)]
pub struct Outgoing<'a> {
    pub parts: &'a http::request::Parts,
    /// The `host` to send in place of the request's own (HTTP/1.1).
    pub host: Option<&'a HeaderValue>,
    /// The `:authority` (HTTP/2 only; HTTP/1.1 sends the `host` header).
    pub authority: Option<&'a Authority>,
    pub body: Body,
}

impl Outgoing<'_> {
    /// The request as HTTP/2 sends it: an absolute URI whose authority becomes `:authority`,
    /// and no `host` header.
    fn into_http2(self) -> Request<Body> {
        let path = self
            .parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let mut uri = http::uri::Parts::default();
        uri.scheme = Some(Scheme::HTTP);
        uri.authority = self.authority.cloned();
        uri.path_and_query = Some(path);
        let mut request = Request::new(self.body);
        *request.method_mut() = self.parts.method.clone();
        *request.headers_mut() = self.parts.headers.clone();
        request.headers_mut().remove(header::HOST);
        *request.uri_mut() = Uri::from_parts(uri).unwrap_or_default();
        *request.version_mut() = http::Version::HTTP_2;
        request
    }
}

/// HTTP version spoken to an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http1,
    Http2,
}

struct Idle {
    connection: http1::Connection,
    since: Instant,
}

/// The connections to one endpoint, kept per worker: a connection is driven by the worker that
/// made it, so each worker sends on its own connections only.
pub struct EndpointPool {
    address: SocketAddr,
    connect_timeout: Duration,
    idle_timeout: Duration,
    keepalive: Option<socket2::TcpKeepalive>,
    /// Plaintext, or the TLS the cluster originates to this endpoint.
    security: Security,
    /// The principal the endpoint showed last, and the edge naming it (mesh TLS only).
    learnt: ArcSwapOption<(Arc<str>, Arc<EdgeMetrics>)>,
    workers: PerWorker<Arc<WorkerConnections>>,
}

/// What a request to a cluster with limits must get past for a connection: the limits, and
/// the cluster's pools, whose idle connections it may close to make room.
#[derive(Debug, Clone, Copy)]
pub struct Admission<'a> {
    pub limits: &'a Arc<Limits>,
    pub pools: &'a [Arc<EndpointPool>],
}

/// One worker's connections to an endpoint. A response body holds its worker's (to hand its
/// connection back), so the reference it counts is one only that worker writes; and each is an
/// allocation of whole cache lines, which no other worker's shares.
#[derive(Default)]
#[repr(align(128))]
pub(super) struct WorkerConnections {
    idle: Mutex<Vec<Idle>>,
    shared: tokio::sync::Mutex<Option<http2::SendRequest<Body>>>,
}

impl WorkerConnections {
    /// Puts a connection whose exchange has ended back among the idle ones.
    pub(super) fn recycle(&self, connection: http1::Connection) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE_PER_ENDPOINT
        {
            // A request of this worker waiting for a connection runs after this returns, and
            // finds it then.
            if let Some(limits) = connection.limits() {
                limits.handed_back();
            }
            idle.push(Idle {
                connection,
                since: crate::clock::now(),
            });
        }
    }
}

impl std::fmt::Debug for EndpointPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointPool")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl EndpointPool {
    pub fn new(
        address: SocketAddr,
        connect_timeout: Option<Duration>,
        idle_timeout: Option<Duration>,
        keepalive: Option<&trellis_proxy_config::TcpKeepalive>,
        security: Security,
    ) -> Arc<Self> {
        Arc::new(Self {
            address,
            security,
            learnt: ArcSwapOption::empty(),
            connect_timeout: connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            idle_timeout: idle_timeout.unwrap_or(DEFAULT_IDLE_TIMEOUT),
            keepalive: keepalive.map(|k| {
                let mut probes = socket2::TcpKeepalive::new();
                if let Some(time) = k.time {
                    probes = probes.with_time(time.as_std());
                }
                if let Some(interval) = k.interval {
                    probes = probes.with_interval(interval.as_std());
                }
                if let Some(count) = k.probes {
                    probes = probes.with_retries(count);
                }
                probes
            }),
            workers: PerWorker::default(),
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Idle HTTP/1.1 connections right now, over all workers (for `/clusters`).
    pub fn idle_connections(&self) -> usize {
        self.workers
            .iter()
            .map(|w| w.idle.lock().map_or(0, |idle| idle.len()))
            .sum()
    }

    /// This worker's connections.
    pub(super) fn mine(&self) -> &Arc<WorkerConnections> {
        self.workers.mine()
    }

    /// Sends a request and waits for the response headers; `admission` when the cluster has
    /// limits.
    pub async fn send(
        &self,
        request: Outgoing<'_>,
        version: Version,
        admission: Option<Admission<'_>>,
    ) -> Result<Response<UpstreamBody>, SendError> {
        match version {
            Version::Http1 => self.send_http1(request, admission).await,
            // Boxed: hyper's HTTP/2 client futures are large, and inline they would make every
            // request's future larger, HTTP/1.1 ones included.
            Version::Http2 => Ok(Box::pin(self.send_http2(request.into_http2()))
                .await?
                .map(UpstreamBody::Http2)),
        }
    }

    async fn send_http1(
        &self,
        request: Outgoing<'_>,
        admission: Option<Admission<'_>>,
    ) -> Result<Response<UpstreamBody>, SendError> {
        let Outgoing {
            parts,
            host,
            authority,
            mut body,
        } = request;
        // A pooled connection the endpoint closed just now hands the request back unsent; it
        // then goes on a fresh connection. At most once per pooled connection tried.
        loop {
            let (connection, pooled) = match (self.take_idle(), admission) {
                (Some(connection), _) => (connection, true),
                // Boxed: connecting is the rare path, and its future would otherwise make
                // every request's future (moved whole through hyper) larger.
                (None, None) => (Box::pin(self.connect_http1(None)).await?, false),
                (None, Some(admission)) => Box::pin(self.admit(admission)).await?,
            };
            let request = Outgoing {
                parts,
                host,
                authority,
                body,
            };
            match connection.send(request, Arc::clone(self.mine())).await {
                Ok(response) => return Ok(response.map(UpstreamBody::Http1)),
                Err(http1::Failed {
                    unsent: Some(unsent),
                    ..
                }) if pooled => body = unsent,
                Err(failed) => {
                    return Err(SendError::Reset {
                        address: self.address,
                        refused_stream: false,
                        source: failed.error.into(),
                    });
                }
            }
        }
    }

    /// A pooled connection of this worker that is still open and has not idled too long.
    #[inline]
    pub(super) fn take_idle(&self) -> Option<http1::Connection> {
        let mut idle = self.mine().idle.lock().ok()?;
        while let Some(mut candidate) = idle.pop() {
            if crate::clock::now().saturating_duration_since(candidate.since) < self.idle_timeout
                && !candidate.connection.is_closed()
            {
                return Some(candidate.connection);
            }
        }
        None
    }

    /// A connection under the cluster's limits: a new one while the connection limit allows,
    /// else, as a pending request, the first of ours handed back, or a new one once another
    /// closes (closing an idle one another worker or endpoint holds, if there is one).
    async fn admit(
        &self,
        admission: Admission<'_>,
    ) -> Result<(http1::Connection, bool), SendError> {
        let limits = admission.limits;
        if let Some(slot) = limits.connection() {
            return Ok((self.connect_http1(Some(slot)).await?, false));
        }
        let _pending = limits.pending()?;
        loop {
            let released = limits.released();
            tokio::pin!(released);
            released.as_mut().enable();
            if let Some(connection) = self.take_idle() {
                return Ok((connection, true));
            }
            if let Some(slot) = limits.connection() {
                return Ok((self.connect_http1(Some(slot)).await?, false));
            }
            if admission.pools.iter().any(|pool| pool.close_one_idle()) {
                continue;
            }
            released.await;
        }
    }

    /// Closes one idle connection of any worker; whether there was one.
    fn close_one_idle(&self) -> bool {
        self.workers.iter().any(|worker| {
            let closed = worker.idle.lock().ok().and_then(|mut idle| idle.pop());
            closed.is_some()
        })
    }

    /// A new connection to the endpoint that will speak `alpn`: TCP within the connect timeout,
    /// with `TCP_NODELAY`, secured as the cluster says.
    pub async fn connect_stream(&self, alpn: Alpn) -> Result<Io, SendError> {
        let stream = self.connect_tcp().await?;
        let (io, principal) = self
            .security
            .connect(stream, alpn)
            .await
            .map_err(|source| SendError::Tls {
                address: self.address,
                source,
            })?;
        if let (Some(principal), Security::Mesh { destinations, .. }) = (principal, &self.security)
        {
            let known = self.learnt.load();
            if known.as_ref().is_none_or(|learnt| learnt.0 != principal) {
                let edge = destinations.to(&principal);
                self.learnt.store(Some(Arc::new((principal, edge))));
            }
        }
        Ok(io)
    }

    /// The edge naming the principal the endpoint showed, once it has (mesh TLS only).
    pub fn learnt_edge(&self) -> Option<Arc<EdgeMetrics>> {
        if !matches!(self.security, Security::Mesh { .. }) {
            return None;
        }
        self.learnt
            .load()
            .as_ref()
            .map(|learnt| Arc::clone(&learnt.1))
    }

    async fn connect_tcp(&self) -> Result<TcpStream, SendError> {
        let address = self.address;
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(address))
            .await
            .map_err(|_| SendError::ConnectTimeout {
                address,
                timeout: self.connect_timeout,
            })?
            .map_err(|source| SendError::Connect { address, source })?;
        let _ = stream.set_nodelay(true);
        if let Some(keepalive) = &self.keepalive {
            let socket = socket2::SockRef::from(&stream);
            if let Err(error) = socket
                .set_keepalive(true)
                .and_then(|()| socket.set_tcp_keepalive(keepalive))
            {
                tracing::debug!(%error, %address, "TCP keep-alive not set");
            }
        }
        Ok(stream)
    }

    async fn connect_http1(&self, slot: Option<Slot>) -> Result<http1::Connection, SendError> {
        Ok(http1::Connection::new(
            self.connect_stream(Alpn::Http1).await?,
            slot,
        ))
    }

    fn handshake_failed(&self, source: hyper::Error) -> SendError {
        SendError::Handshake {
            address: self.address,
            source,
        }
    }

    async fn send_http2(
        &self,
        mut request: Request<Body>,
    ) -> Result<Response<Incoming>, SendError> {
        let mut fresh = false;
        loop {
            let mut sender = self.http2_sender(fresh).await?;
            if sender.ready().await.is_err() {
                if fresh {
                    return Err(SendError::Connect {
                        address: self.address,
                        source: std::io::Error::other("HTTP/2 connection closed at once"),
                    });
                }
                fresh = true;
                continue;
            }
            match sender.try_send_request(request).await {
                Ok(response) => return Ok(response),
                Err(mut failed) => match failed.take_message() {
                    Some(unsent) if !fresh => {
                        request = unsent;
                        fresh = true;
                    }
                    _ => {
                        let source = failed.into_error();
                        let refused_stream = is_refused_stream(&source);
                        return Err(SendError::Reset {
                            address: self.address,
                            refused_stream,
                            source: source.into(),
                        });
                    }
                },
            }
        }
    }

    /// The shared HTTP/2 connection, made if there is none (or `replace` says the current one
    /// failed).
    async fn http2_sender(&self, replace: bool) -> Result<http2::SendRequest<Body>, SendError> {
        let mut shared = self.mine().shared.lock().await;
        if let Some(sender) = shared.as_ref().filter(|s| !replace && !s.is_closed()) {
            return Ok(sender.clone());
        }
        let sender = Box::pin(self.connect_http2()).await?;
        *shared = Some(sender.clone());
        Ok(sender)
    }

    async fn connect_http2(&self) -> Result<http2::SendRequest<Body>, SendError> {
        let io = TokioIo::new(self.connect_stream(Alpn::Http2).await?);
        let (sender, connection) = http2::Builder::new(TokioExecutor::new())
            .handshake(io)
            .await
            .map_err(|source| self.handshake_failed(source))?;
        drive(connection, "HTTP/2");
        Ok(sender)
    }
}

/// Runs an upstream connection in a task of its own until it ends.
fn drive(
    connection: impl std::future::Future<Output = Result<(), hyper::Error>> + Send + 'static,
    version: &'static str,
) {
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, version, "upstream connection ended");
        }
    });
}

/// A response body from an endpoint: over HTTP/1.1 its connection goes back to the pool when
/// the body has been read to its end (not when it is dropped part-way: the connection is then
/// mid-message and is closed).
#[derive(Debug)]
pub enum UpstreamBody {
    Http1(http1::ResponseBody),
    Http2(Incoming),
}

impl http_body::Body for UpstreamBody {
    type Data = bytes::Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, BoxError>>> {
        match self.get_mut() {
            Self::Http1(body) => std::pin::Pin::new(body).poll_frame(cx),
            Self::Http2(body) => std::pin::Pin::new(body)
                .poll_frame(cx)
                .map_err(BoxError::from),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Http1(body) => body.is_end_stream(),
            Self::Http2(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            Self::Http1(body) => body.size_hint(),
            Self::Http2(body) => body.size_hint(),
        }
    }
}

fn is_refused_stream(error: &hyper::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.to_string().contains("REFUSED_STREAM") || e.to_string().contains("refused stream") {
            return true;
        }
        source = e.source();
    }
    false
}
