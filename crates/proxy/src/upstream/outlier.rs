//! Outlier detection: endpoints that fail in a row leave balancing for a while (the cluster's
//! [`OutlierDetection`], Envoy's consecutive-errors detector).
//!
//! Each try's outcome is recorded against its endpoint: a response by its status, a connection
//! that failed or reset as 503, a try that timed out as 504. A success resets the endpoint's
//! streaks; the streak that reaches its threshold ejects the endpoint, unless that would take
//! more than the maximum share of the cluster out (one endpoint always may go). An ejection
//! lasts the base ejection time times the number of times the endpoint has been ejected (which
//! drops by one for each interval it stays in), capped; when it is over, the next pick that
//! meets the endpoint puts it back. Ejections and returns are logged and counted
//! ([`Stat::Ejections`], [`Stat::Returns`]).
//!
//! Recording costs two loads per successful try; picking costs one load while no endpoint is
//! ejected. All state is atomics, shared by the workers, as the balancers' is.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use trellis_proxy_config::OutlierDetection;

use super::{ClusterStats, Stat};

/// The outlier state of a cluster's endpoints.
#[derive(Debug)]
pub struct Outliers {
    config: OutlierDetection,
    endpoints: Box<[Health]>,
    /// How many endpoints are ejected now.
    ejected: AtomicUsize,
    epoch: Instant,
}

/// One endpoint's streaks and ejection.
#[derive(Debug, Default)]
struct Health {
    consecutive_5xx: AtomicU32,
    consecutive_gateway: AtomicU32,
    /// Until when (nanoseconds since `epoch`) the endpoint is ejected; 0 when it is not.
    ejected_until: AtomicU64,
    /// The multiplier of its last ejection.
    ejections: AtomicU32,
    /// When it last came back (nanoseconds since `epoch`).
    returned_at: AtomicU64,
}

impl Outliers {
    pub fn new(config: &OutlierDetection, endpoints: usize) -> Self {
        Self {
            config: config.clone(),
            endpoints: (0..endpoints).map(|_| Health::default()).collect(),
            ejected: AtomicUsize::new(0),
            epoch: Instant::now(),
        }
    }

    fn now(&self) -> u64 {
        nanos(crate::clock::now().saturating_duration_since(self.epoch))
    }

    /// Records a try's outcome on endpoint `index` (`status`: the response's, or 503 for a
    /// failed connection, 504 for a try out of time); ejects it when a streak reaches its
    /// threshold.
    pub fn record(
        &self,
        index: usize,
        status: u16,
        address: SocketAddr,
        cluster: &str,
        stats: &ClusterStats,
    ) {
        let Some(health) = self.endpoints.get(index) else {
            return;
        };
        if status < 500 {
            // Loads first: a healthy endpoint's line stays shared by the workers, unwritten.
            for streak in [&health.consecutive_5xx, &health.consecutive_gateway] {
                if streak.load(Ordering::Relaxed) != 0 {
                    streak.store(0, Ordering::Relaxed);
                }
            }
            return;
        }
        let gateway = matches!(status, 502..=504);
        let errors = health.consecutive_5xx.fetch_add(1, Ordering::Relaxed) + 1;
        let gateway_errors = if gateway {
            health.consecutive_gateway.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            health.consecutive_gateway.store(0, Ordering::Relaxed);
            0
        };
        let reached = |threshold: Option<u32>, count: u32| threshold.is_some_and(|t| count >= t);
        if reached(self.config.consecutive_5xx, errors)
            || (gateway && reached(self.config.consecutive_gateway_errors, gateway_errors))
        {
            self.eject(index, address, cluster, stats);
        }
    }

    fn eject(&self, index: usize, address: SocketAddr, cluster: &str, stats: &ClusterStats) {
        let health = &self.endpoints[index];
        if health.ejected_until.load(Ordering::Relaxed) != 0 {
            return;
        }
        let ejected = self.ejected.load(Ordering::Relaxed);
        let allowed = self.endpoints.len() * self.config.max_ejection_percent as usize / 100;
        if ejected > 0 && ejected >= allowed {
            tracing::debug!(cluster, endpoint = %address, ejected, "outlier not ejected: at the maximum share");
            return;
        }
        let now = self.now();
        let interval = nanos(self.config.interval.as_std()).max(1);
        let stayed = now.saturating_sub(health.returned_at.load(Ordering::Relaxed)) / interval;
        let multiplier = health
            .ejections
            .load(Ordering::Relaxed)
            .saturating_sub(u32::try_from(stayed).unwrap_or(u32::MAX))
            + 1;
        let base = self.config.base_ejection_time.as_std();
        let duration = base
            .saturating_mul(multiplier)
            .min(OutlierDetection::MAX_EJECTION_TIME.max(base));
        let until = now.saturating_add(nanos(duration)).max(1);
        if health
            .ejected_until
            .compare_exchange(0, until, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return; // another worker ejected it just now
        }
        health.ejections.store(multiplier, Ordering::Relaxed);
        health.consecutive_5xx.store(0, Ordering::Relaxed);
        health.consecutive_gateway.store(0, Ordering::Relaxed);
        self.ejected.fetch_add(1, Ordering::Relaxed);
        stats.bump(Stat::Ejections);
        tracing::info!(
            cluster,
            endpoint = %address,
            ejections = multiplier,
            seconds = duration.as_secs_f64(),
            "outlier ejected"
        );
    }

    /// Whether no endpoint is ejected (nothing for a pick to check).
    pub fn none_ejected(&self) -> bool {
        self.ejected.load(Ordering::Relaxed) == 0
    }

    /// Whether so few endpoints are healthy that balancing should ignore ejections.
    pub fn panicking(&self) -> bool {
        let total = self.endpoints.len();
        let healthy = total.saturating_sub(self.ejected.load(Ordering::Relaxed));
        healthy * 100 < total * self.config.min_health_percent as usize
    }

    /// Whether endpoint `index` is out of balancing now; one whose ejection is over is put
    /// back here.
    pub fn is_ejected(
        &self,
        index: usize,
        address: SocketAddr,
        cluster: &str,
        stats: &ClusterStats,
    ) -> bool {
        let Some(health) = self.endpoints.get(index) else {
            return false;
        };
        let until = health.ejected_until.load(Ordering::Relaxed);
        if until == 0 {
            return false;
        }
        let now = self.now();
        if now < until {
            return true;
        }
        if health
            .ejected_until
            .compare_exchange(until, 0, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            health.returned_at.store(now, Ordering::Relaxed);
            self.ejected.fetch_sub(1, Ordering::Relaxed);
            stats.bump(Stat::Returns);
            tracing::info!(cluster, endpoint = %address, "outlier returned");
        }
        false
    }

    /// How many times endpoint `index` has been ejected in its current run (for `/clusters`).
    pub fn ejections(&self, index: usize) -> u32 {
        self.endpoints
            .get(index)
            .map_or(0, |h| h.ejections.load(Ordering::Relaxed))
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(base_millis: u64) -> OutlierDetection {
        OutlierDetection {
            consecutive_5xx: Some(5),
            consecutive_gateway_errors: Some(3),
            interval: trellis_proxy_config::Duration::from_millis(60_000),
            base_ejection_time: trellis_proxy_config::Duration::from_millis(base_millis),
            max_ejection_percent: 10,
            min_health_percent: 0,
        }
    }

    const ADDRESS: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 80);

    struct Cluster {
        outliers: Outliers,
        stats: ClusterStats,
    }

    impl Cluster {
        fn new(config: OutlierDetection, endpoints: usize) -> Self {
            Self {
                outliers: Outliers::new(&config, endpoints),
                stats: ClusterStats::default(),
            }
        }

        fn record(&self, index: usize, statuses: &[u16]) {
            for status in statuses {
                self.outliers
                    .record(index, *status, ADDRESS, "c", &self.stats);
            }
        }

        fn ejected(&self, index: usize) -> bool {
            self.outliers.is_ejected(index, ADDRESS, "c", &self.stats)
        }
    }

    #[test]
    fn a_streak_of_5xx_ejects_and_a_success_breaks_it() {
        let c = Cluster::new(config(60_000), 3);
        c.record(0, &[500, 500, 500, 500, 200, 500, 500, 500, 500]);
        assert!(!c.ejected(0), "four in a row, twice");
        assert!(c.outliers.none_ejected());
        c.record(0, &[500]);
        assert!(c.ejected(0));
        assert!(!c.ejected(1));
        assert_eq!(c.stats.get(Stat::Ejections), 1);
        assert_eq!(c.outliers.ejections(0), 1);
    }

    #[test]
    fn gateway_errors_have_their_own_streak_which_other_5xx_break() {
        let c = Cluster::new(
            OutlierDetection {
                consecutive_5xx: None,
                max_ejection_percent: 100,
                ..config(60_000)
            },
            3,
        );
        c.record(0, &[503, 502, 500, 504, 503]);
        assert!(!c.ejected(0), "a 500 broke the gateway streak");
        c.record(0, &[502]);
        assert!(c.ejected(0), "three gateway errors in a row");
        c.record(1, &[500, 500, 500, 500, 500, 500]);
        assert!(
            !c.ejected(1),
            "5xx alone do not eject when only gateway errors count"
        );
    }

    #[test]
    fn at_most_the_maximum_share_is_ejected_but_always_one() {
        let c = Cluster::new(config(60_000), 3);
        c.record(0, &[503; 5]);
        c.record(1, &[503; 5]);
        assert!(
            c.ejected(0),
            "10% of 3 is no endpoint, but one always may go"
        );
        assert!(!c.ejected(1));

        let c = Cluster::new(
            OutlierDetection {
                max_ejection_percent: 20,
                ..config(60_000)
            },
            10,
        );
        for index in 0..4 {
            c.record(index, &[503; 5]);
        }
        let ejected = (0..10).filter(|i| c.ejected(*i)).count();
        assert_eq!(ejected, 2);
    }

    #[test]
    fn an_ejection_ends_and_the_next_lasts_longer() {
        let c = Cluster::new(config(30), 3);
        c.record(0, &[503; 5]);
        assert!(c.ejected(0));
        let started = Instant::now();
        while c.ejected(0) {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "never returned"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(c.stats.get(Stat::Returns), 1);
        assert!(c.outliers.none_ejected());
        // Ejected again at once: the second time, twice the base.
        c.record(0, &[503; 5]);
        assert!(c.ejected(0));
        assert_eq!(c.outliers.ejections(0), 2);
    }

    #[test]
    fn too_few_healthy_endpoints_is_panic() {
        let c = Cluster::new(
            OutlierDetection {
                max_ejection_percent: 100,
                min_health_percent: 60,
                ..config(60_000)
            },
            2,
        );
        assert!(!c.outliers.panicking());
        c.record(0, &[503; 5]);
        assert!(c.ejected(0));
        assert!(c.outliers.panicking(), "50% healthy, below 60%");
        let never = Cluster::new(config(60_000), 1);
        never.record(0, &[503; 5]);
        assert!(!never.outliers.panicking(), "a threshold of 0 never panics");
    }
}
