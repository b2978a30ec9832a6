//! A rule's `retries` as a [`RetryPolicy`], with Istio's defaults.
//!
//! No `retries` at all gives the mesh default ([`RetryPolicy::mesh_default`]); `attempts: 0` (or
//! none) turns retries off. Otherwise the mesh default is the starting point and each field set
//! replaces its part: `attempts`, `perTryTimeout` (`0s`: none), `backoff` (the base interval),
//! and `retryOn`, a comma-separated list of Envoy conditions and HTTP status codes, which
//! replaces both the conditions and the status codes (codes imply `retriable-status-codes`).
//! Conditions the proxy does not know are reported and left out.

use trellis_api::networking::HttpRetry;
use trellis_api::types::Duration;
use trellis_proxy_config::{RetryOn, RetryPolicy};

use crate::rules::Rule;
use crate::warnings::Warnings;

pub(crate) fn policy(rule: &Rule<'_>, warnings: &mut Warnings) -> Option<RetryPolicy> {
    let Some(retries) = &rule.route.retries else {
        return Some(RetryPolicy::mesh_default());
    };
    let path = format!("{}.retries", rule.path);
    let mut warn = |field: &str, message: String| {
        warnings.field(
            "VirtualService",
            rule.source,
            &format!("{path}.{field}"),
            message,
        );
    };
    let HttpRetry {
        attempts,
        per_try_timeout,
        retry_on,
        retry_remote_localities,
        retry_ignore_previous_hosts,
        backoff,
    } = retries;
    let attempts = u32::try_from(attempts.unwrap_or(0)).unwrap_or(0);
    if attempts == 0 {
        return None;
    }
    let mut policy = RetryPolicy {
        attempts,
        ..RetryPolicy::mesh_default()
    };
    if let Some(list) = retry_on.as_deref().filter(|l| !l.trim().is_empty()) {
        policy.retry_on.clear();
        policy.retriable_status_codes.clear();
        for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            if let Ok(code) = item.parse::<u16>() {
                if (100..=599).contains(&code) {
                    policy.retriable_status_codes.insert(code);
                } else {
                    warn(
                        "retryOn",
                        format!("{code} is not an HTTP status code; left out"),
                    );
                }
            } else if let Some(condition) = RetryOn::parse(item) {
                policy.retry_on.insert(condition);
            } else {
                warn(
                    "retryOn",
                    format!("retry condition {item:?} is not supported yet; left out"),
                );
            }
        }
        if !policy.retriable_status_codes.is_empty() {
            policy.retry_on.insert(RetryOn::RetriableStatusCodes);
        }
    }
    policy.per_try_timeout = per_try_timeout.filter(|d| *d != Duration::default());
    if let Some(backoff) = backoff {
        policy.backoff = *backoff;
    }
    if retry_remote_localities.is_some() {
        warn(
            "retryRemoteLocalities",
            "locality-aware retries are not supported yet; ignored".to_owned(),
        );
    }
    if retry_ignore_previous_hosts.is_some() {
        warn(
            "retryIgnorePreviousHosts",
            "not supported yet; ignored".to_owned(),
        );
    }
    Some(policy)
}
