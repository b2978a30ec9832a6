//! Consistent hashing on a ring (Karger et al., as Envoy's `RING_HASH`): every endpoint owns
//! virtual nodes at pseudo-random points of a 64-bit circle, as many as its weight's share, and
//! a request goes to the owner of the first node clockwise from the request's hash.
//!
//! A node's point is the hash of its endpoint's address and its replica number, never of the
//! endpoint's position in the list, so the ring depends only on the set of endpoints: adding or
//! removing one moves only the keys near its nodes, plus some more when the ring is rescaled
//! (see [`replica_counts`]). The ring is built once per endpoint set; a pick is a binary search.

use trellis_proxy_config::Endpoint;

use super::hash::endpoint_hash;
use super::{Balancer, EndpointState, any_endpoint, owner_from};

/// Nodes on the ring when the policy does not say (Istio's and Envoy's default).
pub const DEFAULT_MINIMUM_RING_SIZE: u64 = 1024;
/// The most nodes a ring may have (Envoy's default maximum): 8 Mi nodes take 96 MiB.
pub const MAX_RING_SIZE: u64 = 8 * 1024 * 1024;

/// A hash ring over the endpoints it was built with.
pub struct RingHash {
    /// Node points, ascending.
    points: Vec<u64>,
    /// The endpoint owning each node, parallel to `points`.
    owners: Vec<u32>,
    endpoints: usize,
}

impl std::fmt::Debug for RingHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingHash")
            .field("nodes", &self.points.len())
            .field("endpoints", &self.endpoints)
            .finish()
    }
}

impl RingHash {
    /// Builds the ring; `minimum_ring_size` defaults to [`DEFAULT_MINIMUM_RING_SIZE`] and is held
    /// within `1..=MAX_RING_SIZE`.
    pub fn new(endpoints: &[Endpoint], minimum_ring_size: Option<u64>) -> Self {
        let requested = minimum_ring_size.unwrap_or(DEFAULT_MINIMUM_RING_SIZE);
        let minimum = requested.clamp(1, MAX_RING_SIZE);
        if minimum != requested {
            tracing::warn!(
                requested,
                used = minimum,
                max = MAX_RING_SIZE,
                "ring hash minimum_ring_size out of range"
            );
        }
        let weights: Vec<u64> = endpoints
            .iter()
            .map(|e| u64::from(e.weight.max(1)))
            .collect();
        let counts = replica_counts(&weights, minimum);
        let mut nodes: Vec<(u64, u32)> = Vec::with_capacity(counts.iter().sum::<u64>() as usize);
        for (index, (endpoint, count)) in endpoints.iter().zip(&counts).enumerate() {
            let owner = index as u32;
            nodes.extend(
                (0..*count).map(|replica| (endpoint_hash(endpoint.address, replica, 0), owner)),
            );
        }
        // Equal points (a 2^-64 chance per pair) are ordered by address, so that the ring does
        // not depend on the order the endpoints were listed in.
        nodes.sort_unstable_by(|a, b| {
            let address = |owner: u32| endpoints[owner as usize].address;
            a.0.cmp(&b.0)
                .then_with(|| address(a.1).cmp(&address(b.1)))
                .then(a.1.cmp(&b.1))
        });
        let (points, owners) = nodes.into_iter().unzip();
        Self {
            points,
            owners,
            endpoints: endpoints.len(),
        }
    }
}

/// Nodes per endpoint: proportional to weight, scaled (as Envoy does) so that the lightest
/// endpoint gets a whole number of nodes and the ring at least `minimum`; scaled down in
/// proportion, one node at least each, when that would pass [`MAX_RING_SIZE`].
///
/// The scale depends on the total weight, so removing one of `n` equal endpoints also gives each
/// of the others about `1/n` more nodes, which move keys between the remaining endpoints: in
/// all, about `2 - 2/n` times the ideal (1.8 × for ten endpoints), as with Envoy. When rounding
/// leaves the per-endpoint count unchanged (often so once the endpoints outnumber the square
/// root of the ring size), only the removed endpoint's keys move.
fn replica_counts(weights: &[u64], minimum: u64) -> Vec<u64> {
    let (Some(lightest), total) = (weights.iter().min().copied(), weights.iter().sum::<u64>())
    else {
        return Vec::new();
    };
    let (lightest, total) = (u128::from(lightest), u128::from(total));
    let per_lightest = (lightest * u128::from(minimum)).div_ceil(total).max(1);
    let counts: Vec<u128> = weights
        .iter()
        .map(|w| (u128::from(*w) * per_lightest * 2 + lightest) / (2 * lightest))
        .collect();
    if counts.iter().sum::<u128>() <= u128::from(MAX_RING_SIZE) {
        return counts.into_iter().map(|c| c as u64).collect();
    }
    let cap = u128::from(MAX_RING_SIZE);
    weights
        .iter()
        .map(|w| (u128::from(*w) * cap / total).max(1) as u64)
        .collect()
}

impl Balancer for RingHash {
    fn pick(
        &self,
        endpoints: &[EndpointState],
        hash: Option<u64>,
        avoid: &[usize],
    ) -> Option<usize> {
        if endpoints.len() != self.endpoints {
            return any_endpoint(endpoints.len(), avoid);
        }
        let len = self.points.len();
        if len == 0 {
            return None;
        }
        let point = hash.unwrap_or_else(|| fastrand::u64(..));
        let start = self.points.partition_point(|p| *p < point) % len;
        // A retry goes on clockwise to the next node of an endpoint not yet tried.
        Some(owner_from(&self.owners, start, self.endpoints, avoid))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{
        assert_keys_stick_whatever_the_order, assert_shares, endpoints, shares,
    };
    use super::*;

    #[test]
    fn node_counts_follow_weights_and_bounds() {
        assert_eq!(replica_counts(&[1, 1], 1024), [512, 512]);
        assert_eq!(replica_counts(&[1, 2, 3], 1024), [171, 342, 513]);
        assert_eq!(replica_counts(&[1, 1000], 1024), [2, 2000]);
        assert_eq!(replica_counts(&[5, 5, 5], 1), [1, 1, 1]);
        assert_eq!(replica_counts(&[], 1024), Vec::<u64>::new());
        let capped = replica_counts(&[1, u64::from(u32::MAX), 3], MAX_RING_SIZE);
        assert_eq!(capped[0], 1);
        assert!(
            capped.iter().sum::<u64>() <= MAX_RING_SIZE + 3,
            "{capped:?}"
        );
        assert!(capped[1] > MAX_RING_SIZE - 10, "{capped:?}");
        let ring = RingHash::new(&endpoints(&[1, 2, 3]).0, Some(0));
        assert_eq!(ring.points.len(), 6);
        assert!(ring.points.is_sorted());
    }

    #[test]
    fn shares_follow_weights() {
        fastrand::seed(41);
        for weights in [&[3, 1][..], &[1, 2, 3, 4]] {
            let (config, state) = endpoints(weights);
            let ring = RingHash::new(&config, Some(65_536));
            assert_shares(
                &shares(&ring, &state, 40_000, || Some(fastrand::u64(..))),
                weights,
                0.02,
            );
            // Without a hash, a random point of the ring: the same shares.
            assert_shares(&shares(&ring, &state, 40_000, || None), weights, 0.02);
        }
    }

    #[test]
    fn a_key_always_maps_to_the_same_endpoint_whatever_the_list_order() {
        fastrand::seed(42);
        assert_keys_stick_whatever_the_order(|config| RingHash::new(config, None));
    }

    /// The fraction of `keys` whose endpoint address changes when `removed` leaves the cluster.
    fn moved_after_removal(
        weights: &[u32],
        minimum: Option<u64>,
        removed: usize,
        keys: &[u64],
    ) -> (f64, bool) {
        let (config, state) = endpoints(weights);
        let mut fewer = config.clone();
        fewer.remove(removed);
        let fewer_state: Vec<EndpointState> = fewer.iter().map(EndpointState::new).collect();
        let (before, after) = (
            RingHash::new(&config, minimum),
            RingHash::new(&fewer, minimum),
        );
        let mut moved = 0;
        let mut only_removed_moved = true;
        for key in keys {
            let old = before.pick(&state, Some(*key), &[]).unwrap();
            let new = after.pick(&fewer_state, Some(*key), &[]).unwrap();
            if config[old].address != fewer[new].address {
                moved += 1;
                only_removed_moved &= old == removed;
            }
        }
        (moved as f64 / keys.len() as f64, only_removed_moved)
    }

    #[test]
    fn removing_an_endpoint_remaps_about_its_share() {
        fastrand::seed(43);
        let keys: Vec<u64> = (0..100_000).map(|_| fastrand::u64(..)).collect();
        // Ten equal endpoints on the default ring: the ideal is a tenth of the keys. The others'
        // nodes grow from 103 to 114 each, which moves about 8% more (see `replica_counts`).
        let (moved, _) = moved_after_removal(&[1; 10], None, 4, &keys);
        assert!(moved <= 2.0 * 0.1, "moved {moved}");
        // When the scale does not change (1024 / 100 and 1024 / 99 both round up to 11 nodes
        // each), the keys that move are exactly those of the removed endpoint.
        let (moved, only_removed) = moved_after_removal(&[1; 100], None, 37, &keys);
        assert!(only_removed);
        assert!((0.005..=0.02).contains(&moved), "moved {moved}");
    }

    #[test]
    fn retries_walk_on_to_another_endpoint_deterministically() {
        fastrand::seed(44);
        let (config, state) = endpoints(&[1, 1, 1, 1, 1]);
        let ring = RingHash::new(&config, None);
        let mut retry_targets = [0usize; 5];
        for _ in 0..2_000 {
            let key = fastrand::u64(..);
            let first = ring.pick(&state, Some(key), &[]).unwrap();
            let retry = ring.pick(&state, Some(key), &[first]).unwrap();
            assert_ne!(retry, first);
            assert_eq!(ring.pick(&state, Some(key), &[first]), Some(retry));
            let third = ring.pick(&state, Some(key), &[first, retry]).unwrap();
            assert!(third != first && third != retry);
            if first == 0 {
                retry_targets[retry] += 1;
            }
        }
        // Endpoint 0's keys are spread over the others on retry, not all sent to one neighbour.
        assert_eq!(retry_targets[0], 0);
        assert!(
            retry_targets[1..].iter().all(|n| *n > 0),
            "{retry_targets:?}"
        );
        assert_eq!(RingHash::new(&[], None).pick(&[], Some(1), &[]), None);
    }
}
