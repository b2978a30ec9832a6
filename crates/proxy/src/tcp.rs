//! The TCP proxy: a connection to one endpoint of a cluster, bytes copied both ways until
//! either side closes.

use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite};
use trellis_proxy_config::{HashKey, LoadBalancer};

use crate::Proxy;
use crate::telemetry::{InboundPeer, ResponseFlags};
use crate::upstream::Stat;

/// What a TCP connection did, for telemetry.
#[derive(Debug)]
pub struct TcpOutcome {
    pub started: Instant,
    pub started_at: std::time::SystemTime,
    pub peer: std::net::SocketAddr,
    pub local: std::net::SocketAddr,
    pub cluster: Option<Arc<crate::upstream::ClusterRuntime>>,
    pub upstream: Option<std::net::SocketAddr>,
    pub sent: u64,
    pub received: u64,
    pub flags: ResponseFlags,
}

/// Proxies `downstream` to an endpoint of `cluster_name`.
pub async fn proxy_tcp<S>(
    proxy: &Arc<Proxy>,
    mut downstream: S,
    peer: std::net::SocketAddr,
    local: std::net::SocketAddr,
    cluster_name: &str,
    inbound: Option<&InboundPeer>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let snapshot = proxy.config.load();
    let mut outcome = TcpOutcome {
        started: Instant::now(),
        started_at: std::time::SystemTime::now(),
        peer,
        local,
        cluster: None,
        upstream: None,
        sent: 0,
        received: 0,
        flags: ResponseFlags::NONE,
    };
    let Some((_, cluster)) = snapshot.cluster(cluster_name) else {
        outcome.flags.insert(ResponseFlags::NO_CLUSTER_FOUND);
        proxy.record_tcp(&outcome);
        return;
    };
    outcome.cluster = Some(cluster.clone());
    cluster.stats.bump(Stat::Requests);
    let hash = match &cluster.config.load_balancer {
        LoadBalancer::RingHash {
            key: HashKey::SourceIp,
            ..
        }
        | LoadBalancer::Maglev {
            key: HashKey::SourceIp,
            ..
        } => Some(crate::balance::source_ip_hash(peer.ip())),
        _ => None,
    };
    let Some(index) = cluster.pick(hash, &[]) else {
        outcome.flags.insert(ResponseFlags::NO_HEALTHY_UPSTREAM);
        proxy.record_tcp(&outcome);
        return;
    };
    let endpoint = &cluster.endpoints[index];
    outcome.upstream = Some(endpoint.address);
    // Held while the connection lasts.
    let Ok(_slot) = cluster.connection_slot() else {
        cluster.stats.bump(Stat::Overflows);
        outcome.flags.insert(ResponseFlags::UPSTREAM_OVERFLOW);
        proxy.record_tcp(&outcome);
        return;
    };
    let connected = cluster.connect(index, crate::tls::Alpn::Opaque).await;
    // Outlier detection counts a failed connection as a 503, a made one as a success (the
    // proxy's own failures, such as having no certificate yet, not at all).
    match &connected {
        Ok(_) => cluster.report(index, 200),
        Err(error) if error.is_local() => {}
        Err(_) => cluster.report(index, 503),
    }
    let mut upstream = match connected {
        Ok(stream) => stream,
        Err(_) => {
            cluster.stats.bump(Stat::ConnectFailures);
            outcome
                .flags
                .insert(ResponseFlags::UPSTREAM_CONNECTION_FAILURE);
            proxy.record_tcp(&outcome);
            return;
        }
    };
    let in_flight = endpoint.start();
    let connection = match inbound {
        Some(peer) => peer.with_edge(
            &proxy.metrics,
            &cluster.config.name,
            cluster.config.service.as_ref(),
            |edge| edge.tcp_opened(),
        ),
        None => cluster.with_edge(Some(index), |edge| edge.tcp_opened()),
    };
    match tokio::io::copy_bidirectional(&mut downstream, &mut upstream).await {
        Ok((to_upstream, to_downstream)) => {
            outcome.received = to_upstream;
            outcome.sent = to_downstream;
        }
        Err(error) => {
            tracing::debug!(%error, "TCP proxy connection ended");
            outcome
                .flags
                .insert(ResponseFlags::UPSTREAM_CONNECTION_TERMINATION);
        }
    }
    drop(in_flight);
    connection.received(outcome.received);
    connection.sent(outcome.sent);
    connection.close(outcome.flags);
    proxy.record_tcp(&outcome);
}
