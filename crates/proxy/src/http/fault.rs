//! Fault injection, a route's [`Fault`]: a delay before the request goes on, and an abort that
//! answers it in place of its destination. Each falls on its own share of requests, drawn
//! afresh for every request, as Envoy's fault filter does; a request can be both delayed and
//! aborted. An aborted request never reaches a cluster, so no retry policy applies to it.
//! Response flags `DI` (delayed) and `FI` (aborted).

use http::Response;
use trellis_proxy_config::{AbortStatus, Fault};

use super::{Outcome, local};
use crate::body::Body;
use crate::telemetry::ResponseFlags;

/// What an injected abort says (Envoy's words, which tools search logs for).
const ABORTED: &str = "fault filter abort";

/// Applies `fault` to a request: waits out its delay when the delay falls on the request, and
/// returns the answer when the abort does.
pub(super) async fn inject(fault: &Fault, outcome: &mut Outcome) -> Option<Response<Body>> {
    if let Some(delay) = &fault.delay
        && falls_on_this_request(delay.percent)
    {
        outcome.flags.insert(ResponseFlags::DELAY_INJECTED);
        tokio::time::sleep(delay.fixed.as_std()).await;
    }
    let abort = fault
        .abort
        .as_ref()
        .filter(|abort| falls_on_this_request(abort.percent))?;
    let status = match abort.status {
        AbortStatus::Grpc(code) if outcome.grpc => {
            outcome.flags.insert(ResponseFlags::FAULT_INJECTED);
            return Some(local::grpc_reply(code, ABORTED));
        }
        AbortStatus::Grpc(code) => local::http_status(code),
        AbortStatus::Http(status) => {
            http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::SERVICE_UNAVAILABLE)
        }
    };
    Some(outcome.fail(ResponseFlags::FAULT_INJECTED, status, ABORTED))
}

/// Whether a fault with this share (0 to 100) falls on the request at hand.
fn falls_on_this_request(percent: f64) -> bool {
    percent >= 100.0 || (percent > 0.0 && fastrand::f64() * 100.0 < percent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_hold() {
        fastrand::seed(7);
        assert!((0..1000).all(|_| falls_on_this_request(100.0)));
        assert!(!(0..1000).any(|_| falls_on_this_request(0.0)));
        let hits = (0..100_000).filter(|_| falls_on_this_request(12.5)).count();
        assert!((12_000..=13_000).contains(&hits), "{hits}");
    }
}
