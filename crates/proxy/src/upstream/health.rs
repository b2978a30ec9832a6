//! Active health checking (a cluster's [`HealthCheck`]): a task of the proxy's checks each
//! endpoint every interval, by a TCP connection, an HTTP/1.1 `GET`, or the gRPC health
//! protocol; an endpoint that fails `unhealthy_threshold` checks in a row leaves balancing (the
//! pick steps around it as around an ejected one) until it passes `healthy_threshold` in a row.
//! Endpoints start healthy. Changes are logged and counted ([`Stat::HealthFailures`],
//! [`Stat::HealthReturns`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use http::{Request, header};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::sync::watch;
use trellis_proxy_config::{HealthCheck, HealthCheckKind};

use super::{ClusterRuntime, ClusterStats, Stat};
use crate::Proxy;

/// How often the checker looks for checks that are due.
const TICK: Duration = Duration::from_millis(50);

/// The health of a cluster's endpoints.
#[derive(Debug)]
pub struct Health {
    config: HealthCheck,
    endpoints: Box<[EndpointHealth]>,
    unhealthy: AtomicUsize,
    epoch: Instant,
}

#[derive(Debug)]
struct EndpointHealth {
    healthy: AtomicBool,
    /// Failures in a row while healthy; passes in a row while unhealthy.
    streak: AtomicU32,
    /// When its next check is due, in nanoseconds since `epoch`.
    due: AtomicU64,
}

impl Health {
    pub fn new(config: &HealthCheck, endpoints: usize) -> Self {
        Self {
            config: config.clone(),
            endpoints: (0..endpoints)
                .map(|_| EndpointHealth {
                    healthy: AtomicBool::new(true),
                    streak: AtomicU32::new(0),
                    due: AtomicU64::new(0),
                })
                .collect(),
            unhealthy: AtomicUsize::new(0),
            epoch: Instant::now(),
        }
    }

    /// Whether every endpoint is healthy (nothing for a pick to check).
    pub fn none_unhealthy(&self) -> bool {
        self.unhealthy.load(Ordering::Relaxed) == 0
    }

    pub fn is_healthy(&self, index: usize) -> bool {
        self.endpoints
            .get(index)
            .is_none_or(|e| e.healthy.load(Ordering::Relaxed))
    }

    /// The endpoints whose check is due now; each is then not due again for an interval.
    fn due(&self) -> Vec<usize> {
        let now = nanos(self.epoch.elapsed());
        let interval = nanos(self.config.interval.as_std());
        self.endpoints
            .iter()
            .enumerate()
            .filter(|(_, e)| {
                let due = e.due.load(Ordering::Relaxed);
                due <= now
                    && e.due
                        .compare_exchange(due, now + interval, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
            })
            .map(|(index, _)| index)
            .collect()
    }

    /// Records a check's result for endpoint `index`.
    fn record(
        &self,
        index: usize,
        passed: bool,
        address: SocketAddr,
        cluster: &str,
        stats: &ClusterStats,
    ) {
        let Some(endpoint) = self.endpoints.get(index) else {
            return;
        };
        let healthy = endpoint.healthy.load(Ordering::Relaxed);
        if passed == healthy {
            endpoint.streak.store(0, Ordering::Relaxed);
            return;
        }
        let streak = endpoint.streak.fetch_add(1, Ordering::Relaxed) + 1;
        let threshold = if healthy {
            self.config.unhealthy_threshold
        } else {
            self.config.healthy_threshold
        };
        if streak < threshold {
            return;
        }
        endpoint.streak.store(0, Ordering::Relaxed);
        endpoint.healthy.store(!healthy, Ordering::Relaxed);
        if healthy {
            self.unhealthy.fetch_add(1, Ordering::Relaxed);
            stats.bump(Stat::HealthFailures);
            tracing::warn!(cluster, endpoint = %address, failures = streak, "health check failed: endpoint out of balancing");
        } else {
            self.unhealthy.fetch_sub(1, Ordering::Relaxed);
            stats.bump(Stat::HealthReturns);
            tracing::info!(cluster, endpoint = %address, "health check passed: endpoint back in balancing");
        }
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Checks the endpoints of every cluster in the proxy's configuration as they fall due, until
/// `drain` turns true. Each check runs on a task of its own.
pub async fn run(proxy: Arc<Proxy>, mut drain: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(TICK) => {}
            () = crate::listener::draining(&mut drain) => return,
        }
        let snapshot = proxy.config.load();
        for (_, cluster) in snapshot.clusters() {
            let Some(health) = &cluster.health else {
                continue;
            };
            for index in health.due() {
                let cluster = cluster.clone();
                tokio::spawn(async move {
                    let Some(endpoint) = cluster.endpoints.get(index) else {
                        return;
                    };
                    let Some(health) = &cluster.health else {
                        return;
                    };
                    let address = endpoint.address;
                    let passed = tokio::time::timeout(
                        health.config.timeout.as_std(),
                        check(&cluster, &health.config.check, address),
                    )
                    .await
                    .unwrap_or(false);
                    health.record(index, passed, address, &cluster.config.name, &cluster.stats);
                });
            }
        }
    }
}

/// One check of the endpoint at `address`.
async fn check(cluster: &ClusterRuntime, kind: &HealthCheckKind, address: SocketAddr) -> bool {
    let Ok(stream) = TcpStream::connect(address).await else {
        return false;
    };
    let host = cluster
        .config
        .service
        .as_ref()
        .map_or_else(|| address.to_string(), |s| s.host.clone());
    match kind {
        HealthCheckKind::Tcp => true,
        HealthCheckKind::Http { path } => http_check(stream, &host, path).await.unwrap_or(false),
        HealthCheckKind::Grpc { service } => {
            grpc_check(stream, &host, service).await.unwrap_or(false)
        }
    }
}

/// `GET path`: passes on a 2xx.
async fn http_check(stream: TcpStream, host: &str, path: &str) -> Option<bool> {
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
            .await
            .ok()?;
    tokio::spawn(connection);
    let request = Request::get(path)
        .header(header::HOST, host)
        .header(header::USER_AGENT, "trellis-health-check")
        .body(Empty::new())
        .ok()?;
    let response = sender.send_request(request).await.ok()?;
    Some(response.status().is_success())
}

/// `grpc.health.v1.Health/Check` for `service`: passes on `SERVING`.
async fn grpc_check(stream: TcpStream, host: &str, service: &str) -> Option<bool> {
    let (mut sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake::<_, Full<Bytes>>(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(connection);
    // HealthCheckRequest { service = 1 }, in a gRPC frame.
    let mut message = Vec::new();
    if !service.is_empty() {
        message.push(0x0a);
        push_varint(&mut message, service.len() as u64);
        message.extend_from_slice(service.as_bytes());
    }
    let mut frame = vec![0];
    frame.extend_from_slice(&u32::try_from(message.len()).ok()?.to_be_bytes());
    frame.extend_from_slice(&message);
    let request = Request::post(format!("http://{host}/grpc.health.v1.Health/Check"))
        .header(header::CONTENT_TYPE, "application/grpc")
        .header(header::TE, "trailers")
        .body(Full::new(Bytes::from(frame)))
        .ok()?;
    let response = sender.send_request(request).await.ok()?;
    if !response.status().is_success() {
        return Some(false);
    }
    let status_ok =
        |headers: &http::HeaderMap| headers.get("grpc-status").map(|s| s.as_bytes() == b"0");
    if status_ok(response.headers()) == Some(false) {
        return Some(false); // trailers only: an error
    }
    let collected = response.into_body().collect().await.ok()?;
    if collected.trailers().and_then(status_ok) == Some(false) {
        return Some(false);
    }
    // HealthCheckResponse { status = 1 }: SERVING is 1.
    let mut body = collected.to_bytes();
    if body.len() < 5 {
        return Some(false);
    }
    body.advance(5);
    Some(serving(&body))
}

/// Whether a HealthCheckResponse's `status` (field 1, a varint) is SERVING (1).
fn serving(message: &[u8]) -> bool {
    message.windows(2).next() == Some(&[0x08, 0x01][..])
}

fn push_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(unhealthy: u32, healthy: u32) -> HealthCheck {
        HealthCheck {
            check: HealthCheckKind::Tcp,
            interval: trellis_proxy_config::Duration::from_millis(1000),
            timeout: trellis_proxy_config::Duration::from_millis(100),
            unhealthy_threshold: unhealthy,
            healthy_threshold: healthy,
        }
    }

    const ADDRESS: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 80);

    #[test]
    fn thresholds_take_an_endpoint_out_and_bring_it_back() {
        let health = Health::new(&config(3, 2), 2);
        let stats = ClusterStats::default();
        let record = |passed| health.record(1, passed, ADDRESS, "c", &stats);
        record(false);
        record(false);
        record(true);
        record(false);
        record(false);
        assert!(health.is_healthy(1), "two failures, a pass, two failures");
        record(false);
        assert!(!health.is_healthy(1));
        assert!(!health.none_unhealthy());
        assert!(health.is_healthy(0));
        record(true);
        assert!(!health.is_healthy(1), "one pass of two");
        record(true);
        assert!(health.is_healthy(1));
        assert_eq!(
            (
                stats.get(Stat::HealthFailures),
                stats.get(Stat::HealthReturns)
            ),
            (1, 1)
        );
    }

    #[test]
    fn each_endpoint_falls_due_once_an_interval() {
        let health = Health::new(&config(1, 1), 3);
        assert_eq!(health.due(), [0, 1, 2], "all at once, first");
        assert!(health.due().is_empty(), "not again within the interval");
    }

    #[test]
    fn serving_is_status_one() {
        assert!(serving(&[0x08, 0x01]));
        assert!(!serving(&[0x08, 0x02]));
        assert!(!serving(&[]));
    }
}
