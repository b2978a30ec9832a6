//! `security.istio.io`: who a workload's peers are (`PeerAuthentication`), which JSON Web
//! Tokens its requests may carry (`RequestAuthentication`), and who may call it
//! (`AuthorizationPolicy`).
//!
//! The attachment rules every policy kind shares (a `selector` or `targetRef(s)`, and the
//! `istio.io/dry-run` annotation that only authorization policies honour) live here too, so the
//! telemetry and extension kinds, which attach the same way, report them in the same words.

mod authorization_policy;
mod peer_authentication;
mod request_authentication;
pub(crate) mod url;

pub use authorization_policy::*;
pub use peer_authentication::*;
pub use request_authentication::*;

use crate::types::{PolicyTargetReference, WorkloadSelector, validate_policy_attachment};
use crate::validate::Validator;

/// Checks how a policy picks its workloads: at most one of `selector`, `targetRef` and
/// `targetRefs`, each well formed, and a warning for a selector without labels (it selects every
/// workload of the namespace, which is rarely what was meant).
pub(crate) fn validate_attachment(
    v: &mut Validator,
    selector: Option<&WorkloadSelector>,
    target_ref: Option<&PolicyTargetReference>,
    target_refs: &[PolicyTargetReference],
) {
    validate_policy_attachment(v, "selector", selector, target_ref, target_refs);
    if target_refs.len() > 16 {
        v.error_at(
            "targetRefs",
            format!(
                "at most 16 targets may be listed (found {})",
                target_refs.len()
            ),
        );
    }
    if selector.is_some_and(|s| s.match_labels.is_empty()) {
        v.warn_at(
            "selector",
            "the selector has no labels, so it selects every workload in the namespace; remove it or add matchLabels",
        );
    }
}
