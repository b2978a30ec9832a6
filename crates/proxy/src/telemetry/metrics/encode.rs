//! Writes every edge's series at scrape time, as Istio's metric families.
//!
//! Each edge keeps its own series table, so the families are assembled here: a snapshot of all
//! series is taken (cloning handles, not values), then each family is written in one piece, as
//! OpenMetrics requires.

use std::fmt;
use std::sync::{Arc, PoisonError};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeMetric, LabelSetEncoder, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;

use super::edge::{CounterTotal, EdgeTable, HistogramTotal, HttpKey, HttpTotals, TcpSeries};
use super::labels::{EdgeLabels, RequestProtocol, put};
use crate::telemetry::ResponseFlags;

/// Picks one metric out of a series.
type Pick<S> = fn(&S) -> &dyn EncodeMetric;

const HTTP_FAMILIES: [(&str, &str, MetricType, Pick<HttpTotals>); 4] = [
    (
        "istio_requests",
        "Requests, by source, destination and response.",
        MetricType::Counter,
        |s| &s.requests,
    ),
    (
        "istio_request_duration_milliseconds",
        "Request duration in milliseconds.",
        MetricType::Histogram,
        |s| &s.duration,
    ),
    (
        "istio_request_bytes",
        "Request sizes in bytes.",
        MetricType::Histogram,
        |s| &s.request_bytes,
    ),
    (
        "istio_response_bytes",
        "Response sizes in bytes.",
        MetricType::Histogram,
        |s| &s.response_bytes,
    ),
];

const TCP_FAMILIES: [(&str, &str, MetricType, Pick<TcpSeries>); 4] = [
    (
        "istio_tcp_sent_bytes",
        "Bytes sent to TCP clients.",
        MetricType::Counter,
        |s| &s.sent,
    ),
    (
        "istio_tcp_received_bytes",
        "Bytes received from TCP clients.",
        MetricType::Counter,
        |s| &s.received,
    ),
    (
        "istio_tcp_connections_opened",
        "TCP connections opened.",
        MetricType::Counter,
        |s| &s.opened,
    ),
    (
        "istio_tcp_connections_closed",
        "TCP connections closed.",
        MetricType::Counter,
        |s| &s.closed,
    ),
];

impl EncodeMetric for CounterTotal {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> fmt::Result {
        encoder.encode_counter::<NoLabelSet, _, u64>(&self.0, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

impl EncodeMetric for HistogramTotal {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> fmt::Result {
        encoder.encode_histogram::<NoLabelSet>(self.sum, self.count, &self.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// The label set of one request series.
struct HttpLabels<'a>(&'a EdgeLabels, HttpKey);

impl EncodeLabelSet for HttpLabels<'_> {
    fn encode(&self, set: &mut LabelSetEncoder<'_>) -> fmt::Result {
        let HttpLabels(edge, key) = self;
        edge.encode_peers(set)?;
        put(set, "request_protocol", key.protocol.as_str())?;
        put(set, "response_code", key.response_code)?;
        match key.grpc_status {
            Some(status) => put(set, "grpc_response_status", status)?,
            None => put(set, "grpc_response_status", "")?,
        }
        put(set, "response_flags", key.flags)?;
        put(set, "connection_security_policy", edge.security.as_str())
    }
}

/// The label set of one TCP series: the HTTP one without `response_code` and
/// `grpc_response_status`.
struct TcpLabels<'a>(&'a EdgeLabels, ResponseFlags);

impl EncodeLabelSet for TcpLabels<'_> {
    fn encode(&self, set: &mut LabelSetEncoder<'_>) -> fmt::Result {
        let TcpLabels(edge, flags) = self;
        edge.encode_peers(set)?;
        put(set, "request_protocol", RequestProtocol::Tcp.as_str())?;
        put(set, "response_flags", flags)?;
        put(set, "connection_security_policy", edge.security.as_str())
    }
}

/// Writes one family; nothing at all when it has no series yet.
fn family<'a, L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder<'_>,
    (name, help, metric_type): (&str, &str, MetricType),
    series: impl Iterator<Item = (L, &'a dyn EncodeMetric)>,
) -> fmt::Result {
    let mut series = series.peekable();
    if series.peek().is_none() {
        return Ok(());
    }
    let mut family = encoder.encode_descriptor(name, help, None, metric_type)?;
    for (labels, metric) in series {
        metric.encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// The registry's view of the [`EdgeTable`].
#[derive(Debug)]
pub(super) struct EdgeCollector(pub(super) Arc<EdgeTable>);

impl Collector for EdgeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let edges = self.0.snapshot();
        let mut http = Vec::new();
        let mut tcp = Vec::new();
        for edge in &edges {
            http.extend(
                edge.http
                    .load()
                    .iter()
                    .map(|(key, s)| (edge.labels(), *key, s.totals())),
            );
            let table = edge.tcp.read().unwrap_or_else(PoisonError::into_inner);
            tcp.extend(
                table
                    .iter()
                    .map(|(flags, s)| (edge.labels(), *flags, s.clone())),
            );
        }
        for (name, help, metric_type, pick) in HTTP_FAMILIES {
            let series = http
                .iter()
                .map(|(edge, key, s)| (HttpLabels(edge, *key), pick(s)));
            family(&mut encoder, (name, help, metric_type), series)?;
        }
        for (name, help, metric_type, pick) in TCP_FAMILIES {
            let series = tcp
                .iter()
                .map(|(edge, flags, s)| (TcpLabels(edge, *flags), pick(s)));
            family(&mut encoder, (name, help, metric_type), series)?;
        }
        Ok(())
    }
}
