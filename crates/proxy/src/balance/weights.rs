//! Weighted random choice among a cluster's endpoints, shared by the random, least-request and
//! peak-EWMA balancers.
//!
//! The cumulative weights are summed once when the balancer is built, so a pick is one random
//! number and a binary search. Indices to skip (endpoints a retry already tried) are handled by
//! drawing again a few times, then, if the skipped endpoints hold most of the weight, by one
//! exact pass over the others, so a pick never loops unboundedly and never allocates.

/// Draws before the exact pass; each is rejected only when it lands on a skipped endpoint.
const REJECTION_DRAWS: usize = 4;

/// Endpoint weights as running sums: `cumulative[i]` is the weight of endpoints `0..=i`.
#[derive(Debug)]
pub(super) struct WeightTable {
    cumulative: Vec<u64>,
}

impl WeightTable {
    pub(super) fn new(weights: impl IntoIterator<Item = u32>) -> Self {
        let cumulative = weights
            .into_iter()
            .scan(0u64, |sum, weight| {
                *sum += u64::from(weight.max(1));
                Some(*sum)
            })
            .collect();
        Self { cumulative }
    }

    pub(super) fn len(&self) -> usize {
        self.cumulative.len()
    }

    fn total(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }

    fn weight(&self, index: usize) -> u64 {
        let before = if index == 0 {
            0
        } else {
            self.cumulative[index - 1]
        };
        self.cumulative[index] - before
    }

    /// A weighted random index for which `skip` is false, or `None` when there is none.
    pub(super) fn sample(&self, skip: impl Fn(usize) -> bool) -> Option<usize> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        for _ in 0..REJECTION_DRAWS {
            let point = fastrand::u64(..total);
            let index = self.cumulative.partition_point(|sum| *sum <= point);
            if !skip(index) {
                return Some(index);
            }
        }
        let allowed: u64 = (0..self.len())
            .filter(|i| !skip(*i))
            .map(|i| self.weight(i))
            .sum();
        if allowed == 0 {
            return None;
        }
        let mut point = fastrand::u64(..allowed);
        for index in (0..self.len()).filter(|i| !skip(*i)) {
            let weight = self.weight(index);
            if point < weight {
                return Some(index);
            }
            point -= weight;
        }
        None
    }

    /// A weighted random index not in `avoid`, or any index when all are avoided.
    pub(super) fn sample_avoiding(&self, avoid: &[usize]) -> Option<usize> {
        self.sample(|i| avoid.contains(&i))
            .or_else(|| self.sample(|_| false))
    }

    /// Two distinct candidates for a power-of-two-choices pick: the first as
    /// [`sample_avoiding`](Self::sample_avoiding), the second another index not in `avoid`
    /// (`None` when there is no such index).
    pub(super) fn two(&self, avoid: &[usize]) -> Option<(usize, Option<usize>)> {
        if self.len() == 1 {
            // One endpoint: nothing to draw, and nothing else to avoid it for.
            return Some((0, None));
        }
        let first = self.sample_avoiding(avoid)?;
        let second = self.sample(|i| i == first || avoid.contains(&i));
        Some((first, second))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shares(
        table: &WeightTable,
        draws: usize,
        pick: impl Fn(&WeightTable) -> Option<usize>,
    ) -> Vec<f64> {
        let mut counts = vec![0usize; table.len()];
        for _ in 0..draws {
            counts[pick(table).unwrap()] += 1;
        }
        counts.iter().map(|c| *c as f64 / draws as f64).collect()
    }

    #[test]
    fn draws_follow_weights_with_and_without_skips() {
        fastrand::seed(7);
        let table = WeightTable::new([1, 2, 3, 4]);
        let all = shares(&table, 40_000, |t| t.sample(|_| false));
        for (share, expected) in all.iter().zip([0.1, 0.2, 0.3, 0.4]) {
            assert!((share - expected).abs() < 0.02, "{all:?}");
        }
        // Skipping the heaviest (40% of the weight) leaves the others in proportion 1:2:3.
        let rest = shares(&table, 40_000, |t| t.sample_avoiding(&[3]));
        for (share, expected) in rest.iter().zip([1.0 / 6.0, 2.0 / 6.0, 3.0 / 6.0, 0.0]) {
            assert!((share - expected).abs() < 0.02, "{rest:?}");
        }
    }

    #[test]
    fn exact_pass_finds_a_light_endpoint_behind_heavy_skipped_ones() {
        let table = WeightTable::new([u32::MAX, u32::MAX, 1]);
        for _ in 0..100 {
            assert_eq!(table.sample_avoiding(&[0, 1]), Some(2));
        }
    }

    #[test]
    fn all_avoided_falls_back_and_empty_is_none() {
        let table = WeightTable::new([1, 1]);
        assert!(table.sample_avoiding(&[0, 1]).is_some());
        assert_eq!(table.sample(|_| true), None);
        assert_eq!(WeightTable::new([]).sample_avoiding(&[]), None);
        assert_eq!(WeightTable::new([]).two(&[]), None);
    }

    #[test]
    fn two_gives_distinct_candidates_when_it_can() {
        let table = WeightTable::new([5, 1]);
        for _ in 0..100 {
            let (a, b) = table.two(&[]).unwrap();
            assert_eq!(b, Some(1 - a));
        }
        assert_eq!(WeightTable::new([3]).two(&[]), Some((0, None)));
        assert_eq!(WeightTable::new([1, 1, 1]).two(&[0, 1]), Some((2, None)));
    }
}
