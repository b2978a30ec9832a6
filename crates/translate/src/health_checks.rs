//! Active health checking, which Istio leaves to Kubernetes' probes, set here with annotations
//! on the DestinationRule in force for a host (the first of its rules, by name, that has any):
//!
//! | Annotation | Value |
//! |---|---|
//! | `healthcheck.trellis.io/protocol` | `http`, `grpc` or `tcp` (required) |
//! | `healthcheck.trellis.io/path` | the path an `http` check asks for (`/` when unset) |
//! | `healthcheck.trellis.io/grpc-service` | the service a `grpc` check asks about (empty: the server) |
//! | `healthcheck.trellis.io/interval` | between checks of an endpoint (`5s`) |
//! | `healthcheck.trellis.io/timeout` | for one check (`1s`) |
//! | `healthcheck.trellis.io/unhealthy-threshold` | failures in a row that take an endpoint out (3) |
//! | `healthcheck.trellis.io/healthy-threshold` | passes in a row that bring it back (2) |
//!
//! Every cluster of the host (each port and subset) is checked so. A malformed value is reported
//! with the annotation's name, and the host is not checked.

use trellis_api::ObjectMeta;
use trellis_api::types::Duration;
use trellis_proxy_config::{HealthCheck, HealthCheckKind};

use crate::warnings::Warnings;

pub(crate) const PREFIX: &str = "healthcheck.trellis.io/";

pub(crate) fn health_check(rule: &ObjectMeta, warnings: &mut Warnings) -> Option<HealthCheck> {
    let value = |key: &str| rule.annotations.get(&format!("{PREFIX}{key}"));
    let mut bad = |key: &str, message: String| {
        warnings.field(
            "DestinationRule",
            rule,
            &format!("metadata.annotations[{PREFIX}{key}]"),
            format!("{message}; endpoints are not health checked"),
        );
    };
    let check = match value("protocol").map(String::as_str) {
        Some("http") => HealthCheckKind::Http {
            path: value("path").cloned().unwrap_or_else(|| "/".to_owned()),
        },
        Some("grpc") => HealthCheckKind::Grpc {
            service: value("grpc-service").cloned().unwrap_or_default(),
        },
        Some("tcp") => HealthCheckKind::Tcp,
        Some(other) => {
            bad("protocol", format!("{other:?} is not http, grpc or tcp"));
            return None;
        }
        None => {
            bad("protocol", "is missing (http, grpc or tcp)".to_owned());
            return None;
        }
    };
    if let HealthCheckKind::Http { path } = &check
        && !path.starts_with('/')
    {
        bad("path", format!("{path:?} does not start with /"));
        return None;
    }
    let mut duration = |key: &str, default: u64| match value(key) {
        None => Some(Duration::from_millis(default)),
        Some(text) => match text.parse::<Duration>() {
            Ok(d) if d != Duration::default() => Some(d),
            _ => {
                bad(
                    key,
                    format!("{text:?} is not a duration such as \"5s\" or \"500ms\""),
                );
                None
            }
        },
    };
    let interval = duration("interval", 5_000)?;
    let timeout = duration("timeout", 1_000)?;
    let mut count = |key: &str, default: u32| match value(key) {
        None => Some(default),
        Some(text) => match text.parse::<u32>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                bad(key, format!("{text:?} is not a whole number of at least 1"));
                None
            }
        },
    };
    let unhealthy_threshold = count("unhealthy-threshold", 3)?;
    let healthy_threshold = count("healthy-threshold", 2)?;
    Some(HealthCheck {
        check,
        interval,
        timeout,
        unhealthy_threshold,
        healthy_threshold,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_warned, http_rules};

    const ALL: &str = "outbound|80||reviews.default.svc.cluster.local";

    fn checked(annotations: &str) -> crate::Translation {
        http_rules(
            "- route: [{destination: {host: reviews}}]",
            &format!(
                "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n\
                 metadata: {{name: reviews, namespace: default, annotations: {annotations}}}\n\
                 spec: {{host: reviews}}\n"
            ),
        )
    }

    #[test]
    fn annotations_set_the_check_with_envoys_defaults() {
        let t = checked(&format!(
            "{{{PREFIX}protocol: http, {PREFIX}path: /healthz, {PREFIX}interval: 2s}}"
        ));
        assert_eq!(
            t.config.clusters[ALL].health_check,
            Some(HealthCheck {
                check: HealthCheckKind::Http {
                    path: "/healthz".into()
                },
                interval: Duration::from_millis(2_000),
                timeout: Duration::from_millis(1_000),
                unhealthy_threshold: 3,
                healthy_threshold: 2,
            })
        );
        let t = checked(&format!(
            "{{{PREFIX}protocol: grpc, {PREFIX}grpc-service: reviews, \
             {PREFIX}unhealthy-threshold: \"1\", {PREFIX}healthy-threshold: \"1\"}}"
        ));
        let check = t.config.clusters[ALL].health_check.clone().unwrap();
        assert_eq!(
            check.check,
            HealthCheckKind::Grpc {
                service: "reviews".into()
            }
        );
        assert_eq!((check.unhealthy_threshold, check.healthy_threshold), (1, 1));
        assert_eq!(checked("{}").config.clusters[ALL].health_check, None);
    }

    #[test]
    fn malformed_values_are_reported_and_nothing_is_checked() {
        for (annotations, key) in [
            (format!("{{{PREFIX}protocol: udp}}"), "protocol"),
            (format!("{{{PREFIX}path: /x}}"), "protocol"),
            (
                format!("{{{PREFIX}protocol: http, {PREFIX}path: x}}"),
                "path",
            ),
            (
                format!("{{{PREFIX}protocol: tcp, {PREFIX}interval: soon}}"),
                "interval",
            ),
            (
                format!("{{{PREFIX}protocol: tcp, {PREFIX}healthy-threshold: \"0\"}}"),
                "healthy-threshold",
            ),
        ] {
            let t = checked(&annotations);
            assert_eq!(t.config.clusters[ALL].health_check, None, "{annotations}");
            assert_warned(
                &t,
                &[&format!("annotations[{PREFIX}{key}]"), "not health checked"],
            );
        }
    }
}
