//! Consistent hashing with a Maglev lookup table (Eisenbud et al., NSDI 2016; Envoy's
//! `MAGLEV`): a table of prime size `M` in which every slot names an endpoint, and a request goes
//! to `table[hash % M]`.
//!
//! Each endpoint has its own permutation of the slots, `(offset + j × skip) % M`, with offset and
//! skip hashed from its address (any skip in `1..M` visits every slot because `M` is prime).
//! Endpoints take turns claiming their next still-free preferred slot until the table is full;
//! with weights, an endpoint takes a turn in a round only while its slot count is behind its
//! weight's share, so the table splits in proportion to weight to within a slot or so. Compared
//! with a ring, lookups are one array index, shares are far more even, and a change of endpoints
//! moves a little more than the ideal number of keys.

use trellis_proxy_config::Endpoint;

use super::hash::endpoint_hash;
use super::{Balancer, EndpointState, any_endpoint, owner_from};

/// Table size when the policy does not say (Envoy's default): about 100 slots per endpoint for
/// clusters of up to 650 endpoints.
pub const DEFAULT_TABLE_SIZE: u64 = 65_537;
/// The largest table (a prime): 5 million slots take 20 MB.
pub const MAX_TABLE_SIZE: u64 = 5_000_011;

const OFFSET_SEED: u64 = 0x6d61_676c_6576_6f66; // "maglevof"
const SKIP_SEED: u64 = 0x6d61_676c_6576_736b; // "maglevsk"

/// A Maglev lookup table over the endpoints it was built with.
pub struct Maglev {
    table: Vec<u32>,
    endpoints: usize,
}

impl std::fmt::Debug for Maglev {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Maglev")
            .field("table_size", &self.table.len())
            .field("endpoints", &self.endpoints)
            .finish()
    }
}

impl Maglev {
    /// Builds the table; `table_size` defaults to [`DEFAULT_TABLE_SIZE`], is raised to the next
    /// prime when it is not one (and to at least the number of endpoints), and is held at most
    /// [`MAX_TABLE_SIZE`].
    pub fn new(endpoints: &[Endpoint], table_size: Option<u64>) -> Self {
        let requested = table_size.unwrap_or(DEFAULT_TABLE_SIZE);
        let size = next_prime(
            requested
                .max(endpoints.len() as u64)
                .clamp(2, MAX_TABLE_SIZE),
        );
        if size != requested {
            tracing::warn!(
                requested,
                used = size,
                "maglev table_size must be a prime of at most {MAX_TABLE_SIZE}, no smaller than the number of endpoints"
            );
        }
        if endpoints.is_empty() {
            return Self {
                table: Vec::new(),
                endpoints: 0,
            };
        }
        Self {
            table: populate(endpoints, size),
            endpoints: endpoints.len(),
        }
    }
}

fn populate(endpoints: &[Endpoint], size: u64) -> Vec<u32> {
    const FREE: u32 = u32::MAX;
    let weights: Vec<u64> = endpoints
        .iter()
        .map(|e| u64::from(e.weight.max(1)))
        .collect();
    let heaviest = weights.iter().copied().max().unwrap_or(1);
    let mut next: Vec<u64> = endpoints
        .iter()
        .map(|e| endpoint_hash(e.address, 0, OFFSET_SEED) % size)
        .collect();
    let skips: Vec<u64> = endpoints
        .iter()
        .map(|e| endpoint_hash(e.address, 0, SKIP_SEED) % (size - 1) + 1)
        .collect();
    let mut claimed = vec![0u64; endpoints.len()];
    let mut table = vec![FREE; size as usize];
    // Turns go in address order, so the table does not depend on the order of the list.
    let mut order: Vec<usize> = (0..endpoints.len()).collect();
    order.sort_by_key(|i| (endpoints[*i].address, *i));
    let mut filled = 0u64;
    let mut round = 0u64;
    while filled < size {
        round += 1;
        for &index in &order {
            // In round r an endpoint may hold r × weight / heaviest slots: the heaviest claims
            // one slot every round, the others in proportion.
            if claimed[index] * heaviest >= round * weights[index] {
                continue;
            }
            loop {
                let slot = next[index] as usize;
                next[index] = (next[index] + skips[index]) % size;
                if table[slot] == FREE {
                    table[slot] = index as u32;
                    break;
                }
            }
            claimed[index] += 1;
            filled += 1;
            if filled == size {
                break;
            }
        }
    }
    table
}

/// The smallest prime no smaller than `n` (n ≥ 2; trial division, fine for table sizes).
fn next_prime(n: u64) -> u64 {
    let is_prime = |n: u64| {
        n >= 2
            && (2..)
                .take_while(|d| d * d <= n)
                .all(|d| !n.is_multiple_of(d))
    };
    (n..).find(|n| is_prime(*n)).unwrap_or(n)
}

impl Balancer for Maglev {
    fn pick(
        &self,
        endpoints: &[EndpointState],
        hash: Option<u64>,
        avoid: &[usize],
    ) -> Option<usize> {
        if endpoints.len() != self.endpoints {
            return any_endpoint(endpoints.len(), avoid);
        }
        let size = self.table.len();
        if size == 0 {
            return None;
        }
        let start = (hash.unwrap_or_else(|| fastrand::u64(..)) % size as u64) as usize;
        // Neighbouring slots belong to unrelated endpoints, so the retries of one endpoint's
        // keys spread over the others by weight.
        Some(owner_from(&self.table, start, self.endpoints, avoid))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{
        assert_keys_stick_whatever_the_order, assert_shares, endpoints, shares,
    };
    use super::*;

    fn slot_shares(maglev: &Maglev) -> Vec<f64> {
        let mut counts = vec![0usize; maglev.endpoints];
        for owner in &maglev.table {
            counts[*owner as usize] += 1;
        }
        counts
            .iter()
            .map(|c| *c as f64 / maglev.table.len() as f64)
            .collect()
    }

    #[test]
    fn table_sizes_are_prime() {
        assert_eq!(next_prime(65_537), 65_537);
        assert_eq!(next_prime(65_536), 65_537);
        assert_eq!(next_prime(2), 2);
        assert_eq!(next_prime(MAX_TABLE_SIZE), MAX_TABLE_SIZE);
        let (config, _) = endpoints(&[1, 1]);
        assert_eq!(Maglev::new(&config, None).table.len(), 65_537);
        assert_eq!(Maglev::new(&config, Some(1000)).table.len(), 1009);
        assert_eq!(Maglev::new(&config, Some(0)).table.len(), 2);
        assert_eq!(Maglev::new(&endpoints(&[1; 12]).0, Some(5)).table.len(), 13);
    }

    #[test]
    fn slots_and_picks_follow_weights() {
        fastrand::seed(51);
        for weights in [&[3, 1][..], &[1, 2, 3, 4], &[1; 7], &[100, 1, 1]] {
            let (config, state) = endpoints(weights);
            let maglev = Maglev::new(&config, None);
            assert!(maglev.table.iter().all(|o| (*o as usize) < weights.len()));
            assert_shares(&slot_shares(&maglev), weights, 0.001);
            assert_shares(
                &shares(&maglev, &state, 40_000, || Some(fastrand::u64(..))),
                weights,
                0.02,
            );
            assert_shares(&shares(&maglev, &state, 40_000, || None), weights, 0.02);
        }
    }

    #[test]
    fn a_key_always_maps_to_the_same_endpoint_whatever_the_list_order() {
        fastrand::seed(52);
        assert_keys_stick_whatever_the_order(|config| Maglev::new(config, None));
    }

    #[test]
    fn removing_an_endpoint_remaps_about_its_share() {
        fastrand::seed(53);
        let (config, state) = endpoints(&[1; 10]);
        let mut fewer = config.clone();
        let removed = fewer.remove(6).address;
        let fewer_state: Vec<EndpointState> = fewer.iter().map(EndpointState::new).collect();
        let (before, after) = (Maglev::new(&config, None), Maglev::new(&fewer, None));
        let mut moved = 0;
        let keys = 100_000;
        for _ in 0..keys {
            let key = fastrand::u64(..);
            let old = config[before.pick(&state, Some(key), &[]).unwrap()].address;
            let new = fewer[after.pick(&fewer_state, Some(key), &[]).unwrap()].address;
            assert_ne!(new, removed);
            moved += usize::from(old != new);
        }
        let moved = moved as f64 / f64::from(keys);
        // The removed endpoint's tenth must move; Maglev moves a little more, at most twice that.
        assert!((0.09..=0.2).contains(&moved), "moved {moved}");
    }

    #[test]
    fn retries_take_another_endpoint_deterministically() {
        fastrand::seed(54);
        let (config, state) = endpoints(&[1, 1, 1, 1, 1]);
        let maglev = Maglev::new(&config, Some(1009));
        let mut retry_targets = [0usize; 5];
        for _ in 0..2_000 {
            let key = fastrand::u64(..);
            let first = maglev.pick(&state, Some(key), &[]).unwrap();
            let retry = maglev.pick(&state, Some(key), &[first]).unwrap();
            assert_ne!(retry, first);
            assert_eq!(maglev.pick(&state, Some(key), &[first]), Some(retry));
            if first == 0 {
                retry_targets[retry] += 1;
            }
        }
        assert_eq!(retry_targets[0], 0);
        assert!(
            retry_targets[1..].iter().all(|n| *n > 0),
            "{retry_targets:?}"
        );
        assert_eq!(Maglev::new(&[], None).pick(&[], Some(1), &[]), None);
    }
}
