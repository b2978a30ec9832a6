//! Load balancing: which endpoint of a cluster gets the next request.
//!
//! A cluster keeps one [`EndpointState`] per endpoint (address, weight, requests in flight,
//! latency estimate) and one [`Balancer`] built from its policy. Balancers are shared by every
//! worker thread, so they keep their own state in atomics: picking never takes a lock.
//!
//! A balancer is built for one list of endpoints and must be handed the states of that same
//! list, in the same order: when a cluster's endpoints change, the cluster builds a new balancer
//! with them. (Handed a list of another length, a balancer still answers with a valid index, at
//! random, rather than panic.)
//!
//! Policies, each in its own file: [`RoundRobin`], [`Random`], [`LeastRequest`] (power of two
//! choices on requests in flight), [`RingHash`] and [`Maglev`] (consistent hashing on
//! [`request_hash`]), [`PeakEwma`] (power of two choices on latency times load).

mod hash;
mod least_request;
mod maglev;
mod peak_ewma;
mod random;
mod request_hash;
mod ring_hash;
mod round_robin;
#[cfg(test)]
mod test_support;
mod weights;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use trellis_proxy_config::{Endpoint, HashKey, LoadBalancer};

pub use hash::{hash_bytes, source_ip_hash, xxh64};
pub use least_request::LeastRequest;
pub use maglev::{DEFAULT_TABLE_SIZE, MAX_TABLE_SIZE, Maglev};
pub use peak_ewma::{DEFAULT_RTT, PeakEwma};
pub use random::Random;
pub use request_hash::request_hash;
pub use ring_hash::{DEFAULT_MINIMUM_RING_SIZE, MAX_RING_SIZE, RingHash};
pub use round_robin::RoundRobin;

/// How fast the peak-EWMA latency estimate forgets: the time constant of its exponential decay.
const EWMA_DECAY_NANOS: f64 = 10_000_000_000.0;

/// What a cluster knows about one endpoint while it serves traffic.
#[derive(Debug)]
pub struct EndpointState {
    pub address: SocketAddr,
    pub weight: u32,
    /// Requests sent and not yet answered.
    pub in_flight: AtomicUsize,
    /// Peak-EWMA round-trip estimate, in nanoseconds (0 until the first response).
    pub ewma_nanos: AtomicU64,
    /// When `ewma_nanos` was last updated, in nanoseconds since `epoch`.
    pub ewma_stamp: AtomicU64,
    epoch: Instant,
}

impl EndpointState {
    pub fn new(endpoint: &Endpoint) -> Self {
        Self {
            address: endpoint.address,
            weight: endpoint.weight.max(1),
            in_flight: AtomicUsize::new(0),
            ewma_nanos: AtomicU64::new(0),
            ewma_stamp: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// Notes that a request to this endpoint started; the guard notes when it ends.
    pub fn start(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight { endpoint: self }
    }

    /// The time now, in nanoseconds since `epoch`.
    fn now_nanos(&self) -> u64 {
        crate::clock::now()
            .saturating_duration_since(self.epoch)
            .as_nanos() as u64
    }

    /// Folds a measured round trip into the peak-EWMA estimate: a slower sample replaces the
    /// estimate at once (the peak), a faster one decays it with a 10 s half-life-like constant.
    pub fn observe(&self, rtt: Duration) {
        let now = self.now_nanos();
        let sample = rtt.as_nanos() as f64;
        let previous = self.ewma_nanos.load(Ordering::Relaxed) as f64;
        let elapsed = now.saturating_sub(self.ewma_stamp.swap(now, Ordering::Relaxed)) as f64;
        let next = if sample > previous || previous == 0.0 {
            sample
        } else {
            let w = (-elapsed / EWMA_DECAY_NANOS).exp();
            previous * w + sample * (1.0 - w)
        };
        self.ewma_nanos.store(next as u64, Ordering::Relaxed);
    }
}

/// A request in flight to an endpoint; dropping it ends the request.
#[derive(Debug)]
pub struct InFlight<'a> {
    endpoint: &'a EndpointState,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.endpoint.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Picks endpoints for one cluster.
pub trait Balancer: Send + Sync + std::fmt::Debug {
    /// The index of the endpoint for the next request, or `None` when there is none.
    /// `hash` is the request's hash for consistent-hash policies (ignored by others); `avoid`
    /// lists endpoints already tried for this request (retries), to be skipped when another
    /// endpoint is available.
    fn pick(
        &self,
        endpoints: &[EndpointState],
        hash: Option<u64>,
        avoid: &[usize],
    ) -> Option<usize>;
}

/// Builds the balancer for a cluster's policy over its endpoints.
pub fn build(policy: &LoadBalancer, endpoints: &[Endpoint]) -> Box<dyn Balancer> {
    match policy {
        LoadBalancer::RoundRobin => Box::new(RoundRobin::new(endpoints)),
        LoadBalancer::Random => Box::new(Random::new(endpoints)),
        LoadBalancer::LeastRequest => Box::new(LeastRequest::new(endpoints)),
        LoadBalancer::RingHash {
            minimum_ring_size, ..
        } => Box::new(RingHash::new(endpoints, *minimum_ring_size)),
        LoadBalancer::Maglev { table_size, .. } => Box::new(Maglev::new(endpoints, *table_size)),
        LoadBalancer::PeakEwma => Box::new(PeakEwma::new(endpoints)),
    }
}

/// What a policy hashes requests by, for the consistent-hash policies; the caller computes the
/// hash with [`request_hash`] and hands it to [`Balancer::pick`].
pub fn hash_key(policy: &LoadBalancer) -> Option<&HashKey> {
    match policy {
        LoadBalancer::RingHash { key, .. } | LoadBalancer::Maglev { key, .. } => Some(key),
        LoadBalancer::RoundRobin
        | LoadBalancer::Random
        | LoadBalancer::LeastRequest
        | LoadBalancer::PeakEwma => None,
    }
}

/// Any endpoint not in `avoid` (any at all when all are), at random. Balancers answer with this
/// when handed an endpoint list that is not the one they were built for.
fn any_endpoint(len: usize, avoid: &[usize]) -> Option<usize> {
    if len == 0 {
        return None;
    }
    let start = fastrand::usize(..len);
    (0..len)
        .map(|k| (start + k) % len)
        .find(|i| !avoid.contains(i))
        .or(Some(start))
}

/// The power of two choices: draws two different endpoints from `table` (skipping `avoid` when
/// it can) and keeps the first unless `beats(second, first)`. With a table that no longer
/// matches the endpoints, any endpoint.
fn power_of_two(
    table: &weights::WeightTable,
    endpoints: &[EndpointState],
    avoid: &[usize],
    beats: impl Fn(&EndpointState, &EndpointState) -> bool,
) -> Option<usize> {
    if endpoints.len() != table.len() {
        return any_endpoint(endpoints.len(), avoid);
    }
    let (first, second) = table.two(avoid)?;
    let Some(second) = second else {
        return Some(first);
    };
    Some(if beats(&endpoints[second], &endpoints[first]) {
        second
    } else {
        first
    })
}

/// The owner of slot `start` in a circular table of endpoint indexes (a Maglev table, a hash
/// ring), or, when a retry avoids it, the owner of the next slot onward not avoided: every
/// retry of one key goes to the same place. `endpoints` is how many endpoints own slots.
fn owner_from(owners: &[u32], start: usize, endpoints: usize, avoid: &[usize]) -> usize {
    let owner = owners[start] as usize;
    if !avoid.contains(&owner) || all_avoided(endpoints, avoid) {
        return owner;
    }
    let len = owners.len();
    (1..len)
        .map(|k| owners[(start + k) % len] as usize)
        .find(|o| !avoid.contains(o))
        .unwrap_or(owner)
}

/// Whether every one of `len` endpoints is in `avoid` (so avoiding is impossible).
fn all_avoided(len: usize, avoid: &[usize]) -> bool {
    (0..len).all(|i| avoid.contains(&i))
}

#[cfg(test)]
mod tests {
    use super::test_support::endpoints;
    use super::*;

    #[test]
    fn every_policy_builds_and_picks() {
        let (config, state) = endpoints(&[1, 2, 3]);
        let key = HashKey::SourceIp;
        let policies = [
            LoadBalancer::RoundRobin,
            LoadBalancer::Random,
            LoadBalancer::LeastRequest,
            LoadBalancer::RingHash {
                key: key.clone(),
                minimum_ring_size: None,
            },
            LoadBalancer::Maglev {
                key: key.clone(),
                table_size: Some(251),
            },
            LoadBalancer::PeakEwma,
        ];
        for policy in &policies {
            let balancer = build(policy, &config);
            for hash in [None, Some(42)] {
                let picked = balancer.pick(&state, hash, &[]);
                assert!(picked.is_some_and(|i| i < 3), "{policy:?}: {picked:?}");
                for tried in 0..3 {
                    let retry = balancer.pick(&state, hash, &[tried]);
                    assert!(
                        retry.is_some_and(|i| i < 3 && i != tried),
                        "{policy:?}: {retry:?}"
                    );
                }
                let last = balancer.pick(&state, hash, &[0, 2]);
                assert_eq!(last, Some(1), "{policy:?}");
                let forced = balancer.pick(&state, hash, &[0, 1, 2]);
                assert!(forced.is_some_and(|i| i < 3), "{policy:?}: {forced:?}");
            }
            assert_eq!(
                build(policy, &[]).pick(&[], Some(1), &[]),
                None,
                "{policy:?}"
            );
            // Handed a shorter list than it was built for, a balancer still answers in range.
            let picked = balancer.pick(&state[..1], Some(7), &[]);
            assert_eq!(picked, Some(0), "{policy:?}");
        }
        assert_eq!(hash_key(&policies[3]), Some(&key));
        assert_eq!(hash_key(&policies[0]), None);
    }
}
