//! Clusters: balancing, endpoints, and the policies on what is sent to them.

use trellis_proxy_config as config;

use super::{DecodeError, Within, each, name, opt_duration, percent, required, socket_address};
use crate::wire;

pub fn cluster(c: wire::Cluster) -> Result<config::Cluster, DecodeError> {
    let protocol = match wire::UpstreamProtocol::try_from(c.protocol) {
        Ok(wire::UpstreamProtocol::Http1) => config::UpstreamProtocol::Http1,
        Ok(wire::UpstreamProtocol::Http2) => config::UpstreamProtocol::Http2,
        Ok(wire::UpstreamProtocol::SameAsDownstream) => config::UpstreamProtocol::SameAsDownstream,
        Err(_) => {
            return Err(
                DecodeError::new(format!("{} is not an upstream protocol", c.protocol))
                    .within("protocol"),
            );
        }
    };
    Ok(config::Cluster {
        name: name(c.name)?,
        load_balancer: load_balancer(required(c.load_balancer, "load_balancer")?)
            .within("load_balancer")?,
        endpoints: each(c.endpoints, "endpoints", |e| {
            if e.weight == 0 {
                return Err(DecodeError::new("is 0; at least 1").within("weight"));
            }
            Ok(config::Endpoint {
                address: socket_address(&e.address, "address")?,
                weight: e.weight,
                labels: e.labels.into_iter().collect(),
            })
        })?,
        protocol,
        connect_timeout: opt_duration(c.connect_timeout, "connect_timeout")?,
        idle_timeout: opt_duration(c.idle_timeout, "idle_timeout")?,
        service: c.service.map(|s| config::ServiceRef {
            host: s.host,
            name: s.name,
            namespace: s.namespace,
            subset: s.subset,
        }),
        outlier_detection: c
            .outlier_detection
            .map(outlier_detection)
            .transpose()
            .within("outlier_detection")?,
        limits: c.limits.map(limits).transpose().within("limits")?,
        tcp_keepalive: c
            .tcp_keepalive
            .map(|k| {
                Ok(config::TcpKeepalive {
                    time: opt_duration(k.time, "time")?,
                    interval: opt_duration(k.interval, "interval")?,
                    probes: k.probes,
                })
            })
            .transpose()
            .within("tcp_keepalive")?,
        health_check: c
            .health_check
            .map(health_check)
            .transpose()
            .within("health_check")?,
        tls: c.tls.map(upstream_tls).transpose().within("tls")?,
        source: c.source,
    })
}

fn load_balancer(lb: wire::LoadBalancer) -> Result<config::LoadBalancer, DecodeError> {
    use wire::load_balancer::Policy;
    Ok(match required(lb.policy, "policy")? {
        Policy::RoundRobin(_) => config::LoadBalancer::RoundRobin,
        Policy::LeastRequest(_) => config::LoadBalancer::LeastRequest,
        Policy::Random(_) => config::LoadBalancer::Random,
        Policy::PeakEwma(_) => config::LoadBalancer::PeakEwma,
        Policy::RingHash(r) => config::LoadBalancer::RingHash {
            key: hash_key(required(r.key, "ring_hash.key")?).within("ring_hash.key")?,
            minimum_ring_size: r.minimum_ring_size,
        },
        Policy::Maglev(m) => config::LoadBalancer::Maglev {
            key: hash_key(required(m.key, "maglev.key")?).within("maglev.key")?,
            table_size: m.table_size,
        },
    })
}

fn hash_key(k: wire::HashKey) -> Result<config::HashKey, DecodeError> {
    use wire::hash_key::Key;
    Ok(match required(k.key, "key")? {
        Key::Header(name) => config::HashKey::Header(name),
        Key::Cookie(c) => config::HashKey::Cookie {
            name: c.name,
            path: c.path,
            ttl: opt_duration(c.ttl, "cookie.ttl")?,
        },
        Key::SourceIp(_) => config::HashKey::SourceIp,
        Key::QueryParameter(name) => config::HashKey::QueryParameter(name),
    })
}

/// A duration that must be given and above zero.
fn positive(
    d: Option<prost_types::Duration>,
    field: &str,
) -> Result<config::Duration, DecodeError> {
    let d = required(opt_duration(d, field)?, field)?;
    if d.as_std().is_zero() {
        return Err(DecodeError::new("is 0").within(field));
    }
    Ok(d)
}

fn outlier_detection(o: wire::OutlierDetection) -> Result<config::OutlierDetection, DecodeError> {
    Ok(config::OutlierDetection {
        consecutive_5xx: o.consecutive_5xx,
        consecutive_gateway_errors: o.consecutive_gateway_errors,
        interval: positive(o.interval, "interval")?,
        base_ejection_time: required(
            opt_duration(o.base_ejection_time, "base_ejection_time")?,
            "base_ejection_time",
        )?,
        max_ejection_percent: whole_percent(o.max_ejection_percent, "max_ejection_percent")?,
        min_health_percent: whole_percent(o.min_health_percent, "min_health_percent")?,
    })
}

fn whole_percent(value: u32, field: &str) -> Result<u32, DecodeError> {
    percent(f64::from(value), field).map(|_| value)
}

fn limits(l: wire::ConnectionLimits) -> Result<config::ConnectionLimits, DecodeError> {
    Ok(config::ConnectionLimits {
        max_connections: l.max_connections,
        max_pending_requests: l.max_pending_requests,
        max_requests: l.max_requests,
        max_retries: l.max_retries,
        max_requests_per_connection: l.max_requests_per_connection,
        retry_budget: l
            .retry_budget
            .map(|b| {
                Ok(config::RetryBudget {
                    percent: percent(b.percent, "percent")?,
                    min_concurrency: b.min_concurrency,
                })
            })
            .transpose()
            .within("retry_budget")?,
    })
}

fn health_check(h: wire::HealthCheck) -> Result<config::HealthCheck, DecodeError> {
    use wire::health_check::Check;
    let check = match required(h.check, "check")? {
        Check::Tcp(_) => config::HealthCheckKind::Tcp,
        Check::HttpPath(path) if path.starts_with('/') => config::HealthCheckKind::Http { path },
        Check::HttpPath(path) => {
            return Err(
                DecodeError::new(format!("{path:?} does not start with /")).within("http_path")
            );
        }
        Check::GrpcService(service) => config::HealthCheckKind::Grpc { service },
    };
    let threshold = |value: u32, field: &str| match value {
        0 => Err(DecodeError::new("is 0; at least 1").within(field)),
        n => Ok(n),
    };
    Ok(config::HealthCheck {
        check,
        interval: positive(h.interval, "interval")?,
        timeout: positive(h.timeout, "timeout")?,
        unhealthy_threshold: threshold(h.unhealthy_threshold, "unhealthy_threshold")?,
        healthy_threshold: threshold(h.healthy_threshold, "healthy_threshold")?,
    })
}

fn upstream_tls(t: wire::UpstreamTls) -> Result<config::UpstreamTls, DecodeError> {
    use wire::upstream_tls::Mode;
    Ok(match required(t.mode, "mode")? {
        Mode::Mesh(m) => config::UpstreamTls::Mesh {
            identities: each(m.identities, "mesh.identities", not_empty)?,
            automatic: m.automatic,
            sni: opt_not_empty(m.sni, "mesh.sni")?,
        },
        Mode::Origination(o) => {
            config::UpstreamTls::Origination(tls_origination(o).within("origination")?)
        }
    })
}

fn tls_origination(o: wire::TlsOrigination) -> Result<config::TlsOrigination, DecodeError> {
    match (&o.client_certificate, &o.private_key) {
        (Some(_), None) => {
            return Err(
                DecodeError::new("is required with a client_certificate").within("private_key")
            );
        }
        (None, Some(_)) => {
            return Err(
                DecodeError::new("is required with a private_key").within("client_certificate")
            );
        }
        _ => {}
    }
    if o.insecure_skip_verify {
        let ignored = [
            ("ca_certificates", o.ca_certificates.is_some()),
            ("subject_alt_names", !o.subject_alt_names.is_empty()),
        ];
        if let Some((field, _)) = ignored.iter().find(|(_, set)| *set) {
            return Err(DecodeError::new(
                "cannot be combined with insecure_skip_verify, which verifies nothing",
            )
            .within(field));
        }
    }
    Ok(config::TlsOrigination {
        ca_certificates: opt_not_empty(o.ca_certificates, "ca_certificates")?,
        client_certificate: opt_not_empty(o.client_certificate, "client_certificate")?,
        private_key: opt_not_empty(o.private_key, "private_key")?,
        subject_alt_names: each(o.subject_alt_names, "subject_alt_names", not_empty)?,
        sni: opt_not_empty(o.sni, "sni")?,
        insecure_skip_verify: o.insecure_skip_verify,
    })
}

fn not_empty(value: String) -> Result<String, DecodeError> {
    match value.is_empty() {
        true => Err(DecodeError::new("is empty")),
        false => Ok(value),
    }
}

fn opt_not_empty(value: Option<String>, field: &str) -> Result<Option<String>, DecodeError> {
    value.map(not_empty).transpose().within(field)
}
