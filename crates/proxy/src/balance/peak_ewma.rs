//! Peak EWMA: the power of two choices on expected latency. Of two endpoints drawn at random,
//! the request goes to the one with the lower cost
//!
//! ```text
//! cost = latency estimate × (requests in flight + 1) / weight
//! ```
//!
//! The latency estimate is [`EndpointState::observe`]'s peak EWMA (a slow response raises it at
//! once, fast ones lower it gradually), so a slow endpoint loses traffic the moment it slows.
//! Two additions keep it honest:
//!
//! - *Decay when idle.* An endpoint that lost every comparison gets no new samples, so its last
//!   (bad) estimate would stand forever. The estimate read here decays towards zero with the same
//!   time constant the EWMA uses (10 s), so a shunned endpoint is tried again after a while, and
//!   one probe resets its estimate if it is still slow.
//! - *A prior for endpoints without samples.* A new endpoint is taken to be as fast as the one it
//!   is compared with (neither flooded as if it were instant, nor starved as if it were slow);
//!   when neither has samples, both get [`DEFAULT_RTT`] and the comparison is on load alone.
//!
//! Candidates are drawn uniformly: weight already divides the cost, and drawing by weight too
//! would count it twice. Weights thus act as capacity: with equal latency, an endpoint of weight 3
//! wins until it carries three times the requests in flight of one of weight 1.

use std::sync::atomic::Ordering;
use std::time::Duration;

use trellis_proxy_config::Endpoint;

use super::weights::WeightTable;
use super::{Balancer, EWMA_DECAY_NANOS, EndpointState, power_of_two};

/// The latency assumed when neither candidate has answered a request yet.
pub const DEFAULT_RTT: Duration = Duration::from_millis(1);

/// Power of two choices on peak-EWMA latency times load.
#[derive(Debug)]
pub struct PeakEwma {
    candidates: WeightTable,
}

impl PeakEwma {
    pub fn new(endpoints: &[Endpoint]) -> Self {
        Self {
            candidates: WeightTable::new(endpoints.iter().map(|_| 1)),
        }
    }
}

impl Balancer for PeakEwma {
    fn pick(
        &self,
        endpoints: &[EndpointState],
        _hash: Option<u64>,
        avoid: &[usize],
    ) -> Option<usize> {
        power_of_two(&self.candidates, endpoints, avoid, |b, a| {
            let (latency_a, latency_b) = match (estimate(a), estimate(b)) {
                (Some(la), Some(lb)) => (la, lb),
                (Some(known), None) | (None, Some(known)) => (known, known),
                (None, None) => (DEFAULT_RTT.as_nanos() as f64, DEFAULT_RTT.as_nanos() as f64),
            };
            cost(b, latency_b) < cost(a, latency_a)
        })
    }
}

fn cost(endpoint: &EndpointState, latency: f64) -> f64 {
    let load = endpoint.in_flight.load(Ordering::Relaxed) as f64 + 1.0;
    latency * load / f64::from(endpoint.weight)
}

/// The endpoint's latency estimate in nanoseconds, decayed for the time since its last sample;
/// `None` before its first response.
fn estimate(endpoint: &EndpointState) -> Option<f64> {
    let ewma = endpoint.ewma_nanos.load(Ordering::Relaxed);
    if ewma == 0 {
        return None;
    }
    let idle = endpoint
        .now_nanos()
        .saturating_sub(endpoint.ewma_stamp.load(Ordering::Relaxed));
    Some(decayed(ewma as f64, idle))
}

fn decayed(ewma: f64, idle_nanos: u64) -> f64 {
    ewma * (-(idle_nanos as f64) / EWMA_DECAY_NANOS).exp()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    use super::super::test_support::{assert_always_picks, endpoints, shares};
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn prefers_the_fast_endpoint_after_observations() {
        fastrand::seed(31);
        let (config, state) = endpoints(&[1, 1]);
        let balancer = PeakEwma::new(&config);
        for _ in 0..10 {
            state[0].observe(2 * MS);
            state[1].observe(50 * MS);
        }
        for _ in 0..1_000 {
            assert_eq!(balancer.pick(&state, None, &[]), Some(0));
        }

        // With three, each endpoint wins every comparison with a slower one: the fast one gets
        // two thirds of the picks, the middle one a third, the slowest none (until it decays).
        let (config, state) = endpoints(&[1, 1, 1]);
        state[0].observe(2 * MS);
        state[1].observe(50 * MS);
        state[2].observe(60 * MS);
        let got = shares(&PeakEwma::new(&config), &state, 30_000, || None);
        assert!((got[0] - 2.0 / 3.0).abs() < 0.02, "{got:?}");
        assert!((got[1] - 1.0 / 3.0).abs() < 0.02, "{got:?}");
        assert_eq!(got[2], 0.0, "{got:?}");
    }

    #[test]
    fn load_counts_against_a_fast_endpoint() {
        let (config, state) = endpoints(&[1, 1]);
        let balancer = PeakEwma::new(&config);
        state[0].observe(2 * MS);
        state[1].observe(50 * MS);
        // 2 ms × 31 in flight costs more than 50 ms × 1.
        state[0].in_flight.store(30, Ordering::Relaxed);
        assert_always_picks(&balancer, &state, 1);
    }

    #[test]
    fn an_endpoint_without_samples_is_neither_flooded_nor_starved() {
        fastrand::seed(33);
        let (config, state) = endpoints(&[1, 1]);
        state[0].observe(50 * MS);
        let got = shares(&PeakEwma::new(&config), &state, 20_000, || None);
        assert!((got[1] - 0.5).abs() < 0.02, "{got:?}");

        // Nothing observed anywhere: equal latency, so load and weight decide.
        let (config, state) = endpoints(&[3, 1]);
        let balancer = PeakEwma::new(&config);
        assert_always_picks(&balancer, &state, 0);
        state[0].in_flight.store(3, Ordering::Relaxed);
        assert_always_picks(&balancer, &state, 1);
    }

    #[test]
    fn a_shunned_endpoint_is_tried_again_once_its_estimate_decays() {
        assert_eq!(decayed(1000.0, 0), 1000.0);
        let after_ten_seconds = decayed(1000.0, 10_000_000_000);
        assert!((after_ten_seconds - 1000.0 / std::f64::consts::E).abs() < 1e-6);

        let (config, mut state) = endpoints(&[1, 1]);
        let balancer = PeakEwma::new(&config);
        state[0].observe(2 * MS);
        state[1].observe(50 * MS);
        assert_eq!(balancer.pick(&state, None, &[]), Some(0));
        // Endpoint 1's only sample is now a minute old (e^-6 × 50 ms ≈ 0.12 ms); endpoint 0's
        // was just taken.
        let minute_ago = Instant::now()
            .checked_sub(Duration::from_secs(60))
            .expect("uptime over a minute");
        state[1].epoch = minute_ago;
        state[0].observe(2 * MS);
        assert_always_picks(&balancer, &state, 1);
    }

    #[test]
    fn retries_avoid_the_fast_endpoint_already_tried() {
        let (config, state) = endpoints(&[1, 1, 1]);
        let balancer = PeakEwma::new(&config);
        state[0].observe(MS);
        state[1].observe(80 * MS);
        state[2].observe(90 * MS);
        for _ in 0..200 {
            assert_ne!(balancer.pick(&state, None, &[0]), Some(0));
        }
        assert_eq!(PeakEwma::new(&[]).pick(&[], None, &[]), None);
    }
}
