//! `trellis explain`: what a request from a workload would meet, and which YAML resource each
//! step came from — listener, virtual host, route (and the VirtualService rule that wrote it),
//! fault, action, destination clusters (and the DestinationRule that shaped them) and their
//! endpoints — or why it would get a 404 or a 503.
//!
//! The configuration is the control plane's for that proxy (its debug API), and the route is
//! found with the proxy's own router, so the answer is the one the proxy would give.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use trellis_proxy::router::Router;
use trellis_proxy_config::{Action, Cluster, Config, Route, RouteMatch, StringMatch};

use crate::control::DEBUG_ADDRESS;
use crate::inspect::{Format, get};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The proxy the request leaves from: <workload>[.<namespace>] (namespace `default` when
    /// left out). A sidecar sends it through its outbound listener; a gateway receives it on the
    /// listener of the URL's port.
    proxy: String,
    /// The request's URL (`http://reviews:9080/reviews/1`).
    url: String,
    /// A request header, `name: value` (repeatable).
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    headers: Vec<String>,
    /// The request method.
    #[arg(short = 'X', long = "request", default_value = "GET")]
    method: String,
    /// The control plane's debug address.
    #[arg(long, value_name = "ADDR", default_value = DEBUG_ADDRESS, env = "TRELLIS_CONTROL_DEBUG")]
    control: SocketAddr,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    output: Format,
}

/// One step of the explanation: what, and where it came from.
struct Step {
    what: &'static str,
    detail: String,
    source: Option<String>,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let proxy = crate::inspect::qualified(&args.proxy);
    let answer = get(args.control, &format!("/debug/proxy_config?proxy={proxy}"))?;
    let config: Config = serde_json::from_value(answer["config"].clone())
        .context("the control plane's configuration for the proxy does not read")?;
    let role = answer["proxy"]["role"]
        .as_str()
        .unwrap_or("sidecar")
        .to_owned();
    let mut request = http::Request::builder()
        .method(args.method.as_str())
        .uri(&args.url);
    for header in &args.headers {
        let (name, value) = header
            .split_once(':')
            .with_context(|| format!("-H {header:?} is not `name: value`"))?;
        request = request.header(name.trim(), value.trim());
    }
    let (parts, ()) = request
        .body(())
        .with_context(|| format!("{:?} is not a URL with headers that parse", args.url))?
        .into_parts();
    let Some(host) = parts.uri.host() else {
        bail!(
            "{:?} has no host: give a URL such as http://reviews:9080/",
            args.url
        );
    };
    let port = parts.uri.port_u16().unwrap_or(80);
    let authority = parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| match parts.uri.port_u16() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        });

    let (steps, outcome) = explain(&config, &role, &parts, &authority, port);
    if args.output == Format::Json {
        let steps: Vec<Value> = steps
            .iter()
            .map(|s| json!({"step": s.what, "detail": s.detail, "source": s.source}))
            .collect();
        let report =
            json!({"proxy": proxy, "request": args.url, "steps": steps, "outcome": outcome});
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{} {} from {role} {proxy}", args.method, args.url);
    for step in &steps {
        println!("  {:<13} {}", format!("{}:", step.what), step.detail);
        if let Some(source) = &step.source {
            println!("  {:<13}   from {source}", "");
        }
    }
    println!("  {:<13} {outcome}", "outcome:");
    for warning in answer["warnings"].as_array().into_iter().flatten() {
        eprintln!("warning: {}", warning.as_str().unwrap_or_default());
    }
    Ok(ExitCode::SUCCESS)
}

/// The steps a request meets, and what it gets.
fn explain(
    config: &Config,
    role: &str,
    parts: &http::request::Parts,
    authority: &str,
    port: u16,
) -> (Vec<Step>, String) {
    let mut steps = Vec::new();
    let listener = match role {
        "gateway" => config.listeners.iter().find(|l| l.address.port() == port),
        _ => config.listeners.iter().find(|l| l.name == "outbound"),
    };
    let Some(listener) = listener else {
        let outcome = match role {
            "gateway" => format!("no listener on port {port}: the connection is refused"),
            _ => "the sidecar has no outbound listener: the connection is refused".to_owned(),
        };
        return (steps, outcome);
    };
    steps.push(Step {
        what: "listener",
        detail: format!("{} on {}", listener.name, listener.address),
        source: None,
    });
    let Some(table) = listener
        .route_table()
        .and_then(|name| config.routes.get(name))
    else {
        let outcome = match listener.tcp_cluster() {
            Some(cluster) => format!("a TCP listener: the connection goes to cluster {cluster}"),
            None => "the listener's route table is missing: 404 (NR)".to_owned(),
        };
        return (steps, outcome);
    };
    let router = Router::new(table);
    let Some(matched) = router.find(parts, authority, listener.address.port()) else {
        let host = table.virtual_hosts.iter().find(|h| {
            h.domains.iter().any(|d| {
                d == authority || d == "*" || Some(d.as_str()) == authority.split(':').next()
            })
        });
        let outcome = match host {
            Some(host) => format!(
                "virtual host {} has no route that matches: 404 (NR). Its routes: {}",
                host.name,
                host.routes
                    .iter()
                    .map(|r| format!("{} [{}]", r.name, matches(r)))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            None => format!(
                "no virtual host serves {authority:?} in route table {}: 404 (NR). A sidecar reaches services by host:port (e.g. reviews:9080); is the service in the registry, exported to this namespace and allowed by the Sidecar resource?",
                table.name
            ),
        };
        return (steps, outcome);
    };
    steps.push(Step {
        what: "virtual host",
        detail: format!("{} (route table {})", matched.virtual_host, table.name),
        source: None,
    });
    let route = matched.route;
    steps.push(Step {
        what: "route",
        detail: format!("{} [{}]", route.name, matches(route)),
        source: Some(
            route
                .source
                .clone()
                .unwrap_or_else(|| "no VirtualService: the default route".to_owned()),
        ),
    });
    if let Some(fault) = &route.fault {
        if let Some(delay) = &fault.delay {
            steps.push(Step {
                what: "fault",
                detail: format!(
                    "delay {} on {}% of requests (DI)",
                    delay.fixed, delay.percent
                ),
                source: route.source.clone(),
            });
        }
        if let Some(abort) = &fault.abort {
            steps.push(Step {
                what: "fault",
                detail: format!(
                    "abort with {} on {}% of requests (FI); those never reach a cluster",
                    abort_status(abort.status),
                    abort.percent
                ),
                source: route.source.clone(),
            });
        }
    }
    let aborted = route
        .fault
        .as_ref()
        .and_then(|f| f.abort.as_ref())
        .map(|a| {
            let status = abort_status(a.status);
            (
                a.percent,
                format!("{}% aborted with {status} (FI)", a.percent),
            )
        });
    if let Some((percent, aborted)) = &aborted
        && *percent >= 100.0
    {
        return (steps, aborted.clone());
    }
    let outcome = match &route.action {
        Action::DirectResponse(d) => format!("answered by the proxy: {}", d.status),
        Action::Redirect(r) => format!(
            "redirected ({}) to {}{}{}",
            r.status,
            r.scheme
                .as_deref()
                .map(|s| format!("{s}://"))
                .unwrap_or_default(),
            r.authority.as_deref().unwrap_or("<same authority>"),
            r.path
                .as_deref()
                .or(r.prefix.as_deref())
                .unwrap_or("<same path>")
        ),
        Action::Forward(forward) => {
            let total: u32 = forward.destinations.iter().map(|d| d.weight).sum();
            let mut policy = Vec::new();
            if let Some(timeout) = &forward.timeout {
                policy.push(format!("timeout {timeout}"));
            }
            if let Some(retry) = &forward.retry {
                // Envoy's names for the conditions (`connect-failure`, `5xx`, ...).
                let on: Vec<String> = retry
                    .retry_on
                    .iter()
                    .filter_map(|o| serde_json::to_value(o).ok()?.as_str().map(str::to_owned))
                    .collect();
                let codes: Vec<String> = retry
                    .retriable_status_codes
                    .iter()
                    .map(u16::to_string)
                    .collect();
                let codes = if codes.is_empty() {
                    String::new()
                } else {
                    format!(" (status {})", codes.join(", "))
                };
                policy.push(format!(
                    "{} retries on {}{codes}",
                    retry.attempts,
                    on.join(",")
                ));
            }
            if !forward.mirrors.is_empty() {
                let mirrors: Vec<String> = forward
                    .mirrors
                    .iter()
                    .map(|m| format!("{} ({}%)", m.cluster, m.percent))
                    .collect();
                policy.push(format!("mirrored to {}", mirrors.join(", ")));
            }
            steps.push(Step {
                what: "forward",
                detail: if policy.is_empty() {
                    "no timeout, no retries".to_owned()
                } else {
                    policy.join("; ")
                },
                source: route.source.clone(),
            });
            let mut outcomes = Vec::new();
            for destination in &forward.destinations {
                let share = if total == 0 {
                    0.0
                } else {
                    f64::from(destination.weight) * 100.0 / f64::from(total)
                };
                let (detail, source, result) = match config.clusters.get(&destination.cluster) {
                    None => (
                        format!("{} ({share:.0}%): not configured", destination.cluster),
                        None,
                        "503 (NC): the cluster does not exist (an undefined subset?)".to_owned(),
                    ),
                    Some(cluster) => describe(cluster, share),
                };
                steps.push(Step {
                    what: "destination",
                    detail,
                    source,
                });
                outcomes.push(format!("{share:.0}% {result}"));
            }
            outcomes.join("; ")
        }
    };
    let outcome = match aborted {
        Some((_, aborted)) => format!("{aborted}; the rest: {outcome}"),
        None => outcome,
    };
    (steps, outcome)
}

fn abort_status(status: trellis_proxy_config::AbortStatus) -> String {
    match status {
        trellis_proxy_config::AbortStatus::Http(code) => format!("HTTP {code}"),
        trellis_proxy_config::AbortStatus::Grpc(code) => format!("gRPC status {code}"),
    }
}

/// A cluster as a step: its share, balancing, policies and endpoints; and what a request to it
/// gets.
fn describe(cluster: &Cluster, share: f64) -> (String, Option<String>, String) {
    let endpoints: Vec<String> = cluster
        .endpoints
        .iter()
        .map(|e| e.address.to_string())
        .collect();
    let mut detail = format!(
        "{} ({share:.0}%): {:?} over {}",
        cluster.name,
        cluster.load_balancer,
        if endpoints.is_empty() {
            "no endpoint".to_owned()
        } else {
            endpoints.join(", ")
        }
    );
    if cluster.outlier_detection.is_some() {
        detail.push_str("; outlier detection");
    }
    if cluster.limits.is_some() {
        detail.push_str("; connection limits");
    }
    if cluster.health_check.is_some() {
        detail.push_str("; active health checks");
    }
    let result = if endpoints.is_empty() {
        format!("503 (UH): {} has no endpoint", cluster.name)
    } else {
        format!("to {}", cluster.name)
    };
    (detail, cluster.source.clone(), result)
}

/// A route's matches, briefly.
fn matches(route: &Route) -> String {
    if route.matches.is_empty() {
        return "every request".to_owned();
    }
    let each: Vec<String> = route.matches.iter().map(one_match).collect();
    each.join(" or ")
}

fn one_match(m: &RouteMatch) -> String {
    let mut parts = Vec::new();
    let text = |m: &StringMatch| match m {
        StringMatch::Any => "present".to_owned(),
        StringMatch::Exact(s) => format!("= {s:?}"),
        StringMatch::Prefix(s) => format!("starts with {s:?}"),
        StringMatch::Regex(r) => format!("~ {:?}", r.as_str()),
    };
    if let Some(path) = &m.path {
        parts.push(format!("path {}", text(path)));
    }
    if let Some(method) = &m.method {
        parts.push(format!("method {}", text(method)));
    }
    for header in &m.headers {
        let sense = if header.absent { "absent" } else { "" };
        parts.push(format!(
            "header {} {}{sense}",
            header.name,
            text(&header.value)
        ));
    }
    for query in &m.query {
        parts.push(format!("query {} {}", query.name, text(&query.value)));
    }
    if let Some(port) = m.port {
        parts.push(format!("port {port}"));
    }
    if parts.is_empty() {
        "every request".to_owned()
    } else {
        parts.join(", ")
    }
}
