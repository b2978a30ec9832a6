//! Connection-pool limits for TCP and HTTP: what a `DestinationRule` sets towards a service, and
//! what a `Sidecar` sets for inbound connections to its workload.

use serde::{Deserialize, Serialize};

use super::check_proxy_duration;
use crate::types::Duration;
use crate::validate::{Validate, Validator};

#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionPoolSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpSettings>,
}

/// Istio's `ConnectionPoolSettings.TCPSettings`: limits common to HTTP and TCP connections.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TcpSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_keepalive: Option<TcpKeepalive>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connection_duration: Option<Duration>,
    /// `0s` turns the idle timeout off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<Duration>,
}

/// Istio's `ConnectionPoolSettings.TCPSettings.TcpKeepalive`: the socket's `SO_KEEPALIVE`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TcpKeepalive {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
}

/// Istio's `ConnectionPoolSettings.HTTPSettings`: limits for HTTP/1.1, HTTP/2 and gRPC.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http1_max_pending_requests: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2_max_requests: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests_per_connection: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h2_upgrade_policy: Option<H2UpgradePolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_client_protocol: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_streams: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2_keep_alive: Option<Http2KeepAlive>,
}

/// HTTP/2 PING frames on upstream connections.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Http2KeepAlive {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
}

/// Whether HTTP/1.1 connections are upgraded to HTTP/2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum H2UpgradePolicy {
    Default,
    DoNotUpgrade,
    Upgrade,
}

fn check_non_negative(v: &mut Validator, key: &str, value: Option<i32>) {
    if let Some(value) = value.filter(|n| *n < 0) {
        v.error_at(key, format!("cannot be negative (got {value})"));
    }
}

impl Validate for ConnectionPoolSettings {
    fn validate(&self, v: &mut Validator) {
        if self.tcp.is_none() && self.http.is_none() {
            v.error("a connection pool must set tcp or http; remove it if it is not needed");
        }
        v.nested("tcp", &self.tcp);
        v.nested("http", &self.http);
    }
}

impl Validate for TcpSettings {
    fn validate(&self, v: &mut Validator) {
        check_non_negative(v, "maxConnections", self.max_connections);
        check_proxy_duration(v, "connectTimeout", self.connect_timeout.as_ref());
        check_proxy_duration(
            v,
            "maxConnectionDuration",
            self.max_connection_duration.as_ref(),
        );
        // Below a millisecond the timeout counts as 0s, which turns it off.
        let idle = self.idle_timeout.filter(|d| d.as_std().as_millis() != 0);
        check_proxy_duration(v, "idleTimeout", idle.as_ref());
        if let Some(keepalive) = &self.tcp_keepalive {
            v.at("tcpKeepalive", |v| {
                check_proxy_duration(v, "time", keepalive.time.as_ref());
                check_proxy_duration(v, "interval", keepalive.interval.as_ref());
            });
        }
    }
}

impl Validate for HttpSettings {
    fn validate(&self, v: &mut Validator) {
        check_non_negative(
            v,
            "http1MaxPendingRequests",
            self.http1_max_pending_requests,
        );
        check_non_negative(v, "http2MaxRequests", self.http2_max_requests);
        check_non_negative(
            v,
            "maxRequestsPerConnection",
            self.max_requests_per_connection,
        );
        check_non_negative(v, "maxRetries", self.max_retries);
        check_non_negative(v, "maxConcurrentStreams", self.max_concurrent_streams);
        check_proxy_duration(v, "idleTimeout", self.idle_timeout.as_ref());
        if self.h2_upgrade_policy == Some(H2UpgradePolicy::Upgrade)
            && self.use_client_protocol == Some(true)
        {
            v.error_at(
                "useClientProtocol",
                "cannot be true with h2UpgradePolicy: UPGRADE (the upgrade would override the client's protocol)",
            );
        }
        if let Some(keepalive) = &self.http2_keep_alive {
            v.at("http2KeepAlive", |v| {
                for (key, value) in [
                    ("interval", &keepalive.interval),
                    ("timeout", &keepalive.timeout),
                ] {
                    match value {
                        None => v.error_at(key, "is required when http2KeepAlive is set"),
                        Some(d) => check_proxy_duration(v, key, Some(d)),
                    }
                }
            });
        }
    }
}
