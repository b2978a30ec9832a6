//! Least request by the power of two choices: draw two different endpoints at random (weighted)
//! and send the request to the one with fewer requests in flight for its weight.
//!
//! Comparing two random endpoints instead of scanning for the least loaded one keeps a pick
//! O(log n) and, across many proxies that each see only their own load, avoids the herd effect
//! of every proxy sending to the same "least loaded" endpoint at once. Ties (the idle case) go to
//! the first draw, so an idle cluster is shared in exact proportion to weights; under load an
//! endpoint of weight 3 is expected to carry three times the requests in flight of one of weight 1.

use std::sync::atomic::Ordering;

use trellis_proxy_config::Endpoint;

use super::weights::WeightTable;
use super::{Balancer, EndpointState, power_of_two};

/// Power of two choices on requests in flight relative to weight.
#[derive(Debug)]
pub struct LeastRequest {
    weights: WeightTable,
}

impl LeastRequest {
    pub fn new(endpoints: &[Endpoint]) -> Self {
        Self {
            weights: WeightTable::new(endpoints.iter().map(|e| e.weight)),
        }
    }
}

impl Balancer for LeastRequest {
    fn pick(
        &self,
        endpoints: &[EndpointState],
        _hash: Option<u64>,
        avoid: &[usize],
    ) -> Option<usize> {
        power_of_two(&self.weights, endpoints, avoid, less_loaded)
    }
}

/// Whether `a` has strictly fewer requests in flight per unit of weight than `b`.
fn less_loaded(a: &EndpointState, b: &EndpointState) -> bool {
    let load = |e: &EndpointState| e.in_flight.load(Ordering::Relaxed) as u128;
    load(a) * u128::from(b.weight) < load(b) * u128::from(a.weight)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::super::test_support::{assert_always_picks, assert_shares, endpoints, shares};
    use super::*;

    #[test]
    fn idle_endpoints_share_by_weight() {
        fastrand::seed(21);
        for weights in [&[3, 1][..], &[1, 2, 3, 4]] {
            let (config, state) = endpoints(weights);
            let got = shares(&LeastRequest::new(&config), &state, 40_000, || None);
            assert_shares(&got, weights, 0.02);
        }
    }

    #[test]
    fn prefers_the_idle_endpoint_over_a_busy_one() {
        fastrand::seed(22);
        let (config, state) = endpoints(&[1, 1]);
        let balancer = LeastRequest::new(&config);
        let _busy: Vec<_> = (0..50).map(|_| state[0].start()).collect();
        for _ in 0..1_000 {
            assert_eq!(balancer.pick(&state, None, &[]), Some(1));
        }

        // Among four, the one busy endpoint never wins a comparison; the others share evenly.
        let (config, state) = endpoints(&[1, 1, 1, 1]);
        state[2].in_flight.store(10, Ordering::Relaxed);
        let got = shares(&LeastRequest::new(&config), &state, 30_000, || None);
        assert_eq!(got[2], 0.0, "{got:?}");
        for i in [0, 1, 3] {
            assert!((got[i] - 1.0 / 3.0).abs() < 0.02, "{got:?}");
        }
    }

    #[test]
    fn load_is_measured_against_weight() {
        let (config, state) = endpoints(&[4, 1]);
        let balancer = LeastRequest::new(&config);
        // 3 in flight on weight 4 is less load than 1 in flight on weight 1.
        state[0].in_flight.store(3, Ordering::Relaxed);
        state[1].in_flight.store(1, Ordering::Relaxed);
        assert_always_picks(&balancer, &state, 0);
        // 5 in flight on weight 4 is more than 1 on weight 1.
        state[0].in_flight.store(5, Ordering::Relaxed);
        assert_always_picks(&balancer, &state, 1);
    }

    #[test]
    fn retries_avoid_tried_endpoints_even_when_they_are_idle() {
        let (config, state) = endpoints(&[1, 1, 1]);
        let balancer = LeastRequest::new(&config);
        state[1].in_flight.store(100, Ordering::Relaxed);
        state[2].in_flight.store(100, Ordering::Relaxed);
        for _ in 0..200 {
            assert_ne!(balancer.pick(&state, None, &[0]), Some(0));
        }
        assert_eq!(LeastRequest::new(&[]).pick(&[], None, &[]), None);
    }
}
