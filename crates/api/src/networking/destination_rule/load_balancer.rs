//! How a traffic policy spreads requests over endpoints: a simple algorithm, consistent hashing
//! or backend utilization, plus locality-aware and zone-aware routing and slow-start warmup.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::check_proxy_duration;
use crate::types::{Duration, Percentage};
use crate::validate::{Validate, Validator};

/// Maglev lookup tables must be smaller than this (and prime).
pub const MAGLEV_TABLE_SIZE_LIMIT: u64 = 5_000_011;

/// Node labels that name a workload's region, zone and subzone.
pub const TOPOLOGY_LABELS: [&str; 3] = [
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "topology.istio.io/subzone",
];

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simple: Option<SimpleLb>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistent_hash: Option<ConsistentHashLb>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_utilization: Option<BackendUtilizationLb>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality_lb_setting: Option<LocalityLoadBalancerSetting>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone_aware_lb_setting: Option<ZoneAwareLoadBalancerSetting>,
    /// Deprecated in favour of `warmup`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_duration_secs: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup: Option<WarmupConfiguration>,
}

/// Istio's `LoadBalancerSettings.SimpleLB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SimpleLb {
    Unspecified,
    LeastConn,
    Random,
    Passthrough,
    RoundRobin,
    LeastRequest,
}

/// Istio's `LoadBalancerSettings.ConsistentHashLB`: soft session affinity. The hash key is
/// one of the first four fields, the algorithm one of `ringHash` and `maglev`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsistentHashLb {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_header_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_cookie: Option<HttpCookie>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_source_ip: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_query_parameter_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring_hash: Option<RingHash>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maglev: Option<MagLev>,
    /// Deprecated: use `ringHash.minimumRingSize`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_ring_size: Option<u64>,
}

/// A cookie to hash on; the proxy creates it when the request has none.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpCookie {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<Duration>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<CookieAttribute>,
}

/// An attribute of a generated hash cookie, such as `SameSite=Strict`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CookieAttribute {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RingHash {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_ring_size: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MagLev {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_size: Option<u64>,
}

/// Weighting endpoints by the load they report (ORCA metrics).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendUtilizationLb {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_update_period: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_expiration_period: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_stabilization_period: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_utilization_penalty_percent: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metric_names_for_computing_utilization: Vec<String>,
}

/// Istio's `LocalityLoadBalancerSetting`: weights across localities, or failover order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalityLoadBalancerSetting {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub distribute: Vec<LocalityDistribute>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failover: Vec<LocalityFailover>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failover_priority: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// Istio's `LocalityLoadBalancerSetting.Distribute`: where traffic from `from` goes, by weight.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalityDistribute {
    #[serde(default)]
    pub from: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub to: BTreeMap<String, u32>,
}

/// The region traffic fails over to when a region's endpoints are unhealthy (used by both
/// locality and zone-aware settings, whose failover messages have the same fields).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalityFailover {
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
}

/// Istio's `ZoneAwareLoadBalancerSetting`: the proxy's own zone-aware routing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ZoneAwareLoadBalancerSetting {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failover: Vec<LocalityFailover>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failover_priority: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_cluster_size: Option<u32>,
}

/// Slow start: new endpoints get a growing share of traffic over `duration`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WarmupConfiguration {
    pub duration: Duration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_percent: Option<Percentage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggression: Option<f64>,
}

impl LoadBalancerSettings {
    /// Checks the settings; failover is only safe when the policy has outlier detection.
    pub(super) fn check(&self, has_outlier_detection: bool, v: &mut Validator) {
        v.at_most_one(&[
            ("simple", self.simple.is_some()),
            ("consistentHash", self.consistent_hash.is_some()),
            ("backendUtilization", self.backend_utilization.is_some()),
        ]);
        v.nested("consistentHash", &self.consistent_hash);
        v.at_most_one(&[
            ("localityLbSetting", self.locality_lb_setting.is_some()),
            ("zoneAwareLbSetting", self.zone_aware_lb_setting.is_some()),
        ]);
        if let Some(locality) = &self.locality_lb_setting {
            v.at("localityLbSetting", |v| {
                locality.check(has_outlier_detection, v)
            });
        }
        if let Some(zone_aware) = &self.zone_aware_lb_setting {
            v.at("zoneAwareLbSetting", |v| {
                zone_aware.check(has_outlier_detection, v)
            });
        }
        let one_ms = std::time::Duration::from_millis(1);
        v.min_duration(
            "warmupDurationSecs",
            self.warmup_duration_secs.map(|d| d.as_std()),
            one_ms,
        );
        v.nested("warmup", &self.warmup);
    }
}

impl Validate for ConsistentHashLb {
    fn validate(&self, v: &mut Validator) {
        v.at_most_one(&[
            ("httpHeaderName", self.http_header_name.is_some()),
            ("httpCookie", self.http_cookie.is_some()),
            ("useSourceIp", self.use_source_ip.is_some()),
            (
                "httpQueryParameterName",
                self.http_query_parameter_name.is_some(),
            ),
        ]);
        v.at_most_one(&[
            ("ringHash", self.ring_hash.is_some()),
            ("maglev", self.maglev.is_some()),
        ]);
        v.nested("httpCookie", &self.http_cookie);
        if self.minimum_ring_size.is_some_and(|n| n != 0) {
            if self.ring_hash.is_some() || self.maglev.is_some() {
                v.error_at(
                    "minimumRingSize",
                    "cannot be combined with ringHash or maglev; use ringHash.minimumRingSize",
                );
            } else {
                v.warn_at(
                    "minimumRingSize",
                    "minimumRingSize is deprecated: use ringHash.minimumRingSize",
                );
            }
        }
        if let Some(maglev) = &self.maglev {
            v.at("maglev", |v| match maglev.table_size.unwrap_or(0) {
                0 => v.error_at(
                    "tableSize",
                    "is required for maglev (a prime number such as 65537)",
                ),
                n if n >= MAGLEV_TABLE_SIZE_LIMIT => v.error_at(
                    "tableSize",
                    format!("must be less than {MAGLEV_TABLE_SIZE_LIMIT} (got {n})"),
                ),
                n if !is_prime(n) => {
                    v.error_at("tableSize", format!("must be a prime number (got {n})"))
                }
                _ => {}
            });
        }
    }
}

/// Primality the way the proxy tests a Maglev table size (trial division).
fn is_prime(n: u64) -> bool {
    if n < 4 {
        return n != 0;
    }
    if n.is_multiple_of(2) {
        return false;
    }
    let mut factor = 3;
    while factor * factor <= n {
        if n.is_multiple_of(factor) {
            return false;
        }
        factor += 2;
    }
    true
}

impl Validate for HttpCookie {
    fn validate(&self, v: &mut Validator) {
        if self.name.is_empty() {
            v.error_at("name", "a hash cookie needs a name");
        }
        let mut seen = std::collections::HashSet::new();
        v.each("attributes", &self.attributes, |v, attribute| {
            if attribute.name.is_empty() {
                v.error_at("name", "a cookie attribute needs a name");
            } else if !seen.insert(attribute.name.as_str()) {
                v.error_at(
                    "name",
                    format!("cookie attribute {:?} is listed twice", attribute.name),
                );
            }
        });
    }
}

impl Validate for WarmupConfiguration {
    fn validate(&self, v: &mut Validator) {
        check_proxy_duration(v, "duration", Some(&self.duration));
        if let Some(aggression) = self.aggression.filter(|a| *a <= 0.0 || !a.is_finite()) {
            v.error_at(
                "aggression",
                format!("must be greater than 0 (got {aggression})"),
            );
        }
    }
}

fn check_failover(failover: &[LocalityFailover], v: &mut Validator) {
    v.each("failover", failover, |v, entry| {
        if entry.from == entry.to {
            v.error(format!(
                "failover must go to a different region (from and to are both {:?})",
                entry.from
            ));
        }
        for (key, value) in [("from", &entry.from), ("to", &entry.to)] {
            if value.contains('/') {
                v.error_at(
                    key,
                    format!("{value:?}: failover names regions only, without zone or subzone"),
                );
            }
            if value.contains('*') {
                v.error_at(
                    key,
                    format!("{value:?}: a failover region cannot contain the wildcard '*'"),
                );
            }
        }
    });
}

impl LocalityLoadBalancerSetting {
    fn check(&self, has_outlier_detection: bool, v: &mut Validator) {
        if !self.distribute.is_empty() && !self.failover.is_empty() {
            v.error("distribute and failover cannot both be set");
        }
        if !self.failover.is_empty() {
            v.each("failoverPriority", &self.failover_priority, |v, label| {
                if TOPOLOGY_LABELS.contains(&label.as_str()) {
                    v.error(format!("the topology label {label} cannot be used together with failover; remove one of them"));
                }
            });
        }
        let sources: Vec<&str> = self.distribute.iter().map(|d| d.from.as_str()).collect();
        let mut source_problems = locality_problems(&sources).into_iter();
        v.each("distribute", &self.distribute, |v, distribute| {
            if let Some(problem) = source_problems.next().flatten() {
                v.error_at("from", problem);
            }
            v.at("to", |v| check_distribute_targets(&distribute.to, v));
        });
        if (!self.failover.is_empty() || !self.failover_priority.is_empty())
            && !has_outlier_detection
        {
            v.warn("failover needs outlierDetection in the same traffic policy to notice unhealthy endpoints");
        }
        check_failover(&self.failover, v);
    }
}

/// The weights of one `distribute` entry: each 1-100, adding up to 100, localities distinct.
fn check_distribute_targets(to: &BTreeMap<String, u32>, v: &mut Validator) {
    let mut in_range = true;
    for (locality, weight) in to {
        if !(1..=100).contains(weight) {
            v.error_at(
                locality,
                format!("weight must be between 1 and 100 (got {weight})"),
            );
            in_range = false;
        }
    }
    let total: u32 = to.values().sum();
    if in_range && total != 100 {
        v.error(format!(
            "weights must add up to 100 (they add up to {total})"
        ));
    }
    let targets: Vec<&str> = to.keys().map(String::as_str).collect();
    for (locality, problem) in targets.iter().zip(locality_problems(&targets)) {
        if let Some(problem) = problem {
            v.error_at(locality, problem);
        }
    }
}

/// The problem with each of a list of `region/zone/subzone` localities, if any: empty parts, a
/// misplaced `*`, or overlap with a locality listed before it. As in the mesh's own check, a
/// broader locality may follow narrower ones only through an explicit wildcard (`us-east/*`
/// after `us-east/zone1`), so a catch-all can come last.
fn locality_problems(localities: &[&str]) -> Vec<Option<String>> {
    // region -> zone -> subzones; "*" marks a level that is covered whole.
    let mut seen: BTreeMap<&str, BTreeMap<&str, BTreeSet<&str>>> = BTreeMap::new();
    localities
        .iter()
        .map(|&locality| {
            let stars = locality.matches('*').count();
            if stars > 1 || (stars == 1 && !locality.ends_with('*')) {
                return Some(format!(
                    "locality {locality:?}: the wildcard '*' may appear once, at the end"
                ));
            }
            let overlap = || {
                Some(format!(
                    "locality {locality:?} overlaps a locality listed before it"
                ))
            };
            if seen.contains_key("*") {
                return overlap();
            }
            let parts: Vec<&str> = locality.splitn(3, '/').collect();
            if parts.iter().any(|p| p.is_empty()) {
                return Some(format!(
                    "locality {locality:?}: region, zone and subzone cannot be empty"
                ));
            }
            let whole = || BTreeSet::from(["*"]);
            match parts[..] {
                [region] => {
                    if seen.contains_key(region) {
                        return overlap();
                    }
                    seen.insert(region, BTreeMap::from([("*", whole())]));
                }
                [region, zone] => {
                    let zones = seen.entry(region).or_default();
                    if zones.contains_key("*") || zones.contains_key(zone) {
                        return overlap();
                    }
                    zones.insert(zone, whole());
                }
                [region, zone, subzone] => {
                    let zones = seen.entry(region).or_default();
                    if zones.contains_key("*") {
                        return overlap();
                    }
                    let subzones = zones.entry(zone).or_default();
                    if subzones.contains("*") || !subzones.insert(subzone) {
                        return overlap();
                    }
                }
                _ => unreachable!("splitn(3) yields one to three parts"),
            }
            None
        })
        .collect()
}

impl ZoneAwareLoadBalancerSetting {
    fn check(&self, has_outlier_detection: bool, v: &mut Validator) {
        v.each("failoverPriority", &self.failover_priority, |v, label| {
            if TOPOLOGY_LABELS.contains(&label.as_str()) {
                v.error(format!(
                    "the topology label {label} cannot be used here: zone-aware routing already orders by region, zone and subzone"
                ));
            }
        });
        if (!self.failover.is_empty() || !self.failover_priority.is_empty())
            && !has_outlier_detection
        {
            v.warn("failover needs outlierDetection in the same traffic policy to notice unhealthy endpoints");
        }
        check_failover(&self.failover, v);
        if self.min_cluster_size == Some(0) {
            v.error_at("minClusterSize", "must be at least 1");
        }
    }
}
