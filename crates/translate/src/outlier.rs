//! A DestinationRule's `outlierDetection` as a cluster's [`OutlierDetection`], with the values
//! Istio gives Envoy:
//!
//! - `consecutive5xxErrors` ejects on that many 5xx in a row; unset, Envoy's default of 5
//!   applies; 0 turns it off.
//! - `consecutiveGatewayErrors` ejects on that many 502/503/504 in a row; unset or 0, off.
//! - The deprecated `consecutiveErrors` (above 0) means gateway errors only, that many.
//! - `interval` 10 s, `baseEjectionTime` 30 s and `maxEjectionPercent` 10 when unset;
//! - `minHealthPercent` is the panic threshold, 0 (never) when unset, as Istio sets it.
//!
//! `consecutiveLocalOriginFailures`, `splitExternalLocalOriginErrors` and
//! `outlierDetectionHttpErrorCodes` are reported and left out: failures of the connection count
//! as gateway errors (503), as Envoy counts them without the split.

use trellis_api::networking::OutlierDetection as IstioOutlierDetection;
use trellis_api::types::Duration;
use trellis_proxy_config::OutlierDetection;

use crate::destination_rules::Sourced;
use crate::warnings::Warnings;

const DEFAULT_CONSECUTIVE_5XX: u32 = 5;
const DEFAULT_INTERVAL_MILLIS: u64 = 10_000;
const DEFAULT_BASE_EJECTION_MILLIS: u64 = 30_000;
const DEFAULT_MAX_EJECTION_PERCENT: u32 = 10;

pub(crate) fn translate(
    settings: Option<&Sourced<'_, IstioOutlierDetection>>,
    warnings: &mut Warnings,
) -> Option<OutlierDetection> {
    let sourced = settings?;
    let od = sourced.value;
    for (field, present) in [
        (
            "consecutiveLocalOriginFailures",
            od.consecutive_local_origin_failures.is_some(),
        ),
        (
            "splitExternalLocalOriginErrors",
            od.split_external_local_origin_errors == Some(true),
        ),
        (
            "outlierDetectionHttpErrorCodes",
            !od.outlier_detection_http_error_codes.is_empty(),
        ),
    ] {
        if present {
            sourced.unsupported(field, warnings);
        }
    }
    let percent = |value: Option<i32>| value.map(|v| v.clamp(0, 100) as u32);
    let (consecutive_5xx, consecutive_gateway_errors) = match od.consecutive_errors {
        Some(errors) if errors > 0 => (None, Some(errors as u32)),
        _ => (
            Some(od.consecutive_5xx_errors.unwrap_or(DEFAULT_CONSECUTIVE_5XX)).filter(|n| *n > 0),
            od.consecutive_gateway_errors.filter(|n| *n > 0),
        ),
    };
    Some(OutlierDetection {
        consecutive_5xx,
        consecutive_gateway_errors,
        interval: od
            .interval
            .unwrap_or(Duration::from_millis(DEFAULT_INTERVAL_MILLIS)),
        base_ejection_time: od
            .base_ejection_time
            .unwrap_or(Duration::from_millis(DEFAULT_BASE_EJECTION_MILLIS)),
        max_ejection_percent: percent(od.max_ejection_percent)
            .filter(|p| *p > 0)
            .unwrap_or(DEFAULT_MAX_EJECTION_PERCENT),
        min_health_percent: percent(od.min_health_percent).unwrap_or(0),
    })
}
