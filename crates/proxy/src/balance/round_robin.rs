//! Weighted round robin: over any full cycle each endpoint gets exactly its weight's share, and
//! heavy endpoints are interleaved with light ones rather than sent bursts.
//!
//! The cycle is computed once, when the balancer is built, as a schedule of endpoint indices;
//! a shared atomic counter walks it, so a pick is one `fetch_add` and an index. The schedule is
//! stride scheduling: endpoint `i` of weight `w` is due at times `(k + φᵢ) / w` for
//! `k = 0..w`, and the schedule lists endpoints in order of due time. The phases `φᵢ` are spread
//! over `(0, 1)` so that light endpoints fall in different gaps between the heavy one's turns
//! (weights 5, 1, 1 give `A A A B A A C`, never more than three `A` in a row around the cycle).

use std::sync::atomic::{AtomicU64, Ordering};

use trellis_proxy_config::Endpoint;

use super::{Balancer, EndpointState, all_avoided, any_endpoint};

/// The longest schedule. Weights are first divided by their greatest common divisor; if they
/// still sum to more, they are scaled down in proportion (each keeps at least one turn).
const MAX_SCHEDULE: u64 = 1 << 16;

/// Round robin over a fixed schedule: the schedule lists endpoint indices in weighted,
/// interleaved order and a shared counter walks it.
#[derive(Debug)]
pub struct RoundRobin {
    schedule: Vec<u32>,
    endpoints: usize,
    next: AtomicU64,
}

impl RoundRobin {
    pub fn new(endpoints: &[Endpoint]) -> Self {
        let turns = turns(endpoints);
        let n = turns.len() as u128;
        // Due time of turn k of endpoint i, as the exact fraction (2kn + 2i + 1) / (2nw), that
        // is (k + φᵢ) / w with φᵢ = (i + ½) / n.
        let mut due: Vec<(u128, u128, u32)> =
            Vec::with_capacity(turns.iter().sum::<u64>() as usize);
        for (i, w) in turns.iter().enumerate() {
            let (i, w) = (i as u128, u128::from(*w));
            due.extend((0..w).map(|k| (2 * k * n + 2 * i + 1, 2 * n * w, i as u32)));
        }
        due.sort_unstable_by(|a, b| (a.0 * b.1).cmp(&(b.0 * a.1)).then(a.2.cmp(&b.2)));
        let schedule = due.into_iter().map(|(_, _, i)| i).collect();
        // Start each balancer at a random point so that many proxies do not move in step.
        Self {
            schedule,
            endpoints: endpoints.len(),
            next: AtomicU64::new(fastrand::u64(..)),
        }
    }
}

/// Turns per cycle for each endpoint: its weight, reduced as [`MAX_SCHEDULE`] says.
fn turns(endpoints: &[Endpoint]) -> Vec<u64> {
    let weights: Vec<u64> = endpoints
        .iter()
        .map(|e| u64::from(e.weight.max(1)))
        .collect();
    let divisor = weights.iter().copied().reduce(gcd).unwrap_or(1);
    let weights: Vec<u64> = weights.iter().map(|w| w / divisor).collect();
    let total: u64 = weights.iter().sum();
    if total <= MAX_SCHEDULE {
        return weights;
    }
    weights
        .iter()
        .map(|w| (u128::from(*w) * u128::from(MAX_SCHEDULE) / u128::from(total)).max(1) as u64)
        .collect()
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

impl Balancer for RoundRobin {
    fn pick(
        &self,
        endpoints: &[EndpointState],
        _hash: Option<u64>,
        avoid: &[usize],
    ) -> Option<usize> {
        if endpoints.len() != self.endpoints {
            return any_endpoint(endpoints.len(), avoid);
        }
        if self.schedule.is_empty() {
            return None;
        }
        let len = self.schedule.len() as u64;
        let next =
            || self.schedule[(self.next.fetch_add(1, Ordering::Relaxed) % len) as usize] as usize;
        for _ in 0..self.schedule.len().min(endpoints.len() * 2 + 1) {
            let index = next();
            if !avoid.contains(&index) {
                return Some(index);
            }
        }
        // The endpoints tried hold most of the schedule: take the next one not tried, if any.
        let index = next();
        if all_avoided(self.endpoints, avoid) || !avoid.contains(&index) {
            return Some(index);
        }
        (1..self.endpoints)
            .map(|k| (index + k) % self.endpoints)
            .find(|i| !avoid.contains(i))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::endpoints;
    use super::*;

    fn cycle(weights: &[u32]) -> Vec<u32> {
        RoundRobin::new(&endpoints(weights).0).schedule
    }

    /// The longest run of one endpoint in the schedule, counted around the cycle.
    fn longest_run(schedule: &[u32], endpoint: u32) -> usize {
        let twice: Vec<&u32> = schedule.iter().chain(schedule).collect();
        twice
            .split(|e| **e != endpoint)
            .map(<[_]>::len)
            .max()
            .unwrap_or(0)
            .min(schedule.len())
    }

    #[test]
    fn shares_follow_weights_and_interleave() {
        let (config, state) = endpoints(&[5, 1, 1]);
        let rr = RoundRobin::new(&config);
        let mut counts = [0; 3];
        let picks: Vec<usize> = (0..700)
            .map(|_| rr.pick(&state, None, &[]).unwrap())
            .collect();
        for p in &picks {
            counts[*p] += 1;
        }
        assert_eq!(counts, [500, 100, 100]);
        // Smooth: the heavy endpoint never gets more than 3 in a row with weights 5,1,1.
        assert!(
            picks.windows(4).all(|w| !w.iter().all(|p| *p == 0)),
            "{picks:?}"
        );
    }

    #[test]
    fn schedules_interleave_for_other_weights() {
        assert_eq!(cycle(&[1, 1, 1]), [0, 1, 2]);
        assert_eq!(cycle(&[2, 1]), [0, 0, 1]);
        assert_eq!(longest_run(&cycle(&[3, 1, 1]), 0), 2);
        // Not always the shortest runs possible (2 here), but never a burst.
        assert_eq!(longest_run(&cycle(&[10, 1, 1, 1, 1, 1]), 0), 3);
        let mixed = cycle(&[4, 3, 2, 1]);
        assert_eq!(mixed.len(), 10);
        assert!((0..4).all(|e| longest_run(&mixed, e) <= 2), "{mixed:?}");
    }

    #[test]
    fn weights_are_reduced_then_capped() {
        assert_eq!(cycle(&[100, 300]), [0, 1, 1, 1]);
        let heavy = endpoints(&[u32::MAX, 1, 3]).0;
        let turns = turns(&heavy);
        assert_eq!(turns[1], 1);
        assert!(turns.iter().sum::<u64>() <= MAX_SCHEDULE + 2, "{turns:?}");
        // The light endpoint still gets its turn in a capped schedule.
        assert!(RoundRobin::new(&heavy).schedule.contains(&1));
    }

    #[test]
    fn avoids_endpoints_already_tried() {
        let (config, state) = endpoints(&[1, 1]);
        let rr = RoundRobin::new(&config);
        for _ in 0..10 {
            assert_eq!(rr.pick(&state, None, &[0]), Some(1));
        }
        assert_eq!(RoundRobin::new(&[]).pick(&[], None, &[]), None);

        // A light endpoint behind a heavy one that was tried is still found.
        let (config, state) = endpoints(&[1000, 1, 1000]);
        let rr = RoundRobin::new(&config);
        for _ in 0..100 {
            assert_eq!(rr.pick(&state, None, &[0, 2]), Some(1));
        }
    }
}
