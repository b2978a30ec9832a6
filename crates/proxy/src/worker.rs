//! Workers: the proxy runs one single-threaded tokio runtime per worker thread, as nginx runs
//! worker processes. Every listener is bound once per worker with `SO_REUSEPORT`, so the
//! kernel spreads connections over the workers, and everything a connection needs (its
//! socket, its upstream connections, their wake-ups) stays on one thread: no cross-thread
//! hand-offs on the request path.

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::watch;

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

/// Running workers.
#[derive(Debug)]
pub struct Workers {
    pub bound: Vec<Bound>,
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Waits for every worker to finish (after drain).
    pub fn join(self) {
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

/// Binds every listener of the configuration in force once per worker and starts `count`
/// worker threads serving them until `drain` turns true; each then waits for its connections
/// to end. Call before the proxy compiles configuration with pools sized per worker, i.e.
/// right after [`Proxy`] creation is fine only if `set_count` was called first.
pub fn run(proxy: &Arc<Proxy>, count: usize, drain: &watch::Receiver<bool>) -> io::Result<Workers> {
    let count = count.max(1);
    let snapshot = proxy.config.load();
    // Bind the first socket of each listener (a configured port 0 gets a free port), then the
    // other workers' sockets on the same address.
    let mut sockets: Vec<Vec<(String, std::net::TcpListener)>> =
        (0..count).map(|_| Vec::new()).collect();
    let mut bound = Vec::new();
    for spec in &snapshot.config.listeners {
        let first = bind_shared(spec.address).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("listener {} on {}: {e}", spec.name, spec.address),
            )
        })?;
        let address = first.local_addr()?;
        bound.push(Bound {
            name: spec.name.clone(),
            address,
        });
        sockets[0].push((spec.name.clone(), first));
        for worker in sockets.iter_mut().skip(1) {
            let socket = bind_shared(address).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("listener {} on {address}: {e}", spec.name),
                )
            })?;
            worker.push((spec.name.clone(), socket));
        }
    }
    let mut threads = Vec::new();
    for (index, listeners) in sockets.into_iter().enumerate() {
        let proxy = proxy.clone();
        let drain = drain.clone();
        let thread = std::thread::Builder::new()
            .name(format!("trellis-worker-{index}"))
            .spawn(move || {
                CURRENT.with(|c| c.set(index));
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a worker runtime starts");
                runtime.block_on(async move {
                    let mut tasks = Vec::new();
                    for (name, socket) in listeners {
                        match tokio::net::TcpListener::from_std(socket) {
                            Ok(listener) => tasks.push(tokio::spawn(listener::serve(
                                proxy.clone(),
                                listener,
                                name,
                                drain.clone(),
                            ))),
                            Err(error) => {
                                tracing::error!(%error, listener = %name, "cannot serve listener")
                            }
                        }
                    }
                    for task in tasks {
                        let _ = task.await;
                    }
                    // Draining: keep the runtime up while this process's connections finish.
                    proxy.connections.idle().await;
                });
            })?;
        threads.push(thread);
    }
    Ok(Workers { bound, threads })
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
