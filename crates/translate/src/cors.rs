//! A rule's `corsPolicy` as a route's [`CorsPolicy`]: the allowed origins (`allowOrigins`, and
//! the deprecated exact `allowOrigin`), methods, headers, exposed headers, `maxAge` and
//! `allowCredentials` carried over; `unmatchedPreflights: IGNORE` keeps preflights from other
//! origins from going upstream (Istio's default, `FORWARD`, sends them on).

use trellis_api::networking::UnmatchedPreflights;
use trellis_proxy_config::{CorsPolicy, StringMatch};

use crate::rules::Rule;

pub(crate) fn policy(rule: &Rule<'_>) -> Option<CorsPolicy> {
    let cors = rule.route.cors_policy.as_ref()?;
    let allow_origins = cors
        .allow_origins
        .iter()
        .cloned()
        .chain(cors.allow_origin.iter().cloned().map(StringMatch::Exact))
        .collect();
    Some(CorsPolicy {
        allow_origins,
        allow_methods: cors.allow_methods.clone(),
        allow_headers: cors.allow_headers.clone(),
        expose_headers: cors.expose_headers.clone(),
        max_age: cors.max_age,
        allow_credentials: cors.allow_credentials == Some(true),
        forward_unmatched_preflights: cors.unmatched_preflights
            != Some(UnmatchedPreflights::Ignore),
    })
}
