//! Listeners: accept connections, decide what they speak, and serve them: HTTP through the
//! connection manager, anything else through the TCP proxy.
//!
//! Each listener runs one accept loop; each connection runs in a task of its own. On drain a
//! listener stops accepting, asks HTTP connections to finish their requests and close, and
//! waits (up to the drain deadline) for every connection to end.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use trellis_proxy_config::ListenerProtocol;

use crate::Proxy;
use crate::detect::{self, Prefixed, Protocol};
use crate::http::Downstream;
use crate::telemetry::InboundPeer;
use crate::tls::Secured;
use crate::transport::Io;

/// A client has this long to send a request's headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Request headers larger than this get 431.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// How long a detecting listener waits for a client's first bytes.
pub const DEFAULT_DETECTION_TIMEOUT: Duration = Duration::from_secs(1);
/// The listener that captured inbound traffic arrives at (Istio's `virtualInbound`, port
/// 15006): each connection is served by the inbound listener of its original destination.
pub const VIRTUAL_INBOUND: &str = "virtualInbound";

/// Connections open across all listeners, so drain can wait for them.
#[derive(Debug, Default)]
pub struct Connections {
    open: AtomicUsize,
    closed: Notify,
}

impl Connections {
    fn enter(self: &Arc<Self>) -> ConnectionGuard {
        self.open.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(self.clone())
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Waits until no connection is open.
    pub async fn idle(&self) {
        loop {
            let notified = self.closed.notified();
            if self.open() == 0 {
                return;
            }
            notified.await;
        }
    }
}

struct ConnectionGuard(Arc<Connections>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.0.closed.notify_waiters();
        }
    }
}

/// Limits the HTTP listeners apply to clients; the default is what the proxy runs with, tests
/// shorten them (see [`Proxy::with_options`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long a client has to send a request's headers ([`HEADER_READ_TIMEOUT`]).
    pub header_read_timeout: Duration,
    /// How long an HTTP connection may sit with no request in progress before the proxy closes
    /// it ([`IDLE_TIMEOUT`]).
    pub idle_timeout: Duration,
}

/// Envoy's default: an HTTP connection with no request for an hour is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: HEADER_READ_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
        }
    }
}

/// Whether a downstream connection has requests in progress, since when it has had none, and
/// since when a request head has been arriving: what the connection's [`watchdog`] reads.
///
/// Times are milliseconds since the connection opened.
#[derive(Debug)]
pub struct Activity {
    active: AtomicUsize,
    /// When the last request ended (or the connection opened).
    idle_since: AtomicU64,
    /// When the first byte of the next request head arrived; [`NO_HEAD`] when none has.
    head_since: AtomicU64,
    epoch: std::time::Instant,
    /// The connection is to finish the request in progress, if any, and close.
    closing: AtomicBool,
}

const NO_HEAD: u64 = u64::MAX;

impl Activity {
    /// A connection just opened, with the first request head arriving (its first bytes were
    /// read to tell the protocol).
    fn new() -> Self {
        Self {
            active: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            head_since: AtomicU64::new(0),
            epoch: std::time::Instant::now(),
            closing: AtomicBool::new(false),
        }
    }

    /// Marks a request as in progress until the guard is dropped (when its response ends).
    pub fn begin(self: &Arc<Self>) -> RequestGuard {
        self.active.fetch_add(1, Ordering::Relaxed);
        self.head_since.store(NO_HEAD, Ordering::Relaxed);
        RequestGuard(self.clone())
    }

    fn now(&self) -> u64 {
        crate::clock::now()
            .saturating_duration_since(self.epoch)
            .as_millis() as u64
    }

    /// Asks the connection to finish the request in progress, if any, and close.
    pub fn close(&self) {
        self.closing.store(true, Ordering::Relaxed);
    }

    /// Whether the connection has been asked to close.
    pub fn closing(&self) -> bool {
        self.closing.load(Ordering::Relaxed)
    }

    /// Notes bytes read from the client: with no request in progress they start a head.
    pub fn read(&self) {
        if self.active.load(Ordering::Relaxed) == 0
            && self.head_since.load(Ordering::Relaxed) == NO_HEAD
        {
            self.head_since.store(self.now(), Ordering::Relaxed);
        }
    }
}

/// A request in progress on a connection.
#[derive(Debug)]
pub struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let activity = &self.0;
        activity.idle_since.store(activity.now(), Ordering::Relaxed);
        activity.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why a connection's [`watchdog`] ended it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expired {
    /// A request head took longer than [`Limits::header_read_timeout`].
    Head,
    /// No request for [`Limits::idle_timeout`].
    Idle,
}

/// Resolves when the connection has been idle too long, or (with `heads`, for HTTP/1) a
/// request head has taken too long to arrive.
///
/// One timer per connection, re-armed only when it fires: each wake-up works out the earliest
/// moment anything could expire and sleeps until then, so requests themselves never touch the
/// timer wheel.
async fn watchdog(activity: &Activity, limits: Limits, heads: bool) -> Expired {
    let header = limits.header_read_timeout.as_millis() as u64;
    let idle = limits.idle_timeout.as_millis() as u64;
    let sleep = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(sleep);
    loop {
        sleep.as_mut().await;
        let now = activity.now();
        let wake = if activity.active.load(Ordering::Relaxed) > 0 {
            // Nothing can expire before a request ends and a timeout runs its whole length.
            now + if heads { header.min(idle) } else { idle }
        } else {
            let idle_deadline = activity.idle_since.load(Ordering::Relaxed) + idle;
            let head_deadline = match activity.head_since.load(Ordering::Relaxed) {
                _ if !heads => u64::MAX,
                NO_HEAD => now + header,
                since => since + header,
            };
            if head_deadline <= now {
                return Expired::Head;
            }
            if idle_deadline <= now {
                return Expired::Idle;
            }
            idle_deadline.min(head_deadline)
        };
        let after = Duration::from_millis(wake.saturating_sub(now).max(1));
        sleep.as_mut().reset(tokio::time::Instant::now() + after);
    }
}

/// A client stream that tells its connection's [`Activity`] when bytes arrive.
struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.read();
        }
        polled
    }
}

detect::write_through_inner!(Watched);

/// The HTTP server settings of the admin server: either version on one port, and, with its
/// light traffic, hyper timing request heads itself.
pub fn admin_http_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        .max_concurrent_streams(1024);
    builder
}

/// The HTTP/2 server settings of the listeners (HTTP/1.1 is served by
/// [`crate::downstream::http1`]). Detection has already told which version a connection speaks,
/// so hyper takes no second look at the preface.
fn http2_builder() -> http2::Builder<TokioExecutor> {
    let mut http2 = http2::Builder::new(TokioExecutor::new());
    http2
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        .max_concurrent_streams(1024);
    http2
}

/// A served HTTP connection that can be asked to finish its requests and close.
trait Served: std::future::Future<Output = Result<(), Self::Error>> {
    type Error: std::fmt::Display;

    fn shut_down(self: Pin<&mut Self>);
}

/// An HTTP/1.1 connection served by [`crate::downstream::http1`].
struct Http1<F> {
    serving: Pin<Box<F>>,
    activity: Arc<Activity>,
}

impl<F: std::future::Future<Output = io::Result<()>>> std::future::Future for Http1<F> {
    type Output = io::Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.serving.as_mut().poll(cx)
    }
}

impl<F: std::future::Future<Output = io::Result<()>>> Served for Http1<F> {
    type Error = io::Error;

    fn shut_down(self: Pin<&mut Self>) {
        self.activity.close();
    }
}

impl<I, S, B> Served for http2::Connection<I, S, TokioExecutor>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    TokioExecutor: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    type Error = hyper::Error;

    fn shut_down(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// Serves a listener until `drain` turns true.
pub async fn serve(
    proxy: Arc<Proxy>,
    listener: TcpListener,
    name: String,
    mut drain: watch::Receiver<bool>,
) {
    let builder = http2_builder();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = draining(&mut drain) => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(%error, listener = %name, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().unwrap_or(peer);
        let guard = proxy.connections.enter();
        let proxy = proxy.clone();
        let name = name.clone();
        let builder = builder.clone();
        let drain = drain.clone();
        tokio::spawn(async move {
            let _guard = guard;
            connection(proxy, stream, peer, local, &name, builder, drain).await;
        });
    }
}

async fn connection(
    proxy: Arc<Proxy>,
    stream: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    listener: &str,
    builder: http2::Builder<TokioExecutor>,
    drain: watch::Receiver<bool>,
) {
    let snapshot = proxy.config.load();
    // A captured connection is served by the listener of its original destination, named in
    // the logs instead of the one that accepted it.
    let (spec, local, handed) = if listener == VIRTUAL_INBOUND {
        match captured_inbound(&snapshot.config.listeners, &stream) {
            Some((spec, original)) => (spec, original, true),
            None => return,
        }
    } else {
        match snapshot
            .config
            .listeners
            .iter()
            .find(|l| l.name == listener)
        {
            Some(spec) => match captured_outbound(&snapshot, spec, &stream, local) {
                Some((captured, original)) => (captured, original, true),
                None => (spec, local, false),
            },
            None => return, // the listener was removed from the configuration
        }
    };
    let protocol = spec.protocol.clone();
    let mtls = spec.mtls;
    let inbound = spec.inbound;
    let handed = handed.then(|| spec.name.clone());
    let listener = handed.as_deref().unwrap_or(listener);
    drop(snapshot);
    let secured = match mtls {
        None => Secured::plain(stream),
        Some(mode) => {
            let detection = match &protocol {
                ListenerProtocol::Detect {
                    detection_timeout: Some(timeout),
                    ..
                } => timeout.as_std(),
                _ => DEFAULT_DETECTION_TIMEOUT,
            };
            let timeout = proxy.limits.header_read_timeout;
            match crate::tls::accept(&proxy, stream, mode, detection, timeout).await {
                Ok(secured) => secured,
                Err(crate::tls::AcceptError::NoCertificate) => {
                    tracing::warn!(%peer, %listener, "connection refused: mutual TLS is required and the proxy has no certificate yet");
                    return;
                }
                Err(error) => {
                    tracing::debug!(%peer, %listener, error = &error as &dyn std::error::Error, "connection refused");
                    return;
                }
            }
        }
    };
    let Secured {
        io: mut stream,
        peer_identity,
    } = secured;
    let inbound = inbound.then(|| Arc::new(InboundPeer::new(peer_identity.as_deref())));
    let http = |stream, route_table| {
        let connection = HttpConnection {
            peer,
            local,
            route_table,
            peer_identity: peer_identity.clone(),
            inbound: inbound.clone(),
        };
        serve_http(proxy.clone(), stream, connection, builder, drain.clone())
    };
    match protocol {
        ListenerProtocol::Http { route_table } => {
            // hyper-util's version sniffing has no timeout of its own: a client that sent
            // nothing, or half the HTTP/2 preface, would otherwise hold its connection forever.
            let mut watching = drain.clone();
            let first = tokio::select! {
                first = first_bytes(&mut stream, proxy.limits.header_read_timeout) => first,
                () = draining(&mut watching) => None,
            };
            let Some(prefix) = first else { return };
            http(Prefixed::new(prefix, stream), route_table).await;
        }
        ListenerProtocol::Tcp { cluster } => {
            crate::tcp::proxy_tcp(&proxy, stream, peer, local, &cluster, inbound.as_deref()).await
        }
        ListenerProtocol::Detect {
            route_table,
            tcp_cluster,
            detection_timeout,
        } => {
            let timeout = detection_timeout.map_or(DEFAULT_DETECTION_TIMEOUT, |t| t.as_std());
            let (protocol, prefix) = match detect::detect(&mut stream, timeout).await {
                Ok(detected) => detected,
                Err(_) => return,
            };
            let stream = Prefixed::new(prefix, stream);
            match (protocol, tcp_cluster) {
                (Protocol::Http1 | Protocol::Http2, _) => http(stream, route_table).await,
                (_, Some(cluster)) => {
                    crate::tcp::proxy_tcp(&proxy, stream, peer, local, &cluster, inbound.as_deref())
                        .await
                }
                (_, None) => {}
            }
        }
    }
}

/// The inbound listener a captured connection was headed for, and the original destination
/// (`SO_ORIGINAL_DST`, which iptables' `REDIRECT` keeps): the listener on that very address,
/// else the inbound listener on its port. `None` (the connection is closed) for a port the
/// workload does not serve, and for a connection made to the capture port itself.
fn captured_inbound<'a>(
    listeners: &'a [trellis_proxy_config::Listener],
    stream: &TcpStream,
) -> Option<(&'a trellis_proxy_config::Listener, SocketAddr)> {
    let Some(original) = original_destination(stream) else {
        tracing::debug!("captured connection without an original destination; closed");
        return None;
    };
    let inbound = || listeners.iter().filter(|l| l.inbound);
    let found = inbound()
        .find(|l| l.address == original)
        .or_else(|| inbound().find(|l| l.address.port() == original.port()));
    if found.is_none() {
        tracing::debug!(%original, "captured inbound connection to a port the workload does not serve; closed");
    }
    found.map(|spec| (spec, original))
}

/// The captured listener a connection redirected to `spec` was headed for (its original
/// destination is the listener's address: a service's virtual IP and TCP port), and that
/// address; `None` when the configuration has no captured listeners, the connection was not
/// redirected, or its destination is none of theirs (it stays with `spec`).
fn captured_outbound<'a>(
    snapshot: &'a crate::state::Snapshot,
    spec: &trellis_proxy_config::Listener,
    stream: &TcpStream,
    local: SocketAddr,
) -> Option<(&'a trellis_proxy_config::Listener, SocketAddr)> {
    if spec.inbound || !snapshot.has_captured() {
        return None;
    }
    let original = original_destination(stream).filter(|o| *o != local)?;
    Some((snapshot.captured(original)?, original))
}

/// Where a connection was headed before iptables redirected it (`SO_ORIGINAL_DST`); the local
/// address for one that was not redirected.
fn original_destination(stream: &TcpStream) -> Option<SocketAddr> {
    let socket = socket2::SockRef::from(stream);
    let original = match stream.local_addr() {
        Ok(SocketAddr::V6(_)) => socket.original_dst_v6(),
        _ => socket.original_dst_v4(),
    };
    original.ok()?.as_socket()
}

/// Who an HTTP connection is with, and where its requests are routed.
struct HttpConnection {
    peer: SocketAddr,
    local: SocketAddr,
    route_table: String,
    peer_identity: Option<Arc<str>>,
    inbound: Option<Arc<InboundPeer>>,
}

/// The first bytes of an HTTP connection, once they are enough to tell what it speaks (garbage
/// included: hyper answers that with 400); `None` when the client closes or stalls first.
async fn first_bytes(stream: &mut Io, timeout: Duration) -> Option<bytes::Bytes> {
    let (_, prefix) = detect::detect(stream, timeout).await.ok()?;
    detect::classify(&prefix).is_some().then_some(prefix)
}

async fn serve_http(
    proxy: Arc<Proxy>,
    stream: Prefixed<Io>,
    connection: HttpConnection,
    builder: http2::Builder<TokioExecutor>,
    drain: watch::Receiver<bool>,
) {
    let HttpConnection {
        peer,
        local,
        route_table,
        peer_identity,
        inbound,
    } = connection;
    let http2 = detect::classify(stream.prefix()) == Some(Protocol::Http2);
    let limits = proxy.limits;
    let activity = Arc::new(Activity::new());
    let downstream = Arc::new(Downstream {
        proxy: proxy.clone(),
        peer,
        peer_value: crate::http::headers::peer_value(peer.ip()),
        local,
        route_table: Arc::from(route_table),
        activity: activity.clone(),
        peer_identity,
        inbound,
    });
    if http2 {
        let stream = Watched {
            inner: stream,
            activity: activity.clone(),
        };
        // Each stream's future is spawned as a task and moved on the way there: boxed, only
        // a pointer moves. It reads the clock once per poll, as connections do.
        let service = service_fn(move |request| {
            crate::clock::Scoped(Box::pin(crate::http::handle(downstream.clone(), request)))
        });
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        drive(connection, peer, &activity, limits, false, drain).await;
    } else {
        let (prefix, stream) = stream.into_parts();
        let connection = Http1 {
            serving: Box::pin(crate::downstream::http1::serve(downstream, stream, prefix)),
            activity: activity.clone(),
        };
        drive(connection, peer, &activity, limits, true, drain).await;
    }
}

/// Serves `connection` until it ends; asks it to finish and close when the proxy drains or the
/// watchdog finds it idle, and drops it when a request head takes too long.
///
/// The connection is polled at every wake-up; the drain signal and the watchdog only when one
/// of them woke the task (each request wakes it several times, and they seldom fire).
async fn drive<S: Served>(
    connection: S,
    peer: SocketAddr,
    activity: &Activity,
    limits: Limits,
    heads: bool,
    mut drain: watch::Receiver<bool>,
) {
    enum Ended<E> {
        Served(Result<(), E>),
        Draining,
        Expired(Expired),
    }
    let mut connection = std::pin::pin!(connection);
    let mut draining = std::pin::pin!(draining(&mut drain));
    let mut watchdog = std::pin::pin!(watchdog(activity, limits, heads));
    let woken = Arc::new(SideWaker::default());
    let side_waker = std::task::Waker::from(woken.clone());
    // One clock reading per wake-up serves everything the wake-up does (see `clock`).
    let ended = std::future::poll_fn(|cx| {
        crate::clock::scope(|| {
            if let Poll::Ready(result) = connection.as_mut().poll(cx) {
                return Poll::Ready(Ended::Served(result));
            }
            if woken.take(cx.waker()) {
                let mut side = Context::from_waker(&side_waker);
                if draining.as_mut().poll(&mut side).is_ready() {
                    return Poll::Ready(Ended::Draining);
                }
                if let Poll::Ready(expired) = watchdog.as_mut().poll(&mut side) {
                    return Poll::Ready(Ended::Expired(expired));
                }
            }
            Poll::Pending
        })
    })
    .await;
    let result = match ended {
        Ended::Served(result) => result,
        // A client that stalls mid-head gets no answer: the connection just closes.
        Ended::Expired(Expired::Head) => return,
        // Finish the requests in progress, then close (HTTP/2 sends GOAWAY).
        Ended::Draining | Ended::Expired(Expired::Idle) => {
            connection.as_mut().shut_down();
            connection.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%error, %peer, "downstream connection ended with an error");
    }
}

/// The waker [`drive`] gives the futures it polls only when they woke it: it notes the wake-up
/// and passes it on to the connection's task.
#[derive(Debug)]
struct SideWaker {
    woken: AtomicBool,
    task: std::sync::Mutex<Option<std::task::Waker>>,
}

impl Default for SideWaker {
    fn default() -> Self {
        Self {
            // The first poll polls everything, so that each registers its wake-up.
            woken: AtomicBool::new(true),
            task: std::sync::Mutex::new(None),
        }
    }
}

impl SideWaker {
    /// Whether a side future woke the task since the last call; if so, `task` is the waker to
    /// pass its next wake-up on to.
    fn take(&self, task: &std::task::Waker) -> bool {
        if !self.woken.swap(false, Ordering::Acquire) {
            return false;
        }
        let mut slot = self
            .task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !slot.as_ref().is_some_and(|known| known.will_wake(task)) {
            *slot = Some(task.clone());
        }
        true
    }
}

impl std::task::Wake for SideWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        let task = self
            .task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(task) = task {
            task.wake();
        }
    }
}

/// Resolves once `drain` turns true (or its sender is gone).
pub async fn draining(drain: &mut watch::Receiver<bool>) {
    let _ = drain.wait_for(|draining| *draining).await;
}
