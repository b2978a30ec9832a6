//! Test helpers for the balancers: endpoint lists and pick counting.

use trellis_proxy_config::Endpoint;

use super::{Balancer, EndpointState};

/// Endpoints `10.0.0.<i>:80` with the given weights, as configured and as run.
pub(super) fn endpoints(weights: &[u32]) -> (Vec<Endpoint>, Vec<EndpointState>) {
    let config: Vec<Endpoint> = weights
        .iter()
        .enumerate()
        .map(|(i, w)| Endpoint {
            weight: *w,
            ..Endpoint::new(format!("10.0.0.{i}:80").parse().unwrap())
        })
        .collect();
    let state = config.iter().map(EndpointState::new).collect();
    (config, state)
}

/// The share of `picks` picks that went to each endpoint, with `hash` drawing each pick's hash.
pub(super) fn shares(
    balancer: &dyn Balancer,
    state: &[EndpointState],
    picks: usize,
    mut hash: impl FnMut() -> Option<u64>,
) -> Vec<f64> {
    let mut counts = vec![0usize; state.len()];
    for _ in 0..picks {
        let index = balancer.pick(state, hash(), &[]).expect("a pick");
        counts[index] += 1;
    }
    counts.iter().map(|c| *c as f64 / picks as f64).collect()
}

/// Asserts that 200 picks (no hash, nothing avoided) all go to endpoint `expected`.
pub(super) fn assert_always_picks(
    balancer: &dyn Balancer,
    state: &[EndpointState],
    expected: usize,
) {
    for _ in 0..200 {
        assert_eq!(balancer.pick(state, None, &[]), Some(expected));
    }
}

/// Asserts each share is within `tolerance` of its endpoint's share of `weights`.
pub(super) fn assert_shares(shares: &[f64], weights: &[u32], tolerance: f64) {
    let total: u32 = weights.iter().sum();
    for (share, weight) in shares.iter().zip(weights) {
        let expected = f64::from(*weight) / f64::from(total);
        assert!(
            (share - expected).abs() <= tolerance,
            "shares {shares:?} for weights {weights:?}"
        );
    }
}

/// Asserts that consistent hashing sends a key to the same endpoint every time, and that the
/// order the endpoints are listed in does not change which one.
pub(super) fn assert_keys_stick_whatever_the_order<B: Balancer>(build: impl Fn(&[Endpoint]) -> B) {
    let (config, state) = endpoints(&[1, 2, 1, 1, 3]);
    let balancer = build(&config);
    let reversed_config: Vec<Endpoint> = config.iter().rev().cloned().collect();
    let reversed_state: Vec<EndpointState> =
        reversed_config.iter().map(EndpointState::new).collect();
    let reversed = build(&reversed_config);
    for _ in 0..10_000 {
        let key = fastrand::u64(..);
        let index = balancer.pick(&state, Some(key), &[]).unwrap();
        assert_eq!(balancer.pick(&state, Some(key), &[]), Some(index));
        let other = reversed.pick(&reversed_state, Some(key), &[]).unwrap();
        assert_eq!(config[index].address, reversed_config[other].address);
    }
}
