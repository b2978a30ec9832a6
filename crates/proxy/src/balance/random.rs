//! Weighted random: each request goes to an endpoint drawn with probability proportional to its
//! weight. No shared state at all (each worker thread draws from its own generator), which makes
//! it the cheapest policy and a good one for large clusters of many proxies.

use trellis_proxy_config::Endpoint;

use super::weights::WeightTable;
use super::{Balancer, EndpointState, any_endpoint};

/// Weighted random choice over the endpoints it was built with.
#[derive(Debug)]
pub struct Random {
    weights: WeightTable,
}

impl Random {
    pub fn new(endpoints: &[Endpoint]) -> Self {
        Self {
            weights: WeightTable::new(endpoints.iter().map(|e| e.weight)),
        }
    }
}

impl Balancer for Random {
    fn pick(
        &self,
        endpoints: &[EndpointState],
        _hash: Option<u64>,
        avoid: &[usize],
    ) -> Option<usize> {
        if endpoints.len() != self.weights.len() {
            return any_endpoint(endpoints.len(), avoid);
        }
        self.weights.sample_avoiding(avoid)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{assert_shares, endpoints, shares};
    use super::*;

    #[test]
    fn shares_follow_weights() {
        fastrand::seed(11);
        for weights in [&[3, 1][..], &[1, 1, 1, 1], &[5, 0, 2, 13]] {
            let (config, state) = endpoints(weights);
            let random = Random::new(&config);
            let got = shares(&random, &state, 40_000, || None);
            // A weight of 0 counts as 1, as everywhere else in the proxy.
            let effective: Vec<u32> = weights.iter().map(|w| (*w).max(1)).collect();
            assert_shares(&got, &effective, 0.02);
        }
    }

    #[test]
    fn retries_go_elsewhere_in_proportion() {
        fastrand::seed(12);
        let (config, state) = endpoints(&[1, 3, 6]);
        let random = Random::new(&config);
        let mut counts = [0usize; 3];
        for _ in 0..40_000 {
            counts[random.pick(&state, None, &[2]).unwrap()] += 1;
        }
        assert_eq!(counts[2], 0);
        let share = counts[1] as f64 / 40_000.0;
        assert!((share - 0.75).abs() < 0.02, "{counts:?}");
    }

    #[test]
    fn no_endpoints_no_pick() {
        assert_eq!(Random::new(&[]).pick(&[], None, &[]), None);
        assert_eq!(Random::new(&[]).pick(&[], None, &[0]), None);
    }
}
