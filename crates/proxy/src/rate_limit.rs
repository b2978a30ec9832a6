//! Token buckets for local rate limiting (a route's [`RateLimit`]).
//!
//! A bucket is kept as the time at which it will be full again (the generic cell rate
//! algorithm): a request takes a token by moving that time one interval on, unless that would
//! put it further ahead than the burst allows. One atomic word, shared by the workers, updated
//! with a compare-and-swap; no timer refills anything.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use trellis_proxy_config::RateLimit;

/// One bucket.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: u32,
    /// Nanoseconds per token.
    interval: u64,
    /// How far ahead of now the full-again time may be: the whole burst's worth.
    window: u64,
    /// When the bucket will be full again, in nanoseconds since `epoch`.
    full_at: AtomicU64,
    epoch: Instant,
}

impl TokenBucket {
    pub fn new(limit: &RateLimit) -> Self {
        let interval = (1e9 / limit.requests_per_second).clamp(1.0, u64::MAX as f64) as u64;
        Self {
            rate: limit.requests_per_second,
            burst: limit.burst,
            interval,
            window: interval.saturating_mul(u64::from(limit.burst.max(1))),
            full_at: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// Whether it is the bucket `limit` asks for (so a configuration update keeps its state).
    pub fn is_for(&self, limit: &RateLimit) -> bool {
        self.rate == limit.requests_per_second && self.burst == limit.burst
    }

    /// Takes a token; `false` when the bucket is empty.
    pub fn take(&self) -> bool {
        let now = u64::try_from(
            crate::clock::now()
                .saturating_duration_since(self.epoch)
                .as_nanos(),
        )
        .unwrap_or(u64::MAX);
        let mut full_at = self.full_at.load(Ordering::Relaxed);
        loop {
            let next = full_at.max(now).saturating_add(self.interval);
            if next - now > self.window {
                return false;
            }
            match self.full_at.compare_exchange_weak(
                full_at,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(current) => full_at = current,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn bucket(requests_per_second: f64, burst: u32) -> TokenBucket {
        TokenBucket::new(&RateLimit {
            bucket: "b".into(),
            requests_per_second,
            burst,
        })
    }

    #[test]
    fn a_burst_then_the_rate() {
        let bucket = bucket(50.0, 5);
        let burst = (0..20).filter(|_| bucket.take()).count();
        assert_eq!(burst, 5, "the burst at once, then nothing");
        let started = Instant::now();
        while !bucket.take() {
            assert!(started.elapsed() < Duration::from_secs(5), "never refilled");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    #[test]
    fn workers_share_the_tokens() {
        let bucket = std::sync::Arc::new(bucket(0.001, 100));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let bucket = bucket.clone();
                std::thread::spawn(move || (0..100).filter(|_| bucket.take()).count())
            })
            .collect();
        let taken: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(taken, 100, "four threads, one bucket of a hundred");
    }
}
