//! Circuit breaking: a cluster's [`ConnectionLimits`], counted over all its workers.
//!
//! A request takes a request slot for its whole exchange (until its response body ends), a
//! retry slot for each retry, and a new HTTP/1.1 or TCP connection takes a connection slot for
//! its life. With every connection slot taken, a request that finds no idle connection on its
//! worker waits as a pending request (if the pending queue has room) until a connection is
//! handed back or closes; it may close an idle connection another worker holds to make room. A
//! request past a limit fails at once ([`Overflow`]): 503 with flag `UO`, counted in
//! `/clusters` (`overflows`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use tokio::sync::Notify;
use trellis_proxy_config::ConnectionLimits;

/// A limit was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the cluster's {0} limit is reached")]
pub struct Overflow(pub &'static str);

/// The counts a cluster's limits hold against.
#[derive(Debug)]
pub struct Limits {
    config: ConnectionLimits,
    connections: AtomicU32,
    pending: AtomicU32,
    requests: AtomicU32,
    retries: AtomicU32,
    /// Woken when a connection is handed back or closes.
    released: Notify,
}

/// Takes one of `limit` places counted by `count`, if one is free.
fn take(count: &AtomicU32, limit: Option<u32>) -> bool {
    let Some(limit) = limit else {
        count.fetch_add(1, Ordering::Relaxed);
        return true;
    };
    count
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            (n < limit).then_some(n + 1)
        })
        .is_ok()
}

impl Limits {
    pub fn new(config: &ConnectionLimits) -> Arc<Self> {
        Arc::new(Self {
            config: config.clone(),
            connections: AtomicU32::new(0),
            pending: AtomicU32::new(0),
            requests: AtomicU32::new(0),
            retries: AtomicU32::new(0),
            released: Notify::new(),
        })
    }

    /// A request slot, held until the request's exchange ends.
    pub fn request(self: &Arc<Self>) -> Result<Slot, Overflow> {
        if take(&self.requests, self.config.max_requests) {
            Ok(Slot::new(self, Kind::Request))
        } else {
            Err(Overflow("request"))
        }
    }

    /// A retry slot, held while the retry is in progress; `None` when retries are at their
    /// limit (the failed try's outcome stands). A retry budget, when set, is the limit: its
    /// share of the requests in progress, or its minimum, whichever is more.
    pub fn retry(self: &Arc<Self>) -> Option<Slot> {
        let limit = match &self.config.retry_budget {
            Some(budget) => {
                let requests = f64::from(self.requests.load(Ordering::Relaxed));
                let share = (requests * budget.percent / 100.0) as u32;
                Some(share.max(budget.min_concurrency))
            }
            None => self.config.max_retries,
        };
        take(&self.retries, limit).then(|| Slot::new(self, Kind::Retry))
    }

    /// A connection slot, held for the connection's life, if one is free.
    pub fn connection(self: &Arc<Self>) -> Option<Slot> {
        take(&self.connections, self.config.max_connections)
            .then(|| Slot::new(self, Kind::Connection))
    }

    /// A place in the pending queue, while a request waits for a connection.
    pub fn pending(self: &Arc<Self>) -> Result<Slot, Overflow> {
        if take(&self.pending, self.config.max_pending_requests) {
            Ok(Slot::new(self, Kind::Pending))
        } else {
            Err(Overflow("pending request"))
        }
    }

    /// Waits until a connection is handed back or closes (register before looking, so that
    /// nothing is missed: see [`Notify::notified`]).
    pub fn released(&self) -> tokio::sync::futures::Notified<'_> {
        self.released.notified()
    }

    /// Says a connection was handed back: a waiting request may take it.
    pub fn handed_back(&self) {
        self.released.notify_one();
    }

    /// How many requests a connection may carry.
    pub fn max_requests_per_connection(&self) -> Option<u32> {
        self.config.max_requests_per_connection
    }

    /// The counts now: connections, pending requests, requests, retries (for `/clusters`).
    pub fn counts(&self) -> [(&'static str, u32); 4] {
        let read = |count: &AtomicU32| count.load(Ordering::Relaxed);
        [
            ("cx_open", read(&self.connections)),
            ("rq_pending_open", read(&self.pending)),
            ("rq_open", read(&self.requests)),
            ("rq_retry_open", read(&self.retries)),
        ]
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Connection,
    Pending,
    Request,
    Retry,
}

/// A place taken under a limit, given back when dropped.
#[derive(Debug)]
pub struct Slot {
    limits: Arc<Limits>,
    kind: Kind,
}

impl Slot {
    fn new(limits: &Arc<Limits>, kind: Kind) -> Self {
        Self {
            limits: limits.clone(),
            kind,
        }
    }

    /// The limits it was taken under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let limits = &self.limits;
        let count = match self.kind {
            Kind::Connection => &limits.connections,
            Kind::Pending => &limits.pending,
            Kind::Request => &limits.requests,
            Kind::Retry => &limits.retries,
        };
        count.fetch_sub(1, Ordering::Relaxed);
        if let Kind::Connection = self.kind {
            // A connection closed: room for a new one.
            limits.released.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_limited_and_given_back() {
        let limits = Limits::new(&ConnectionLimits {
            max_connections: Some(2),
            max_requests: Some(1),
            ..ConnectionLimits::default()
        });
        let first = limits.connection().expect("a first connection");
        let second = limits.connection().expect("a second connection");
        assert!(limits.connection().is_none(), "two at most");
        drop(first);
        let third = limits.connection().expect("room again");
        let request = limits.request().expect("one request");
        assert_eq!(limits.request().unwrap_err(), Overflow("request"));
        drop(request);
        assert!(limits.request().is_ok());
        // No limit: always a place, still counted.
        let pending: Vec<_> = (0..100).map(|_| limits.pending().unwrap()).collect();
        assert_eq!(limits.counts()[1], ("rq_pending_open", 100));
        drop((second, third, pending));
        assert_eq!(limits.counts()[0], ("cx_open", 0));
    }

    #[test]
    fn a_retry_budget_grows_with_the_requests_in_progress() {
        let limits = Limits::new(&ConnectionLimits {
            max_retries: Some(100),
            retry_budget: Some(trellis_proxy_config::RetryBudget {
                percent: 20.0,
                min_concurrency: 2,
            }),
            ..ConnectionLimits::default()
        });
        let retries: Vec<_> = std::iter::from_fn(|| limits.retry()).take(10).collect();
        assert_eq!(retries.len(), 2, "the minimum while nothing is in progress");
        let requests: Vec<_> = (0..50).map(|_| limits.request().unwrap()).collect();
        let more: Vec<_> = std::iter::from_fn(|| limits.retry()).take(20).collect();
        assert_eq!(retries.len() + more.len(), 10, "20% of 50 requests");
        drop((retries, more, requests));
    }
}
