//! Local rate limiting, which Istio leaves to EnvoyFilters, set here with two annotations on a
//! VirtualService:
//!
//! - `ratelimit.trellis.io/requests-per-second`: the rate its routes' requests may keep up
//!   (a positive number; fractions allowed, `0.5` is one every two seconds);
//! - `ratelimit.trellis.io/burst`: how many may come at once (a whole number, at least 1;
//!   the rate rounded up when unset).
//!
//! Every route of the VirtualService, at every gateway it is bound to, draws from one bucket
//! named after it. A malformed value is reported with the annotation's name and the limit left
//! out.

use trellis_api::ObjectMeta;
use trellis_proxy_config::RateLimit;

use crate::rules::Rule;
use crate::warnings::Warnings;

pub(crate) const RATE_ANNOTATION: &str = "ratelimit.trellis.io/requests-per-second";
pub(crate) const BURST_ANNOTATION: &str = "ratelimit.trellis.io/burst";

pub(crate) fn rate_limit(rule: &Rule<'_>, warnings: &mut Warnings) -> Option<RateLimit> {
    let meta: &ObjectMeta = rule.source;
    let rate = meta.annotations.get(RATE_ANNOTATION)?;
    let mut warn = |annotation: &str, message: String| {
        warnings.field(
            "VirtualService",
            meta,
            &format!("metadata.annotations[{annotation}]"),
            message,
        );
    };
    let Some(requests_per_second) = rate
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|r| r.is_finite() && *r > 0.0)
    else {
        warn(
            RATE_ANNOTATION,
            format!("{rate:?} is not a positive number of requests per second; no rate limit"),
        );
        return None;
    };
    let burst = match meta.annotations.get(BURST_ANNOTATION) {
        None => requests_per_second.ceil().min(f64::from(u32::MAX)) as u32,
        Some(burst) => match burst.trim().parse::<u32>().ok().filter(|b| *b > 0) {
            Some(burst) => burst,
            None => {
                warn(
                    BURST_ANNOTATION,
                    format!("{burst:?} is not a whole number of at least 1; no rate limit"),
                );
                return None;
            }
        },
    };
    Some(RateLimit {
        bucket: format!("VirtualService {}", meta.full_name()),
        requests_per_second,
        burst,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_warned, http_fixture, star_routes, translate};

    /// The routes of a VirtualService with these annotations.
    fn annotated(annotations: &str) -> crate::Translation {
        let rules = "- match: [{uri: {prefix: /a}}]\n  route: [{destination: {host: a}}]\n\
                     - route: [{destination: {host: b}}]";
        translate(&http_fixture(rules).replace(
            "metadata: {name: vs, namespace: default}",
            &format!("metadata: {{name: vs, namespace: default, annotations: {annotations}}}"),
        ))
    }

    #[test]
    fn every_route_of_the_virtual_service_shares_one_bucket() {
        let t = annotated(&format!(
            "{{{RATE_ANNOTATION}: \"2.5\", {BURST_ANNOTATION}: \"10\"}}"
        ));
        let limit = RateLimit {
            bucket: "VirtualService default/vs".into(),
            requests_per_second: 2.5,
            burst: 10,
        };
        let routes = star_routes(&t);
        assert_eq!(routes.len(), 2);
        for route in &routes {
            assert_eq!(route.rate_limit, Some(limit.clone()));
        }
        let t = annotated(&format!("{{{RATE_ANNOTATION}: \"2.5\"}}"));
        assert_eq!(star_routes(&t)[0].rate_limit.as_ref().unwrap().burst, 3);
        assert_eq!(star_routes(&annotated("{}"))[0].rate_limit, None);
    }

    #[test]
    fn malformed_values_are_reported_and_left_out() {
        for (annotations, annotation) in [
            (format!("{{{RATE_ANNOTATION}: \"fast\"}}"), RATE_ANNOTATION),
            (format!("{{{RATE_ANNOTATION}: \"0\"}}"), RATE_ANNOTATION),
            (
                format!("{{{RATE_ANNOTATION}: \"5\", {BURST_ANNOTATION}: \"0\"}}"),
                BURST_ANNOTATION,
            ),
        ] {
            let t = annotated(&annotations);
            assert_eq!(star_routes(&t)[0].rate_limit, None, "{annotations}");
            assert_warned(
                &t,
                &[
                    &format!("metadata.annotations[{annotation}]"),
                    "no rate limit",
                ],
            );
        }
    }
}
