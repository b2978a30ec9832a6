//! A DestinationRule's `loadBalancer` as a cluster's [`LoadBalancer`].
//!
//! With no setting, or `simple: UNSPECIFIED`, clusters use least request, Istio's default.
//! `LEAST_CONN` is Istio's old name for `LEAST_REQUEST`. `PASSTHROUGH` (send to the address the
//! client dialled) has no meaning at a gateway and gives round robin, with a warning.
//! `consistentHash` gives a ring hash (or Maglev when `maglev` is set) over the HTTP header,
//! cookie, source IP or query parameter it names; `ringHash.minimumRingSize` (or the deprecated
//! `minimumRingSize`) and `maglev.tableSize` are carried over.

use trellis_api::networking::{ConsistentHashLb, LoadBalancerSettings, SimpleLb};
use trellis_proxy_config::{HashKey, LoadBalancer};

use crate::destination_rules::Sourced;
use crate::warnings::Warnings;

/// Istio's default when no rule chooses: least request (power of two choices).
pub(crate) const DEFAULT: LoadBalancer = LoadBalancer::LeastRequest;

pub(crate) fn translate(
    settings: Option<&Sourced<'_, LoadBalancerSettings>>,
    warnings: &mut Warnings,
) -> LoadBalancer {
    let Some(sourced) = settings else {
        return DEFAULT;
    };
    let lb = sourced.value;
    for (field, present) in [
        ("localityLbSetting", lb.locality_lb_setting.is_some()),
        ("zoneAwareLbSetting", lb.zone_aware_lb_setting.is_some()),
        ("warmupDurationSecs", lb.warmup_duration_secs.is_some()),
        ("warmup", lb.warmup.is_some()),
        ("backendUtilization", lb.backend_utilization.is_some()),
    ] {
        if present {
            sourced.unsupported(field, warnings);
        }
    }
    if let Some(hash) = &lb.consistent_hash {
        return consistent_hash(hash, sourced, warnings);
    }
    match lb.simple {
        None | Some(SimpleLb::Unspecified) => DEFAULT,
        Some(SimpleLb::RoundRobin) => LoadBalancer::RoundRobin,
        Some(SimpleLb::LeastRequest | SimpleLb::LeastConn) => LoadBalancer::LeastRequest,
        Some(SimpleLb::Random) => LoadBalancer::Random,
        Some(SimpleLb::Passthrough) => {
            warnings.field(
                "DestinationRule",
                sourced.rule,
                &format!("{}.simple", sourced.path),
                "PASSTHROUGH (to the address the client dialled) does not apply here; round robin is used",
            );
            LoadBalancer::RoundRobin
        }
    }
}

fn consistent_hash(
    hash: &ConsistentHashLb,
    sourced: &Sourced<'_, LoadBalancerSettings>,
    warnings: &mut Warnings,
) -> LoadBalancer {
    let key = if let Some(header) = &hash.http_header_name {
        HashKey::Header(header.to_ascii_lowercase())
    } else if let Some(cookie) = &hash.http_cookie {
        if !cookie.attributes.is_empty() {
            sourced.unsupported("consistentHash.httpCookie.attributes", warnings);
        }
        HashKey::Cookie {
            name: cookie.name.clone(),
            path: cookie.path.clone(),
            ttl: cookie.ttl,
        }
    } else if hash.use_source_ip == Some(true) {
        HashKey::SourceIp
    } else if let Some(parameter) = &hash.http_query_parameter_name {
        HashKey::QueryParameter(parameter.clone())
    } else {
        warnings.field(
            "DestinationRule",
            sourced.rule,
            &format!("{}.consistentHash", sourced.path),
            "names nothing to hash on; the default load balancer is used",
        );
        return DEFAULT;
    };
    match (&hash.maglev, &hash.ring_hash) {
        (Some(maglev), _) => LoadBalancer::Maglev {
            key,
            table_size: maglev.table_size,
        },
        (None, Some(ring)) => LoadBalancer::RingHash {
            key,
            minimum_ring_size: ring.minimum_ring_size,
        },
        (None, None) => LoadBalancer::RingHash {
            key,
            minimum_ring_size: hash.minimum_ring_size,
        },
    }
}
