//! The admin endpoints, on a loopback address (127.0.0.1:15000 by default):
//!
//! | Path | Does |
//! |---|---|
//! | `GET /ready` | 200 `LIVE` while serving, 503 while draining |
//! | `GET /stats/prometheus` | metrics in Prometheus text format |
//! | `GET /config_dump` | the configuration in force, as JSON, with its version |
//! | `GET /clusters` | every endpoint with its load and counters (`?format=json` for JSON) |
//! | `GET /certs` | the proxy's certificate in force: identity, chain, validity, roots (JSON; 404 without one) |
//! | `GET /logging`, `POST /logging?level=debug` | the log filter, and changing it live |
//! | `POST /quitquitquit` | drain and exit |

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::{Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::Proxy;
use crate::body::{self, Body};

/// Changes the log filter (`info`, `debug`, `trellis_proxy=trace,info`).
pub type SetLogLevel = Arc<dyn Fn(&str) -> Result<String, String> + Send + Sync>;

/// What the admin endpoints can act on besides the proxy.
#[derive(Clone)]
pub struct Controls {
    /// Set to true to drain and exit (`/quitquitquit`); also read to answer `/ready`.
    pub drain: watch::Sender<bool>,
    pub set_log_level: Option<SetLogLevel>,
    /// Prometheus text of the proxy's metrics.
    pub metrics: Arc<dyn Fn() -> String + Send + Sync>,
    /// False until the proxy has a configuration to serve (from the control plane); `/ready`
    /// answers 503 until then. `None`: ready from the start.
    pub configured: Option<watch::Receiver<bool>>,
}

impl std::fmt::Debug for Controls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controls")
            .field("draining", &*self.drain.borrow())
            .finish_non_exhaustive()
    }
}

/// Serves the admin endpoints until the process exits.
pub async fn serve(proxy: Arc<Proxy>, listener: TcpListener, controls: Controls) {
    let builder = crate::listener::admin_http_builder();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let proxy = proxy.clone();
        let controls = controls.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            let service =
                service_fn(move |request| respond(proxy.clone(), controls.clone(), request));
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn respond(
    proxy: Arc<Proxy>,
    controls: Controls,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let query = request.uri().query().unwrap_or("");
    let response = match (request.method(), request.uri().path()) {
        (&Method::GET, "/ready") if *controls.drain.borrow() => {
            text(StatusCode::SERVICE_UNAVAILABLE, "DRAINING\n")
        }
        (&Method::GET, "/ready") if controls.configured.as_ref().is_some_and(|c| !*c.borrow()) => {
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "NOT READY: no configuration from the control plane yet\n",
            )
        }
        (&Method::GET, "/ready") => text(StatusCode::OK, "LIVE\n"),
        (&Method::GET, "/stats/prometheus") => {
            let mut response = text(StatusCode::OK, (controls.metrics)());
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8"
                    .parse()
                    .expect("static"),
            );
            response
        }
        (&Method::GET, "/certs") => match proxy.certificates.current() {
            Some(certified) => json_response(&json!(&*certified)),
            None => text(StatusCode::NOT_FOUND, "no certificate\n"),
        },
        (&Method::GET, "/config_dump") => {
            let snapshot = proxy.config.load();
            json_response(&json!({"version": snapshot.version, "config": &*snapshot.config}))
        }
        (&Method::GET, "/clusters") if query.contains("format=json") => {
            json_response(&clusters_json(&proxy))
        }
        (&Method::GET, "/clusters") => text(StatusCode::OK, clusters_text(&proxy)),
        (&Method::GET | &Method::POST, "/logging") => logging(&controls, request.method(), query),
        (&Method::POST, "/quitquitquit") => {
            let _ = controls.drain.send(true);
            text(StatusCode::OK, "OK\n")
        }
        (
            _,
            "/ready" | "/stats/prometheus" | "/config_dump" | "/clusters" | "/certs"
            | "/quitquitquit",
        ) => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: see /ready, /stats/prometheus, /config_dump, /clusters, /certs, /logging, /quitquitquit\n",
        ),
    };
    Ok(response)
}

fn logging(controls: &Controls, method: &Method, query: &str) -> Response<Body> {
    let Some(set) = &controls.set_log_level else {
        return text(
            StatusCode::NOT_IMPLEMENTED,
            "log levels cannot be changed in this process\n",
        );
    };
    let level = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("level="));
    match (method, level) {
        (&Method::POST, Some(level)) => match set(level) {
            Ok(now) => text(StatusCode::OK, format!("log level: {now}\n")),
            Err(error) => text(StatusCode::BAD_REQUEST, format!("{error}\n")),
        },
        (&Method::POST, None) => text(
            StatusCode::BAD_REQUEST,
            "give the level: POST /logging?level=debug\n",
        ),
        _ => match set("") {
            Ok(now) => text(StatusCode::OK, format!("log level: {now}\n")),
            Err(error) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{error}\n")),
        },
    }
}

/// Envoy's `/clusters` text: `cluster::address::stat::value` lines.
fn clusters_text(proxy: &Proxy) -> String {
    let snapshot = proxy.config.load();
    let mut out = String::new();
    for (name, cluster) in snapshot.clusters() {
        for (stat, value) in cluster.stats.counters() {
            let _ = writeln!(out, "{name}::{stat}::{value}");
        }
        for (count, value) in cluster.limits.iter().flat_map(|l| l.counts()) {
            let _ = writeln!(out, "{name}::{count}::{value}");
        }
        for (index, endpoint) in cluster.endpoints.iter().enumerate() {
            let address = endpoint.address;
            let _ = writeln!(out, "{name}::{address}::weight::{}", endpoint.weight);
            let _ = writeln!(
                out,
                "{name}::{address}::rq_active::{}",
                endpoint.in_flight.load(Ordering::Relaxed)
            );
            let _ = writeln!(
                out,
                "{name}::{address}::cx_idle::{}",
                cluster.pool(index).idle_connections()
            );
            let (ejected, ejections) = cluster.outlier_status(index);
            let mut flags = String::new();
            if !cluster.is_healthy(index) {
                flags.push_str("/failed_active_hc");
            }
            if ejected {
                flags.push_str("/failed_outlier_check");
            }
            if flags.is_empty() {
                flags.push_str("healthy");
            }
            let _ = writeln!(out, "{name}::{address}::health_flags::{flags}");
            let _ = writeln!(out, "{name}::{address}::outlier_ejections::{ejections}");
        }
    }
    out
}

fn clusters_json(proxy: &Proxy) -> serde_json::Value {
    let snapshot = proxy.config.load();
    let clusters: Vec<_> = snapshot
        .clusters()
        .map(|(name, cluster)| {
            let mut entry = serde_json::Map::new();
            entry.insert("name".into(), json!(name));
            for (stat, value) in cluster.stats.counters() {
                entry.insert(stat.into(), json!(value));
            }
            for (count, value) in cluster.limits.iter().flat_map(|l| l.counts()) {
                entry.insert(count.into(), json!(value));
            }
            let endpoints: Vec<_> = cluster
                .endpoints
                .iter()
                .enumerate()
                .map(|(index, e)| {
                    let (ejected, ejections) = cluster.outlier_status(index);
                    let healthy = !ejected && cluster.is_healthy(index);
                    json!({
                        "address": e.address.to_string(),
                        "weight": e.weight,
                        "active_requests": e.in_flight.load(Ordering::Relaxed),
                        "idle_connections": cluster.pool(index).idle_connections(),
                        "healthy": healthy,
                        "outlier_ejections": ejections,
                    })
                })
                .collect();
            entry.insert("endpoints".into(), json!(endpoints));
            serde_json::Value::Object(entry)
        })
        .collect();
    json!({ "clusters": clusters })
}

fn text(status: StatusCode, body: impl Into<bytes::Bytes>) -> Response<Body> {
    let mut response = Response::new(body::full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        "text/plain; charset=utf-8".parse().expect("static"),
    );
    response
}

fn json_response(value: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(body::full(
        serde_json::to_vec_pretty(value).unwrap_or_default(),
    ));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        "application/json".parse().expect("static"),
    );
    response
}
