//! What the proxy reports about the traffic it carries: Istio's Prometheus metrics, access logs
//! and Envoy's response flags.

mod access_log;
mod flags;
mod metrics;

pub use access_log::{
    AccessLog, AccessLogEntry, AccessLogFormat, HttpRequestInfo, Rfc3339Millis, UnknownFormat,
};
pub use flags::ResponseFlags;
pub use metrics::{
    ActiveGuard, BYTE_BUCKETS, CONTENT_TYPE, ConnectionSecurityPolicy, DURATION_BUCKETS_MS,
    DestinationEdges, EdgeMetrics, InboundPeer, Metrics, ProxyIdentity, Reporter, RequestOutcome,
    RequestProtocol, TcpConnectionMetrics, UNKNOWN, WorkloadIdentity,
};
