//! Shared pieces of the proxy's end-to-end tests: a proxy started in-process on loopback with a
//! given configuration, upstreams from `trellis-testkit`, and a plain HTTP client; `observe`
//! (deadlines, memory, panics in tasks) and `wire` (a counting upstream, generated bodies, raw
//! sockets) hold the lower-level pieces.

#![allow(dead_code, unreachable_pub)]

mod mesh;
mod observe;
mod wire;

#[allow(unused_imports)] // each test binary uses a different part
pub use mesh::*;
#[allow(unused_imports)]
pub use observe::*;
#[allow(unused_imports)]
pub use wire::*;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::watch;
use trellis_proxy::Proxy;
use trellis_proxy::listener::Limits;
use trellis_proxy::telemetry::{AccessLog, Metrics, ProxyIdentity};
use trellis_proxy_config::{
    Action, Cluster, Config, DirectResponse, Endpoint, Forward, HeaderOperations, Listener,
    ListenerProtocol, LoadBalancer, Route, RouteMatch, RouteTable, UpstreamProtocol, VirtualHost,
    WeightedCluster,
};
pub use trellis_testkit::upstream::NAME_HEADER;
pub use trellis_testkit::{Upstream, UpstreamConfig};

/// A proxy serving on loopback; drains when dropped.
pub struct Running {
    pub proxy: Arc<Proxy>,
    pub address: SocketAddr,
    drain: watch::Sender<bool>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.drain.send(true);
    }
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub fn drain(&self) {
        let _ = self.drain.send(true);
    }

    /// The sum of `istio_requests_total` over the series whose labels include all of `labels`
    /// (`("response_flags", "UC")`, ...).
    pub fn requests_total(&self, labels: &[(&str, &str)]) -> u64 {
        let wanted: Vec<String> = labels
            .iter()
            .map(|(name, value)| format!("{name}=\"{value}\""))
            .collect();
        self.proxy
            .metrics_text()
            .lines()
            .filter(|line| line.starts_with("istio_requests_total{"))
            .filter(|line| wanted.iter().all(|label| line.contains(label.as_str())))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }
}

/// Starts a proxy with `config`, whose first listener should be on `127.0.0.1:0`.
pub async fn start(config: Config) -> Running {
    start_with(config, Limits::default()).await
}

/// Starts a proxy with `config` whose listeners apply `limits` (shorter timeouts, say).
pub async fn start_with(config: Config, limits: Limits) -> Running {
    start_with_log(config, limits, AccessLog::off()).await
}

/// Access log lines as the proxy wrote them.
#[derive(Clone, Default)]
pub struct LogLines(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogLines {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogLines {
    /// The lines written so far, each parsed as JSON.
    pub fn json(&self) -> Vec<serde_json::Value> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|line| serde_json::from_str(line).expect("a JSON access log line"))
            .collect()
    }
}

/// Starts a proxy with `config` that writes its access log as JSON into the returned lines.
pub async fn start_logged(config: Config) -> (Running, LogLines) {
    let lines = LogLines::default();
    let log = AccessLog::spawn(
        trellis_proxy::telemetry::AccessLogFormat::Json,
        lines.clone(),
        16,
        Default::default(),
    )
    .expect("the access log thread starts");
    (start_with_log(config, Limits::default(), log).await, lines)
}

async fn start_with_log(config: Config, limits: Limits, log: AccessLog) -> Running {
    let metrics = Arc::new(Metrics::new(&ProxyIdentity::default()));
    let proxy = Proxy::with_options(config, metrics, log, limits);
    let (drain, draining) = watch::channel(false);
    let bound = trellis_proxy::start(&proxy, draining)
        .await
        .expect("listeners bind");
    Running {
        proxy,
        address: bound[0].address,
        drain,
    }
}

/// A configuration with one HTTP listener on `127.0.0.1:0` whose single virtual host (`*`)
/// holds `routes`, and the given clusters.
pub fn http_config(routes: Vec<Route>, clusters: Vec<Cluster>) -> Config {
    listener_config(
        ListenerProtocol::Http {
            route_table: "routes".into(),
        },
        routes,
        clusters,
    )
}

/// A configuration with one listener speaking `protocol` on `127.0.0.1:0`, the route table
/// `routes` (one virtual host, `*`, holding `routes`) and the given clusters.
pub fn listener_config(
    protocol: ListenerProtocol,
    routes: Vec<Route>,
    clusters: Vec<Cluster>,
) -> Config {
    Config {
        listeners: vec![Listener {
            name: "test".into(),
            address: "127.0.0.1:0".parse().unwrap(),
            protocol,
            mtls: None,
            inbound: false,
            captured: false,
        }],
        routes: BTreeMap::from([(
            "routes".to_owned(),
            RouteTable {
                name: "routes".into(),
                on_demand: false,
                virtual_hosts: vec![VirtualHost {
                    name: "any".into(),
                    domains: vec!["*".into()],
                    routes,
                }],
            },
        )]),
        clusters: clusters.into_iter().map(|c| (c.name.clone(), c)).collect(),
    }
}

/// A cluster over the given endpoints.
pub fn cluster(name: &str, endpoints: &[SocketAddr], load_balancer: LoadBalancer) -> Cluster {
    Cluster {
        name: name.into(),
        load_balancer,
        endpoints: endpoints.iter().map(|a| Endpoint::new(*a)).collect(),
        protocol: UpstreamProtocol::Http1,
        connect_timeout: None,
        idle_timeout: None,
        service: None,
        outlier_detection: None,
        limits: None,
        tcp_keepalive: None,
        health_check: None,
        source: None,
        tls: None,
    }
}

/// A route that forwards everything matching `matches` to `destinations` (cluster, weight).
pub fn forward(name: &str, matches: Vec<RouteMatch>, destinations: &[(&str, u32)]) -> Route {
    Route {
        name: name.into(),
        matches,
        action: Action::Forward(Forward {
            destinations: destinations
                .iter()
                .map(|(cluster, weight)| WeightedCluster {
                    cluster: (*cluster).into(),
                    weight: *weight,
                    headers: HeaderOperations::default(),
                })
                .collect(),
            rewrite: None,
            timeout: None,
            retry: None,
            mirrors: Vec::new(),
        }),
        headers: HeaderOperations::default(),
        fault: None,
        cors: None,
        rate_limit: None,
        source: None,
    }
}

/// A route answering `status` with `body` itself.
pub fn direct(name: &str, matches: Vec<RouteMatch>, status: u16, body: &str) -> Route {
    Route {
        name: name.into(),
        matches,
        action: Action::DirectResponse(DirectResponse {
            status,
            body: Some(body.into()),
        }),
        headers: HeaderOperations::default(),
        fault: None,
        cors: None,
        rate_limit: None,
        source: None,
    }
}

/// Upstreams named `name-0`, `name-1`, ... (their name comes back in [`NAME_HEADER`]).
pub async fn upstreams(name: &str, count: usize) -> Vec<Upstream> {
    let mut all = Vec::new();
    for i in 0..count {
        let config = UpstreamConfig {
            name: Some(format!("{name}-{i}").parse().unwrap()),
            ..UpstreamConfig::default()
        };
        all.push(Upstream::spawn(config).await.expect("upstream starts"));
    }
    all
}

/// An HTTP/1.1 client with keep-alive.
pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// An HTTP/2 (prior knowledge) client.
pub fn h2_client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// A response with its body read.
pub struct Got {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Got {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The upstream that answered (`name-i`), from the testkit's header.
    pub fn upstream(&self) -> Option<&str> {
        self.header(NAME_HEADER)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Sends a request and reads the whole response.
pub async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> Got {
    let response: Response<_> = client.request(request).await.expect("the proxy answers");
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("the body arrives").to_bytes();
    Got {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// GET `url` with extra headers.
pub async fn get(url: &str, headers: &[(&str, &str)]) -> Got {
    let mut request = Request::get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send(&client(), request.body(Full::new(Bytes::new())).unwrap()).await
}

/// A cluster whose endpoints speak HTTP/2 with prior knowledge (h2c), as gRPC needs.
pub fn h2_cluster(name: &str, endpoints: &[SocketAddr]) -> Cluster {
    Cluster {
        protocol: UpstreamProtocol::Http2,
        ..cluster(name, endpoints, LoadBalancer::RoundRobin)
    }
}
