//! The upstream server: accepts connections, serves HTTP/1.1 (keep-alive) and h2c (prior
//! knowledge) on the same port, and drains gracefully on shutdown.
//!
//! [`serve`] takes its listener and shutdown signal, so a test binds `127.0.0.1:0` and runs it
//! in-process; [`Upstream`] does exactly that and also counts the requests it received. What
//! each request gets back is decided in `respond`.

mod reply;
mod respond;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::HeaderValue;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

/// The default size of the body every plain request is answered with.
pub const DEFAULT_BODY_SIZE: usize = 64;

/// How long a shutdown waits for in-flight requests before closing their connections.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Header naming the upstream that answered, when [`UpstreamConfig::name`] is set.
pub const NAME_HEADER: &str = "x-trellis-upstream";

/// What the upstream answers.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Size in bytes of the body of every request that hits no special endpoint.
    pub body_size: usize,
    /// Sent back as the [`NAME_HEADER`] header on every response and in echoes, so a test
    /// behind a load balancer can tell which upstream answered.
    pub name: Option<HeaderValue>,
    /// How long shutdown waits for in-flight requests.
    pub drain_timeout: Duration,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            body_size: DEFAULT_BODY_SIZE,
            name: None,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
        }
    }
}

/// Serves `listener` until `shutdown` completes, then stops accepting, lets in-flight requests
/// finish (up to [`UpstreamConfig::drain_timeout`]) and returns.
pub async fn serve(
    listener: TcpListener,
    config: UpstreamConfig,
    shutdown: impl Future<Output = ()>,
) {
    let shared = Arc::new(respond::Shared::new(&config));
    serve_shared(listener, shared, config.drain_timeout, shutdown).await;
}

async fn serve_shared(
    listener: TcpListener,
    shared: Arc<respond::Shared>,
    drain_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if let Err(error) = stream.set_nodelay(true) {
                        tracing::debug!(%peer, %error, "could not set TCP_NODELAY");
                    }
                    let service = respond::Service::new(shared.clone());
                    let builder = builder.clone();
                    let watcher = graceful.watcher();
                    connections.spawn(async move {
                        let connection = builder.serve_connection(TokioIo::new(stream), service);
                        if let Err(error) = watcher.watch(connection).await {
                            tracing::debug!(%peer, %error, "connection ended with an error");
                        }
                    });
                }
                Err(error) => {
                    // Out of file descriptors and the like: back off rather than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(drain_timeout) => {
            tracing::warn!(?drain_timeout, "connections still open after the drain timeout; closing them");
        }
    }
    connections.shutdown().await;
}

/// An upstream running in this process on `127.0.0.1`, for tests. Dropping it stops it
/// without waiting; [`Upstream::shutdown`] stops it and waits until it has drained.
#[derive(Debug)]
pub struct Upstream {
    addr: SocketAddr,
    shared: Arc<respond::Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Upstream {
    /// Binds `127.0.0.1:0` and serves on it in a background task.
    pub async fn spawn(config: UpstreamConfig) -> io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        Self::spawn_on(listener, config)
    }

    /// Serves `listener` in a background task.
    pub fn spawn_on(listener: TcpListener, config: UpstreamConfig) -> io::Result<Self> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(respond::Shared::new(&config));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve_shared(
            listener,
            shared.clone(),
            config.drain_timeout,
            async {
                // A dropped sender stops the server just as a sent signal does.
                let _ = stopped.await;
            },
        ));
        Ok(Self {
            addr,
            shared,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many requests it has received so far (counted when a request's head arrives).
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// Stops accepting, lets in-flight requests finish and waits until it has.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take()
            && let Err(error) = task.await
        {
            tracing::warn!(%error, "upstream task failed");
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
