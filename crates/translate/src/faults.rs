//! A rule's `fault` as a [`Fault`]: a fixed delay and an abort (an HTTP status or a gRPC status
//! by name), each with its share of requests.
//!
//! A share comes from `percentage.value`, or for delays from the deprecated whole-number
//! `percent`; with neither, the fault falls on no request, as Istio's does (Envoy's unset
//! fraction is zero), and the translation says so. Validation has already refused what the
//! proxy cannot inject (`exponentialDelay`, `http2Error`).

use trellis_api::networking::HttpFaultInjection;
use trellis_proxy_config::{AbortStatus, Fault, FaultAbort, FaultDelay};

use crate::rules::Rule;
use crate::warnings::Warnings;

pub(crate) fn fault(rule: &Rule<'_>, warnings: &mut Warnings) -> Option<Fault> {
    let HttpFaultInjection { delay, abort } = rule.route.fault.as_ref()?;
    let mut unset_share = |field: &str| {
        warnings.field(
            "VirtualService",
            rule.source,
            &format!("{}.fault.{field}", rule.path),
            "has no percentage, so (as in Istio) it falls on no request; \
             set percentage.value (100 for every request)",
        );
    };
    let delay = delay.as_ref().and_then(|delay| {
        let fixed = delay.fixed_delay?;
        let percent = match (&delay.percentage, delay.percent) {
            (Some(percentage), _) => percentage.get(),
            (None, Some(percent)) => f64::from(percent.clamp(0, 100)),
            (None, None) => {
                unset_share("delay");
                0.0
            }
        };
        Some(FaultDelay { fixed, percent })
    });
    let abort = abort.as_ref().and_then(|abort| {
        let status = match (abort.http_status, abort.grpc_code()) {
            (Some(status), _) => AbortStatus::Http(u16::try_from(status).ok()?),
            (None, Some(code)) => AbortStatus::Grpc(code),
            (None, None) => return None,
        };
        let percent = match &abort.percentage {
            Some(percentage) => percentage.get(),
            None => {
                unset_share("abort");
                0.0
            }
        };
        Some(FaultAbort { status, percent })
    });
    (delay.is_some() || abort.is_some()).then_some(Fault { delay, abort })
}
