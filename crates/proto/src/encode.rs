//! The proxy's configuration model as wire messages. Every field of the model has a place on
//! the wire, so decoding what this encodes gives back an equal value (tested in `tests`).

use prost::Message;
use trellis_proxy_config as config;

use crate::wire;

/// A resource as the `Any` the transport carries.
pub fn to_any(type_url: &str, message: &impl Message) -> prost_types::Any {
    prost_types::Any {
        type_url: type_url.to_owned(),
        value: message.encode_to_vec(),
    }
}

fn duration(d: &config::Duration) -> prost_types::Duration {
    let d = d.as_std();
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

fn opt_duration(d: &Option<config::Duration>) -> Option<prost_types::Duration> {
    d.as_ref().map(duration)
}

fn empty() -> wire::Empty {
    wire::Empty {}
}

pub fn listener(l: &config::Listener) -> wire::Listener {
    use wire::listener::Protocol;
    let protocol = match &l.protocol {
        config::ListenerProtocol::Http { route_table } => Protocol::Http(wire::HttpListener {
            route_table: route_table.clone(),
        }),
        config::ListenerProtocol::Tcp { cluster } => Protocol::Tcp(wire::TcpListener {
            cluster: cluster.clone(),
        }),
        config::ListenerProtocol::Detect {
            route_table,
            tcp_cluster,
            detection_timeout,
        } => Protocol::Detect(wire::DetectListener {
            route_table: route_table.clone(),
            tcp_cluster: tcp_cluster.clone(),
            detection_timeout: opt_duration(detection_timeout),
        }),
    };
    wire::Listener {
        name: l.name.clone(),
        address: l.address.to_string(),
        protocol: Some(protocol),
        mtls: l.mtls.map(|m| match m {
            config::PeerMtls::Strict => wire::PeerMtls::Strict,
            config::PeerMtls::Permissive => wire::PeerMtls::Permissive,
        } as i32),
        inbound: l.inbound,
        captured: l.captured,
    }
}

/// A route table; an on-demand one without its virtual hosts, which go as [`on_demand_host`]s.
pub fn route_table(t: &config::RouteTable) -> wire::RouteTable {
    wire::RouteTable {
        name: t.name.clone(),
        virtual_hosts: match t.on_demand {
            true => Vec::new(),
            false => t.virtual_hosts.iter().map(virtual_host).collect(),
        },
        on_demand: t.on_demand,
    }
}

/// A virtual host of the on-demand route table `route_table`, and its resource name.
pub fn on_demand_host(route_table: &str, h: &config::VirtualHost) -> (String, wire::OnDemandHost) {
    let message = wire::OnDemandHost {
        route_table: route_table.to_owned(),
        virtual_host: Some(virtual_host(h)),
    };
    (
        crate::decode::OnDemandHost::name_of(route_table, &h.name),
        message,
    )
}

pub fn virtual_host(h: &config::VirtualHost) -> wire::VirtualHost {
    wire::VirtualHost {
        name: h.name.clone(),
        domains: h.domains.clone(),
        routes: h.routes.iter().map(route).collect(),
    }
}

fn route(r: &config::Route) -> wire::Route {
    use wire::route::Action;
    let action = match &r.action {
        config::Action::Forward(f) => Action::Forward(forward(f)),
        config::Action::Redirect(r) => Action::Redirect(redirect(r)),
        config::Action::DirectResponse(d) => Action::DirectResponse(wire::DirectResponse {
            status: u32::from(d.status),
            body: d.body.clone(),
        }),
    };
    wire::Route {
        name: r.name.clone(),
        matches: r.matches.iter().map(route_match).collect(),
        action: Some(action),
        headers: header_operations(&r.headers),
        fault: r.fault.as_ref().map(fault),
        cors: r.cors.as_ref().map(cors),
        rate_limit: r.rate_limit.as_ref().map(|l| wire::RateLimit {
            bucket: l.bucket.clone(),
            requests_per_second: l.requests_per_second,
            burst: l.burst,
        }),
        source: r.source.clone(),
    }
}

fn string_match(m: &config::StringMatch) -> wire::StringMatch {
    use wire::string_match::Kind;
    let kind = match m {
        config::StringMatch::Any => Kind::Any(empty()),
        config::StringMatch::Exact(s) => Kind::Exact(s.clone()),
        config::StringMatch::Prefix(s) => Kind::Prefix(s.clone()),
        config::StringMatch::Regex(r) => Kind::Regex(r.as_str().to_owned()),
    };
    wire::StringMatch { kind: Some(kind) }
}

fn route_match(m: &config::RouteMatch) -> wire::RouteMatch {
    wire::RouteMatch {
        path: m.path.as_ref().map(string_match),
        ignore_case: m.ignore_case,
        method: m.method.as_ref().map(string_match),
        authority: m.authority.as_ref().map(string_match),
        scheme: m.scheme.as_ref().map(string_match),
        headers: m
            .headers
            .iter()
            .map(|h| wire::HeaderMatch {
                name: h.name.clone(),
                value: Some(string_match(&h.value)),
                absent: h.absent,
            })
            .collect(),
        query: m
            .query
            .iter()
            .map(|q| wire::QueryMatch {
                name: q.name.clone(),
                value: Some(string_match(&q.value)),
            })
            .collect(),
        port: m.port.map(u32::from),
    }
}

fn forward(f: &config::Forward) -> wire::Forward {
    wire::Forward {
        destinations: f
            .destinations
            .iter()
            .map(|d| wire::WeightedCluster {
                cluster: d.cluster.clone(),
                weight: d.weight,
                headers: header_operations(&d.headers),
            })
            .collect(),
        rewrite: f.rewrite.as_ref().map(|r| wire::Rewrite {
            path_prefix: r.path_prefix.clone(),
            path_regex: r
                .path_regex
                .as_ref()
                .map(|(pattern, substitution)| wire::RegexRewrite {
                    pattern: pattern.as_str().to_owned(),
                    substitution: substitution.clone(),
                }),
            authority: r.authority.clone(),
        }),
        timeout: opt_duration(&f.timeout),
        retry: f.retry.as_ref().map(retry),
        mirrors: f
            .mirrors
            .iter()
            .map(|m| wire::Mirror {
                cluster: m.cluster.clone(),
                percent: m.percent,
            })
            .collect(),
    }
}

fn redirect(r: &config::Redirect) -> wire::Redirect {
    use wire::redirect::Port;
    wire::Redirect {
        status: u32::from(r.status),
        scheme: r.scheme.clone(),
        authority: r.authority.clone(),
        port: r.port.map(|p| match p {
            config::RedirectPort::Number(n) => Port::PortNumber(u32::from(n)),
            config::RedirectPort::FromScheme => Port::PortFromScheme(empty()),
            config::RedirectPort::FromRequest => Port::PortFromRequest(empty()),
        }),
        path: r.path.clone(),
        prefix: r.prefix.clone(),
    }
}

fn header_operations(h: &config::HeaderOperations) -> Option<wire::HeaderOperations> {
    let changes = |c: &config::HeaderChanges| {
        let pairs = |p: &[(String, String)]| {
            p.iter()
                .map(|(name, value)| wire::Header {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect()
        };
        (!c.is_empty()).then(|| wire::HeaderChanges {
            set: pairs(&c.set),
            add: pairs(&c.add),
            remove: c.remove.clone(),
        })
    };
    (!h.is_empty()).then(|| wire::HeaderOperations {
        request: changes(&h.request),
        response: changes(&h.response),
    })
}

fn retry(r: &config::RetryPolicy) -> wire::RetryPolicy {
    use config::RetryOn as R;
    use wire::RetryOn as W;
    wire::RetryPolicy {
        attempts: r.attempts,
        per_try_timeout: opt_duration(&r.per_try_timeout),
        retry_on: r
            .retry_on
            .iter()
            .map(|on| match on {
                R::ServerError => W::ServerError,
                R::GatewayError => W::GatewayError,
                R::ConnectFailure => W::ConnectFailure,
                R::Reset => W::Reset,
                R::RefusedStream => W::RefusedStream,
                R::RetriableStatusCodes => W::RetriableStatusCodes,
                R::Retriable4xx => W::Retriable4xx,
                R::Cancelled => W::Cancelled,
                R::DeadlineExceeded => W::DeadlineExceeded,
                R::Internal => W::Internal,
                R::ResourceExhausted => W::ResourceExhausted,
                R::Unavailable => W::Unavailable,
            } as i32)
            .collect(),
        retriable_status_codes: r
            .retriable_status_codes
            .iter()
            .map(|&c| u32::from(c))
            .collect(),
        backoff: Some(duration(&r.backoff)),
    }
}

fn fault(f: &config::Fault) -> wire::Fault {
    use wire::fault_abort::Status;
    wire::Fault {
        delay: f.delay.as_ref().map(|d| wire::FaultDelay {
            fixed: Some(duration(&d.fixed)),
            percent: d.percent,
        }),
        abort: f.abort.as_ref().map(|a| wire::FaultAbort {
            status: Some(match a.status {
                config::AbortStatus::Http(s) => Status::HttpStatus(u32::from(s)),
                config::AbortStatus::Grpc(s) => Status::GrpcStatus(s),
            }),
            percent: a.percent,
        }),
    }
}

fn cors(c: &config::CorsPolicy) -> wire::CorsPolicy {
    wire::CorsPolicy {
        allow_origins: c.allow_origins.iter().map(string_match).collect(),
        allow_methods: c.allow_methods.clone(),
        allow_headers: c.allow_headers.clone(),
        expose_headers: c.expose_headers.clone(),
        max_age: opt_duration(&c.max_age),
        allow_credentials: c.allow_credentials,
        forward_unmatched_preflights: c.forward_unmatched_preflights,
    }
}

pub fn cluster(c: &config::Cluster) -> wire::Cluster {
    wire::Cluster {
        name: c.name.clone(),
        load_balancer: Some(load_balancer(&c.load_balancer)),
        endpoints: c
            .endpoints
            .iter()
            .map(|e| wire::Endpoint {
                address: e.address.to_string(),
                weight: e.weight,
                labels: e
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            })
            .collect(),
        protocol: match c.protocol {
            config::UpstreamProtocol::Http1 => wire::UpstreamProtocol::Http1,
            config::UpstreamProtocol::Http2 => wire::UpstreamProtocol::Http2,
            config::UpstreamProtocol::SameAsDownstream => wire::UpstreamProtocol::SameAsDownstream,
        } as i32,
        connect_timeout: opt_duration(&c.connect_timeout),
        idle_timeout: opt_duration(&c.idle_timeout),
        service: c.service.as_ref().map(|s| wire::ServiceRef {
            host: s.host.clone(),
            name: s.name.clone(),
            namespace: s.namespace.clone(),
            subset: s.subset.clone(),
        }),
        outlier_detection: c
            .outlier_detection
            .as_ref()
            .map(|o| wire::OutlierDetection {
                consecutive_5xx: o.consecutive_5xx,
                consecutive_gateway_errors: o.consecutive_gateway_errors,
                interval: Some(duration(&o.interval)),
                base_ejection_time: Some(duration(&o.base_ejection_time)),
                max_ejection_percent: o.max_ejection_percent,
                min_health_percent: o.min_health_percent,
            }),
        limits: c.limits.as_ref().map(|l| wire::ConnectionLimits {
            max_connections: l.max_connections,
            max_pending_requests: l.max_pending_requests,
            max_requests: l.max_requests,
            max_retries: l.max_retries,
            max_requests_per_connection: l.max_requests_per_connection,
            retry_budget: l.retry_budget.as_ref().map(|b| wire::RetryBudget {
                percent: b.percent,
                min_concurrency: b.min_concurrency,
            }),
        }),
        tcp_keepalive: c.tcp_keepalive.as_ref().map(|k| wire::TcpKeepalive {
            time: opt_duration(&k.time),
            interval: opt_duration(&k.interval),
            probes: k.probes,
        }),
        health_check: c.health_check.as_ref().map(health_check),
        source: c.source.clone(),
        tls: c.tls.as_ref().map(upstream_tls),
    }
}

fn load_balancer(lb: &config::LoadBalancer) -> wire::LoadBalancer {
    use wire::load_balancer::Policy;
    let policy = match lb {
        config::LoadBalancer::RoundRobin => Policy::RoundRobin(empty()),
        config::LoadBalancer::LeastRequest => Policy::LeastRequest(empty()),
        config::LoadBalancer::Random => Policy::Random(empty()),
        config::LoadBalancer::PeakEwma => Policy::PeakEwma(empty()),
        config::LoadBalancer::RingHash {
            key,
            minimum_ring_size,
        } => Policy::RingHash(wire::RingHash {
            key: Some(hash_key(key)),
            minimum_ring_size: *minimum_ring_size,
        }),
        config::LoadBalancer::Maglev { key, table_size } => Policy::Maglev(wire::Maglev {
            key: Some(hash_key(key)),
            table_size: *table_size,
        }),
    };
    wire::LoadBalancer {
        policy: Some(policy),
    }
}

fn hash_key(k: &config::HashKey) -> wire::HashKey {
    use wire::hash_key::Key;
    let key = match k {
        config::HashKey::Header(name) => Key::Header(name.clone()),
        config::HashKey::Cookie { name, path, ttl } => Key::Cookie(wire::HashCookie {
            name: name.clone(),
            path: path.clone(),
            ttl: opt_duration(ttl),
        }),
        config::HashKey::SourceIp => Key::SourceIp(empty()),
        config::HashKey::QueryParameter(name) => Key::QueryParameter(name.clone()),
    };
    wire::HashKey { key: Some(key) }
}

fn health_check(h: &config::HealthCheck) -> wire::HealthCheck {
    use wire::health_check::Check;
    wire::HealthCheck {
        check: Some(match &h.check {
            config::HealthCheckKind::Tcp => Check::Tcp(empty()),
            config::HealthCheckKind::Http { path } => Check::HttpPath(path.clone()),
            config::HealthCheckKind::Grpc { service } => Check::GrpcService(service.clone()),
        }),
        interval: Some(duration(&h.interval)),
        timeout: Some(duration(&h.timeout)),
        unhealthy_threshold: h.unhealthy_threshold,
        healthy_threshold: h.healthy_threshold,
    }
}

fn upstream_tls(t: &config::UpstreamTls) -> wire::UpstreamTls {
    use wire::upstream_tls::Mode;
    let mode = match t {
        config::UpstreamTls::Mesh {
            identities,
            automatic,
            sni,
        } => Mode::Mesh(wire::MeshTls {
            identities: identities.clone(),
            automatic: *automatic,
            sni: sni.clone(),
        }),
        config::UpstreamTls::Origination(o) => Mode::Origination(wire::TlsOrigination {
            ca_certificates: o.ca_certificates.clone(),
            client_certificate: o.client_certificate.clone(),
            private_key: o.private_key.clone(),
            subject_alt_names: o.subject_alt_names.clone(),
            sni: o.sni.clone(),
            insecure_skip_verify: o.insecure_skip_verify,
        }),
    };
    wire::UpstreamTls { mode: Some(mode) }
}
