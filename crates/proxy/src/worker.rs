//! Workers: the proxy runs one single-threaded tokio runtime per worker thread, as nginx runs
//! worker processes. Every listener is bound once per worker with `SO_REUSEPORT`, so the
//! kernel spreads connections over the workers, and everything a connection needs (its
//! socket, its upstream connections, their wake-ups) stays on one thread: no cross-thread
//! hand-offs on the request path.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::{mpsc, watch};
use trellis_proxy_config::Listener;

use crate::{Bound, Proxy, listener};

/// How many workers the process runs (1 until [`run`] says otherwise); per-worker state such as
/// connection pools is sized by it.
static WORKERS: AtomicUsize = AtomicUsize::new(1);

thread_local! {
    static CURRENT: Cell<usize> = const { Cell::new(0) };
}

/// The index of the worker running this thread (0 outside workers).
pub fn current() -> usize {
    CURRENT.with(Cell::get)
}

/// How many workers there are.
pub fn count() -> usize {
    WORKERS.load(Ordering::Relaxed).max(1)
}

/// Pending connections a listener queues.
const BACKLOG: i32 = 1024;

/// Binds `address` with `SO_REUSEPORT` (and `SO_REUSEADDR`), non-blocking.
pub fn bind_shared(address: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&address.into())?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Running workers, and the listeners they serve.
#[derive(Debug)]
pub struct Workers {
    threads: Vec<JoinHandle<()>>,
    /// One per worker: listeners to serve.
    commands: Vec<mpsc::UnboundedSender<Serve>>,
    /// Listeners being served, by name.
    serving: BTreeMap<String, Serving>,
    /// Where captured inbound traffic arrives, if it is captured: inbound listeners are then
    /// not bound themselves but served through [`listener::VIRTUAL_INBOUND`] there.
    inbound_capture: Option<SocketAddr>,
}

/// A listener socket for one worker to serve until `stop` turns true.
#[derive(Debug)]
struct Serve {
    name: String,
    socket: std::net::TcpListener,
    stop: watch::Receiver<bool>,
}

#[derive(Debug)]
struct Serving {
    /// As configured (a port may be 0).
    configured: SocketAddr,
    /// As bound.
    bound: SocketAddr,
    stop: watch::Sender<bool>,
}

impl Workers {
    /// Waits for every worker to finish (after drain).
    pub fn join(self) {
        for thread in self.threads {
            let _ = thread.join();
        }
    }

    /// The listeners being served, with the addresses they are bound to.
    pub fn bound(&self) -> Vec<Bound> {
        self.serving
            .iter()
            .map(|(name, serving)| Bound {
                name: name.clone(),
                address: serving.bound,
            })
            .collect()
    }

    /// Makes the listeners served `listeners`: binds each new listener (or one whose
    /// address changed) once per worker, and stops accepting on those no longer configured
    /// (their connections drain and close as after SIGTERM; the others are untouched). A
    /// listener that cannot be bound is reported, named, and left out; the rest apply.
    ///
    /// Under inbound capture the inbound listeners are served by one listener at the capture
    /// address instead, which hands each connection to the inbound listener of its original
    /// destination. Captured listeners are never bound: the listener a connection was
    /// redirected to hands it over.
    pub fn apply(&mut self, listeners: &[Listener]) -> Vec<io::Error> {
        let capture = self.inbound_capture;
        let mut wanted: BTreeMap<&str, SocketAddr> = listeners
            .iter()
            .filter(|l| !l.captured)
            .filter(|l| !(l.inbound && capture.is_some()))
            .map(|l| (l.name.as_str(), l.address))
            .collect();
        if let Some(address) = capture {
            wanted.insert(listener::VIRTUAL_INBOUND, address);
        }
        self.serving.retain(|name, serving| {
            let keep = wanted.get(name.as_str()) == Some(&serving.configured);
            if !keep {
                tracing::info!(listener = %name, address = %serving.configured, "listener removed; draining it");
                let _ = serving.stop.send(true);
            }
            keep
        });
        let mut errors = Vec::new();
        for (name, address) in wanted {
            if self.serving.contains_key(name) {
                continue;
            }
            match self.bind(name, address) {
                Ok(bound) => tracing::info!(listener = %name, address = %bound, "listening"),
                Err(error) => errors.push(error),
            }
        }
        errors
    }

    /// Binds `address` once per worker (a port of 0 gets a free port, the same for all) and
    /// hands each worker its socket.
    fn bind(&mut self, name: &str, address: SocketAddr) -> io::Result<SocketAddr> {
        let named =
            |e: io::Error| io::Error::new(e.kind(), format!("listener {name} on {address}: {e}"));
        let first = bind_shared(address).map_err(named)?;
        let bound = first.local_addr()?;
        let mut sockets = vec![first];
        for _ in 1..self.commands.len() {
            sockets.push(bind_shared(bound).map_err(named)?);
        }
        let (stop, stopped) = watch::channel(false);
        for (socket, commands) in sockets.into_iter().zip(&self.commands) {
            let _ = commands.send(Serve {
                name: name.to_owned(),
                socket,
                stop: stopped.clone(),
            });
        }
        self.serving.insert(
            name.to_owned(),
            Serving {
                configured: address,
                bound,
                stop,
            },
        );
        Ok(bound)
    }
}

/// Starts `count` worker threads and binds every listener of the configuration in force once
/// per worker; the workers serve them until `drain` turns true, then wait for their connections
/// to end. Call [`set_count`] before the proxy compiles configuration, so that per-worker state
/// is sized for the workers. Listeners change later with [`Workers::apply`].
///
/// With `inbound_capture`, inbound traffic is redirected to that address (iptables `REDIRECT`,
/// as a pod's capture rules do) and served by the inbound listener of each connection's
/// original destination.
pub fn run(
    proxy: &Arc<Proxy>,
    count: usize,
    drain: &watch::Receiver<bool>,
    inbound_capture: Option<SocketAddr>,
) -> io::Result<Workers> {
    let count = count.max(1);
    let mut threads = Vec::new();
    let mut commands = Vec::new();
    for index in 0..count {
        let proxy = proxy.clone();
        let drain = drain.clone();
        let (sender, receiver) = mpsc::unbounded_channel();
        commands.push(sender);
        let thread = std::thread::Builder::new()
            .name(format!("trellis-worker-{index}"))
            .spawn(move || {
                CURRENT.with(|c| c.set(index));
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a worker runtime starts");
                runtime.block_on(work(proxy, receiver, drain));
            })?;
        threads.push(thread);
    }
    let mut workers = Workers {
        threads,
        commands,
        serving: BTreeMap::new(),
        inbound_capture,
    };
    if let Some(error) = workers
        .apply(&proxy.config.load().config.listeners)
        .into_iter()
        .next()
    {
        return Err(error);
    }
    Ok(workers)
}

/// One worker: serves the listeners it is handed, each until it is stopped or the proxy
/// drains; then waits for the process's connections to end.
async fn work(
    proxy: Arc<Proxy>,
    mut listeners: mpsc::UnboundedReceiver<Serve>,
    mut drain: watch::Receiver<bool>,
) {
    loop {
        let serve = tokio::select! {
            serve = listeners.recv() => match serve {
                Some(serve) => serve,
                None => break,
            },
            () = listener::draining(&mut drain) => break,
        };
        let listener = match tokio::net::TcpListener::from_std(serve.socket) {
            Ok(listener) => listener,
            Err(error) => {
                tracing::error!(%error, listener = %serve.name, "cannot serve listener");
                continue;
            }
        };
        // The listener stops when it is removed or when the proxy drains, whichever first.
        let (stop, stopped) = watch::channel(false);
        let (mut removed, mut draining) = (serve.stop, drain.clone());
        tokio::spawn(async move {
            tokio::select! {
                () = listener::draining(&mut removed) => {}
                () = listener::draining(&mut draining) => {}
            }
            let _ = stop.send(true);
        });
        tokio::spawn(listener::serve(
            proxy.clone(),
            listener,
            serve.name,
            stopped,
        ));
    }
    // Draining: keep the runtime up while this process's connections finish.
    proxy.connections.idle().await;
}

/// Sets the worker count before configuration is compiled, so per-worker state is sized for it.
pub fn set_count(count: usize) {
    WORKERS.store(count.max(1), Ordering::Relaxed);
}

/// One value per worker, each on cache lines of its own: what a worker writes on the request
/// path (counters, its share of a pool) lives here, so that workers never write to the same
/// cache line and never wait for one another's. Sized by [`count`] when made; a thread that is
/// not a worker uses the first worker's value.
#[derive(Debug)]
pub struct PerWorker<T>(Box<[Padded<T>]>);

/// Two cache lines: adjacent-line prefetching pairs lines up.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded<T>(T);

impl<T> PerWorker<T> {
    /// A value for each worker, made by `make`.
    pub fn new(mut make: impl FnMut() -> T) -> Self {
        Self((0..count()).map(|_| Padded(make())).collect())
    }

    /// The running worker's value.
    pub fn mine(&self) -> &T {
        // Made with at least one value; a worker index past the end (there were more workers
        // than when this was made) takes the first, as other threads do.
        let padded = self.0.get(current()).unwrap_or(&self.0[0]);
        &padded.0
    }

    /// Every worker's value.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.0.iter().map(|padded| &padded.0)
    }
}

impl<T: Default> Default for PerWorker<T> {
    fn default() -> Self {
        Self::new(T::default)
    }
}
