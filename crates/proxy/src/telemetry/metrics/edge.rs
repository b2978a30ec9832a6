//! Istio's request and TCP metrics for one edge of the service graph: a source, a destination
//! and the side that reports it.
//!
//! An [`EdgeMetrics`] is built when configuration is compiled (per cluster, or per endpoint or
//! connection when the peer is known) and shared through an `Arc`. It keeps its own small
//! table of series keyed by the response-specific labels (protocol, code, gRPC status, flags),
//! so recording a request is one lookup of a 16-byte key plus a counter and three histogram
//! updates: no label strings are built, hashed or compared on the request path. The table is
//! read without a lock (copied on the rare insert of a new key), and each series keeps a shard
//! per worker, so workers recording the same series never write to the same cache line; the
//! shards are summed when the metrics are scraped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use prometheus_client::metrics::counter::Counter;

use super::labels::{EdgeLabels, RequestProtocol};
use crate::fast_map::FastMap;
use crate::telemetry::ResponseFlags;
use crate::worker::PerWorker;

/// Istio's default buckets for `istio_request_duration_milliseconds`.
pub const DURATION_BUCKETS_MS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

/// Istio's default buckets for `istio_request_bytes` and `istio_response_bytes`.
pub const BYTE_BUCKETS: [f64; 8] = [1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6, 1e7];

/// How one HTTP or gRPC request ended, for [`EdgeMetrics::record_request`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RequestOutcome {
    pub protocol: RequestProtocol,
    /// The status sent downstream; 0 when none was (the client went away first).
    pub response_code: u16,
    /// The `grpc-status` of a gRPC response (trailers, or headers for trailers-only).
    pub grpc_status: Option<u32>,
    pub flags: ResponseFlags,
    /// From the first request byte to the last response byte.
    pub duration: Duration,
    /// Request size as the proxy counts it (Istio counts headers and body).
    pub request_bytes: u64,
    pub response_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct HttpKey {
    pub(super) protocol: RequestProtocol,
    pub(super) response_code: u16,
    pub(super) grpc_status: Option<u32>,
    pub(super) flags: ResponseFlags,
}

/// One request series: a shard per worker.
#[derive(Debug)]
pub(super) struct HttpSeries {
    shards: PerWorker<HttpShard>,
}

/// One worker's share of a request series.
#[derive(Debug, Default)]
struct HttpShard {
    requests: AtomicU64,
    duration: Buckets<{ DURATION_BUCKETS_MS.len() + 1 }>,
    request_bytes: Buckets<{ BYTE_BUCKETS.len() + 1 }>,
    response_bytes: Buckets<{ BYTE_BUCKETS.len() + 1 }>,
}

/// Histogram counts: one per bound, then the overflow (`+Inf`); and the sum of observations
/// (an `f64`'s bits).
#[derive(Debug)]
struct Buckets<const N: usize> {
    counts: [AtomicU64; N],
    sum: AtomicU64,
}

impl<const N: usize> Default for Buckets<N> {
    fn default() -> Self {
        Self {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum: AtomicU64::new(0),
        }
    }
}

impl<const N: usize> Buckets<N> {
    fn observe(&self, bounds: &[f64], value: f64) {
        let bucket = bounds.partition_point(|bound| *bound < value);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        let _ = self
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |sum| {
                Some((f64::from_bits(sum) + value).to_bits())
            });
    }

    fn add_to(&self, total: &mut HistogramTotal) {
        for (slot, count) in total.buckets.iter_mut().zip(&self.counts) {
            let count = count.load(Ordering::Relaxed);
            slot.1 += count;
            total.count += count;
        }
        total.sum += f64::from_bits(self.sum.load(Ordering::Relaxed));
    }
}

/// A request series summed over the workers, for the scrape.
#[derive(Debug)]
pub(super) struct HttpTotals {
    pub(super) requests: CounterTotal,
    pub(super) duration: HistogramTotal,
    pub(super) request_bytes: HistogramTotal,
    pub(super) response_bytes: HistogramTotal,
}

/// A counter summed over the workers.
#[derive(Debug)]
pub(super) struct CounterTotal(pub(super) u64);

/// A histogram summed over the workers: per-bucket counts (not cumulative), the overflow last.
#[derive(Debug)]
pub(super) struct HistogramTotal {
    pub(super) sum: f64,
    pub(super) count: u64,
    pub(super) buckets: Vec<(f64, u64)>,
}

impl HistogramTotal {
    fn new(bounds: &[f64]) -> Self {
        Self {
            sum: 0.0,
            count: 0,
            buckets: bounds
                .iter()
                .copied()
                .chain(std::iter::once(f64::INFINITY))
                .map(|bound| (bound, 0))
                .collect(),
        }
    }
}

impl HttpSeries {
    fn new() -> Self {
        Self {
            shards: PerWorker::default(),
        }
    }

    fn record(&self, outcome: &RequestOutcome) {
        let shard = self.shards.mine();
        shard.requests.fetch_add(1, Ordering::Relaxed);
        // Exact for whole microseconds: 500 µs is 0.5, not 0.49999…
        let millis = outcome.duration.as_nanos() as f64 / 1e6;
        shard.duration.observe(&DURATION_BUCKETS_MS, millis);
        shard
            .request_bytes
            .observe(&BYTE_BUCKETS, outcome.request_bytes as f64);
        shard
            .response_bytes
            .observe(&BYTE_BUCKETS, outcome.response_bytes as f64);
    }

    pub(super) fn totals(&self) -> HttpTotals {
        let mut totals = HttpTotals {
            requests: CounterTotal(0),
            duration: HistogramTotal::new(&DURATION_BUCKETS_MS),
            request_bytes: HistogramTotal::new(&BYTE_BUCKETS),
            response_bytes: HistogramTotal::new(&BYTE_BUCKETS),
        };
        for shard in self.shards.iter() {
            totals.requests.0 += shard.requests.load(Ordering::Relaxed);
            shard.duration.add_to(&mut totals.duration);
            shard.request_bytes.add_to(&mut totals.request_bytes);
            shard.response_bytes.add_to(&mut totals.response_bytes);
        }
        totals
    }
}

#[derive(Debug, Clone, Default)]
pub(super) struct TcpSeries {
    pub(super) sent: Counter,
    pub(super) received: Counter,
    pub(super) opened: Counter,
    pub(super) closed: Counter,
}

/// The metrics of one edge; see the module docs.
#[derive(Debug)]
pub struct EdgeMetrics {
    labels: EdgeLabels,
    pub(super) http: ArcSwap<FastMap<HttpKey, Arc<HttpSeries>>>,
    /// Held while a new request series is added.
    adding: Mutex<()>,
    pub(super) tcp: RwLock<FastMap<ResponseFlags, TcpSeries>>,
}

/// Finds the series for `key`, creating it the first time, and hands it to `f`. The lock is
/// held only for the duration of `f` (a few atomic updates), never across an await.
fn with_series<K, V, R>(
    table: &RwLock<FastMap<K, V>>,
    key: K,
    new: impl FnOnce() -> V,
    f: impl FnOnce(&V) -> R,
) -> R
where
    K: std::hash::Hash + Eq,
{
    {
        let read = table.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(series) = read.get(&key) {
            return f(series);
        }
    }
    let mut write = table.write().unwrap_or_else(PoisonError::into_inner);
    f(write.entry(key).or_insert_with(new))
}

impl EdgeMetrics {
    pub(super) fn new(labels: EdgeLabels) -> Self {
        Self {
            labels,
            http: ArcSwap::default(),
            adding: Mutex::default(),
            tcp: RwLock::default(),
        }
    }

    pub(super) fn labels(&self) -> &EdgeLabels {
        &self.labels
    }

    /// Counts one finished HTTP or gRPC request: `istio_requests_total`,
    /// `istio_request_duration_milliseconds`, `istio_request_bytes`, `istio_response_bytes`.
    pub fn record_request(&self, outcome: &RequestOutcome) {
        let key = HttpKey {
            protocol: outcome.protocol,
            response_code: outcome.response_code,
            grpc_status: outcome.grpc_status,
            flags: outcome.flags,
        };
        if let Some(series) = self.http.load().get(&key) {
            series.record(outcome);
            return;
        }
        let _adding = self.adding.lock().unwrap_or_else(PoisonError::into_inner);
        let mut table = FastMap::clone(&self.http.load());
        table
            .entry(key)
            .or_insert_with(|| Arc::new(HttpSeries::new()))
            .record(outcome);
        self.http.store(Arc::new(table));
    }

    /// Counts an accepted TCP connection (`istio_tcp_connections_opened_total`) and returns
    /// the handle its byte counts and its close are recorded through.
    pub fn tcp_opened(self: &Arc<Self>) -> TcpConnectionMetrics {
        let live = self.tcp_series(ResponseFlags::NONE);
        live.opened.inc();
        TcpConnectionMetrics {
            edge: Arc::clone(self),
            live,
            flags: ResponseFlags::NONE,
        }
    }

    fn tcp_series(&self, flags: ResponseFlags) -> TcpSeries {
        with_series(&self.tcp, flags, TcpSeries::default, TcpSeries::clone)
    }
}

/// One proxied TCP connection's metrics. Bytes are counted as they flow, so long connections
/// show up before they end; dropping the handle counts the close
/// (`istio_tcp_connections_closed_total`) with the flags set so far.
#[derive(Debug)]
pub struct TcpConnectionMetrics {
    edge: Arc<EdgeMetrics>,
    live: TcpSeries,
    flags: ResponseFlags,
}

impl TcpConnectionMetrics {
    /// Bytes sent to the client (the response direction): `istio_tcp_sent_bytes_total`.
    pub fn sent(&self, bytes: u64) {
        self.live.sent.inc_by(bytes);
    }

    /// Bytes received from the client (the request direction): `istio_tcp_received_bytes_total`.
    pub fn received(&self, bytes: u64) {
        self.live.received.inc_by(bytes);
    }

    /// Adds flags the close will be labelled with (`UF` when the upstream connect failed, ...).
    pub fn add_flags(&mut self, flags: ResponseFlags) {
        self.flags.insert(flags);
    }

    /// Ends the connection with the given flags.
    pub fn close(mut self, flags: ResponseFlags) {
        self.add_flags(flags);
    }
}

impl Drop for TcpConnectionMetrics {
    fn drop(&mut self) {
        if self.flags.is_empty() {
            self.live.closed.inc();
        } else {
            self.edge.tcp_series(self.flags).closed.inc();
        }
    }
}

/// All edges of one proxy, interned by their labels so that each label set has one series.
#[derive(Debug, Default)]
pub(super) struct EdgeTable {
    edges: Mutex<HashMap<EdgeLabels, Arc<EdgeMetrics>>>,
}

impl EdgeTable {
    pub(super) fn intern(&self, labels: EdgeLabels) -> Arc<EdgeMetrics> {
        let mut edges = self.edges.lock().unwrap_or_else(PoisonError::into_inner);
        let edge = edges
            .entry(labels)
            .or_insert_with_key(|labels| Arc::new(EdgeMetrics::new(labels.clone())));
        Arc::clone(edge)
    }

    pub(super) fn snapshot(&self) -> Vec<Arc<EdgeMetrics>> {
        self.edges
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }
}
