//! Route tables: virtual hosts, routes, matches and actions.

use std::collections::BTreeSet;

use trellis_proxy_config as config;

use super::{DecodeError, Within, each, name, opt_duration, percent, required};
use crate::wire;

pub fn route_table(t: wire::RouteTable) -> Result<config::RouteTable, DecodeError> {
    if t.on_demand && !t.virtual_hosts.is_empty() {
        return Err(
            DecodeError::new("an on-demand table's hosts come on their own")
                .within("virtual_hosts"),
        );
    }
    Ok(config::RouteTable {
        name: name(t.name)?,
        virtual_hosts: each(t.virtual_hosts, "virtual_hosts", virtual_host)?,
        on_demand: t.on_demand,
    })
}

pub fn on_demand_host(h: wire::OnDemandHost) -> Result<super::OnDemandHost, DecodeError> {
    let route_table = h.route_table;
    if route_table.is_empty() {
        return Err(DecodeError::new("is empty").within("route_table"));
    }
    let host = virtual_host(required(h.virtual_host, "virtual_host")?).within("virtual_host")?;
    if host.name.is_empty() {
        return Err(DecodeError::new("is empty").within("virtual_host.name"));
    }
    Ok(super::OnDemandHost {
        name: super::OnDemandHost::name_of(&route_table, &host.name),
        route_table,
        host,
    })
}

pub(crate) fn virtual_host(h: wire::VirtualHost) -> Result<config::VirtualHost, DecodeError> {
    Ok(config::VirtualHost {
        name: h.name,
        domains: h.domains,
        routes: each(h.routes, "routes", route)?,
    })
}

fn route(r: wire::Route) -> Result<config::Route, DecodeError> {
    use wire::route::Action;
    let action = match required(r.action, "action")? {
        Action::Forward(f) => config::Action::Forward(forward(f).within("forward")?),
        Action::Redirect(r) => config::Action::Redirect(redirect(r).within("redirect")?),
        Action::DirectResponse(d) => config::Action::DirectResponse(config::DirectResponse {
            status: status(d.status, 100..=599).within("direct_response.status")?,
            body: d.body,
        }),
    };
    Ok(config::Route {
        name: r.name,
        matches: each(r.matches, "matches", route_match)?,
        action,
        headers: header_operations(r.headers),
        fault: r.fault.map(fault).transpose().within("fault")?,
        cors: r.cors.map(cors).transpose().within("cors")?,
        rate_limit: r
            .rate_limit
            .map(rate_limit)
            .transpose()
            .within("rate_limit")?,
        source: r.source,
    })
}

fn status(code: u32, range: std::ops::RangeInclusive<u16>) -> Result<u16, DecodeError> {
    u16::try_from(code)
        .ok()
        .filter(|c| range.contains(c))
        .ok_or_else(|| {
            DecodeError::new(format!(
                "{code} is not a status code of {}-{}",
                range.start(),
                range.end()
            ))
        })
}

pub(crate) fn string_match(m: wire::StringMatch) -> Result<config::StringMatch, DecodeError> {
    use wire::string_match::Kind;
    Ok(match required(m.kind, "kind")? {
        Kind::Any(_) => config::StringMatch::Any,
        Kind::Exact(s) => config::StringMatch::Exact(s),
        Kind::Prefix(s) => config::StringMatch::Prefix(s),
        Kind::Regex(pattern) => config::StringMatch::Regex(regex(&pattern).within("regex")?),
    })
}

fn regex(pattern: &str) -> Result<config::Regex, DecodeError> {
    config::Regex::new(pattern).map_err(DecodeError::new)
}

fn opt_string_match(
    m: Option<wire::StringMatch>,
    field: &str,
) -> Result<Option<config::StringMatch>, DecodeError> {
    m.map(string_match).transpose().within(field)
}

fn route_match(m: wire::RouteMatch) -> Result<config::RouteMatch, DecodeError> {
    Ok(config::RouteMatch {
        path: opt_string_match(m.path, "path")?,
        ignore_case: m.ignore_case,
        method: opt_string_match(m.method, "method")?,
        authority: opt_string_match(m.authority, "authority")?,
        scheme: opt_string_match(m.scheme, "scheme")?,
        headers: each(m.headers, "headers", |h| {
            Ok(config::HeaderMatch {
                name: h.name,
                value: string_match(required(h.value, "value")?).within("value")?,
                absent: h.absent,
            })
        })?,
        query: each(m.query, "query", |q| {
            Ok(config::QueryMatch {
                name: q.name,
                value: string_match(required(q.value, "value")?).within("value")?,
            })
        })?,
        port: m.port.map(port).transpose().within("port")?,
    })
}

fn port(number: u32) -> Result<u16, DecodeError> {
    u16::try_from(number)
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| DecodeError::new(format!("{number} is not a port (1-65535)")))
}

fn forward(f: wire::Forward) -> Result<config::Forward, DecodeError> {
    if f.destinations.is_empty() {
        return Err(DecodeError::new("has no destination").within("destinations"));
    }
    Ok(config::Forward {
        destinations: each(f.destinations, "destinations", |d| {
            Ok(config::WeightedCluster {
                cluster: super::name(d.cluster).within("cluster")?,
                weight: d.weight,
                headers: header_operations(d.headers),
            })
        })?,
        rewrite: f.rewrite.map(rewrite).transpose().within("rewrite")?,
        timeout: opt_duration(f.timeout, "timeout")?,
        retry: f.retry.map(retry).transpose().within("retry")?,
        mirrors: each(f.mirrors, "mirrors", |m| {
            Ok(config::Mirror {
                cluster: m.cluster,
                percent: percent(m.percent, "percent")?,
            })
        })?,
    })
}

fn rewrite(r: wire::Rewrite) -> Result<config::Rewrite, DecodeError> {
    let path_regex = match r.path_regex {
        Some(re) => Some((
            regex(&re.pattern).within("path_regex.pattern")?,
            re.substitution,
        )),
        None => None,
    };
    Ok(config::Rewrite {
        path_prefix: r.path_prefix,
        path_regex,
        authority: r.authority,
    })
}

fn redirect(r: wire::Redirect) -> Result<config::Redirect, DecodeError> {
    use wire::redirect::Port;
    Ok(config::Redirect {
        status: status(r.status, 300..=399).within("status")?,
        scheme: r.scheme,
        authority: r.authority,
        port: match r.port {
            None => None,
            Some(Port::PortNumber(n)) => {
                Some(config::RedirectPort::Number(port(n).within("port_number")?))
            }
            Some(Port::PortFromScheme(_)) => Some(config::RedirectPort::FromScheme),
            Some(Port::PortFromRequest(_)) => Some(config::RedirectPort::FromRequest),
        },
        path: r.path,
        prefix: r.prefix,
    })
}

fn header_operations(h: Option<wire::HeaderOperations>) -> config::HeaderOperations {
    let changes = |c: Option<wire::HeaderChanges>| {
        let c = c.unwrap_or_default();
        let pairs = |p: Vec<wire::Header>| p.into_iter().map(|h| (h.name, h.value)).collect();
        config::HeaderChanges {
            set: pairs(c.set),
            add: pairs(c.add),
            remove: c.remove,
        }
    };
    let h = h.unwrap_or_default();
    config::HeaderOperations {
        request: changes(h.request),
        response: changes(h.response),
    }
}

fn retry(r: wire::RetryPolicy) -> Result<config::RetryPolicy, DecodeError> {
    use config::RetryOn as R;
    use wire::RetryOn as W;
    let retry_on = r
        .retry_on
        .iter()
        .enumerate()
        .map(|(i, &on)| {
            let known = W::try_from(on).ok().and_then(|on| match on {
                W::Unspecified => None,
                W::ServerError => Some(R::ServerError),
                W::GatewayError => Some(R::GatewayError),
                W::ConnectFailure => Some(R::ConnectFailure),
                W::Reset => Some(R::Reset),
                W::RefusedStream => Some(R::RefusedStream),
                W::RetriableStatusCodes => Some(R::RetriableStatusCodes),
                W::Retriable4xx => Some(R::Retriable4xx),
                W::Cancelled => Some(R::Cancelled),
                W::DeadlineExceeded => Some(R::DeadlineExceeded),
                W::Internal => Some(R::Internal),
                W::ResourceExhausted => Some(R::ResourceExhausted),
                W::Unavailable => Some(R::Unavailable),
            });
            known.ok_or_else(|| {
                DecodeError::new(format!("{on} is not a retry condition"))
                    .within(&format!("retry_on[{i}]"))
            })
        })
        .collect::<Result<BTreeSet<_>, _>>()?;
    let retriable_status_codes = r
        .retriable_status_codes
        .iter()
        .enumerate()
        .map(|(i, &code)| status(code, 100..=599).within(&format!("retriable_status_codes[{i}]")))
        .collect::<Result<BTreeSet<_>, _>>()?;
    Ok(config::RetryPolicy {
        attempts: r.attempts,
        per_try_timeout: opt_duration(r.per_try_timeout, "per_try_timeout")?,
        retry_on,
        retriable_status_codes,
        backoff: opt_duration(r.backoff, "backoff").and_then(|b| required(b, "backoff"))?,
    })
}

fn fault(f: wire::Fault) -> Result<config::Fault, DecodeError> {
    use wire::fault_abort::Status;
    let delay = match f.delay {
        Some(d) => Some(config::FaultDelay {
            fixed: opt_duration(d.fixed, "delay.fixed").and_then(|f| required(f, "delay.fixed"))?,
            percent: percent(d.percent, "delay.percent")?,
        }),
        None => None,
    };
    let abort = match f.abort {
        Some(a) => Some(config::FaultAbort {
            status: match required(a.status, "abort.status")? {
                Status::HttpStatus(code) => {
                    config::AbortStatus::Http(status(code, 200..=599).within("abort.http_status")?)
                }
                Status::GrpcStatus(code) if code <= 16 => config::AbortStatus::Grpc(code),
                Status::GrpcStatus(code) => {
                    return Err(
                        DecodeError::new(format!("{code} is not a gRPC status (0-16)"))
                            .within("abort.grpc_status"),
                    );
                }
            },
            percent: percent(a.percent, "abort.percent")?,
        }),
        None => None,
    };
    Ok(config::Fault { delay, abort })
}

fn cors(c: wire::CorsPolicy) -> Result<config::CorsPolicy, DecodeError> {
    Ok(config::CorsPolicy {
        allow_origins: each(c.allow_origins, "allow_origins", string_match)?,
        allow_methods: c.allow_methods,
        allow_headers: c.allow_headers,
        expose_headers: c.expose_headers,
        max_age: opt_duration(c.max_age, "max_age")?,
        allow_credentials: c.allow_credentials,
        forward_unmatched_preflights: c.forward_unmatched_preflights,
    })
}

fn rate_limit(l: wire::RateLimit) -> Result<config::RateLimit, DecodeError> {
    if !(l.requests_per_second > 0.0 && l.requests_per_second.is_finite()) {
        return Err(
            DecodeError::new(format!("{} is not a rate above 0", l.requests_per_second))
                .within("requests_per_second"),
        );
    }
    if l.burst == 0 {
        return Err(DecodeError::new("is 0; at least 1 request must pass").within("burst"));
    }
    Ok(config::RateLimit {
        bucket: l.bucket,
        requests_per_second: l.requests_per_second,
        burst: l.burst,
    })
}
