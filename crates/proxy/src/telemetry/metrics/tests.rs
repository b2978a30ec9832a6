//! Checks the encoded output the way Prometheus reads it: parsed, by name and label.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::*;
use crate::telemetry::ResponseFlags;

type LabelMap = BTreeMap<String, String>;

/// The samples of an exposition: metric name → (labels, value), and `# TYPE` declarations.
#[derive(Debug, Default)]
struct Exposition {
    samples: BTreeMap<String, Vec<(LabelMap, f64)>>,
    types: BTreeMap<String, String>,
}

fn parse(text: &str) -> Exposition {
    let mut out = Exposition::default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .expect("TYPE line has a name and a type");
            out.types.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample has a value");
        let value: f64 = value.parse().expect("sample value is a number");
        let (name, labels) = match series.split_once('{') {
            None => (series, LabelMap::new()),
            Some((name, rest)) => (
                name,
                parse_labels(rest.strip_suffix('}').expect("closing brace")),
            ),
        };
        out.samples
            .entry(name.to_owned())
            .or_default()
            .push((labels, value));
    }
    out
}

fn parse_labels(mut rest: &str) -> LabelMap {
    let mut labels = LabelMap::new();
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").expect("label has a quoted value");
        let end = after.find('"').expect("label value ends");
        assert!(
            !after[..end].contains('\\'),
            "no escapes expected in test values"
        );
        labels.insert(key.to_owned(), after[..end].to_owned());
        rest = after[end + 1..]
            .strip_prefix(',')
            .unwrap_or(&after[end + 1..]);
    }
    labels
}

impl Exposition {
    fn find(&self, name: &str, want: &[(&str, &str)]) -> Vec<&(LabelMap, f64)> {
        self.samples
            .get(name)
            .map(|all| {
                all.iter()
                    .filter(|(labels, _)| {
                        want.iter()
                            .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn value(&self, name: &str, want: &[(&str, &str)]) -> f64 {
        let found = self.find(name, want);
        assert_eq!(
            found.len(),
            1,
            "exactly one {name} with {want:?}: {found:?}"
        );
        found[0].1
    }

    /// A histogram's cumulative buckets, `le` → count.
    fn buckets(&self, name: &str, want: &[(&str, &str)]) -> Vec<(f64, f64)> {
        let mut buckets: Vec<(f64, f64)> = self
            .find(&format!("{name}_bucket"), want)
            .into_iter()
            .map(|(labels, count)| {
                let le = &labels["le"];
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().expect("le")
                };
                (le, *count)
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        buckets
    }
}

const HTTP_LABELS: &[&str] = &[
    "reporter",
    "source_workload",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "source_cluster",
    "source_canonical_service",
    "source_canonical_revision",
    "destination_workload",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_service",
    "destination_service_name",
    "destination_service_namespace",
    "destination_cluster",
    "destination_canonical_service",
    "destination_canonical_revision",
    "request_protocol",
    "response_code",
    "grpc_response_status",
    "response_flags",
    "connection_security_policy",
];

fn productpage() -> ProxyIdentity {
    ProxyIdentity {
        workload: "productpage-v1".into(),
        namespace: "default".into(),
        app: "productpage".into(),
        version: "v1".into(),
        principal: "spiffe://cluster.local/ns/default/sa/bookinfo-productpage".into(),
        cluster: "Kubernetes".into(),
        ..ProxyIdentity::default()
    }
}

fn reviews() -> ServiceRef {
    ServiceRef {
        host: "reviews.default.svc.cluster.local".into(),
        name: "reviews".into(),
        namespace: "default".into(),
        subset: None,
    }
}

fn http(code: u16, millis: u64) -> RequestOutcome {
    RequestOutcome {
        protocol: RequestProtocol::Http,
        response_code: code,
        grpc_status: None,
        flags: ResponseFlags::NONE,
        duration: Duration::from_millis(millis),
        request_bytes: 300,
        response_bytes: 5000,
    }
}

#[test]
fn encodes_istio_names_labels_and_buckets() {
    let metrics = Metrics::new(&productpage());
    let out = metrics.outbound(Some(&reviews()), None);
    out.record_request(&http(200, 7));

    let peer = WorkloadIdentity::from_principal("spiffe://cluster.local/ns/default/sa/gateway");
    let inbound = metrics.inbound(None, Some(&peer), ConnectionSecurityPolicy::MutualTls);
    inbound.record_request(&RequestOutcome {
        protocol: RequestProtocol::Grpc,
        grpc_status: Some(14),
        flags: ResponseFlags::UPSTREAM_CONNECTION_FAILURE,
        ..http(503, 2)
    });

    let tcp = out.tcp_opened();
    tcp.sent(100);
    tcp.received(50);
    tcp.close(ResponseFlags::UPSTREAM_CONNECTION_TERMINATION);

    let _connection = metrics.connection_opened();
    metrics.config_applied(3);

    let text = metrics.encode();
    assert!(text.ends_with("# EOF\n"));
    assert!(!text.contains("_total_total"));
    let parsed = parse(&text);

    for (name, kind) in [
        ("istio_requests", "counter"),
        ("istio_request_duration_milliseconds", "histogram"),
        ("istio_request_bytes", "histogram"),
        ("istio_response_bytes", "histogram"),
        ("istio_tcp_sent_bytes", "counter"),
        ("istio_tcp_received_bytes", "counter"),
        ("istio_tcp_connections_opened", "counter"),
        ("istio_tcp_connections_closed", "counter"),
    ] {
        assert_eq!(
            parsed.types.get(name).map(String::as_str),
            Some(kind),
            "{name}"
        );
    }

    let outbound = [("reporter", "source"), ("request_protocol", "http")];
    let (labels, count) = parsed.find("istio_requests_total", &outbound)[0];
    assert_eq!(*count, 1.0);
    let keys: BTreeSet<&str> = labels.keys().map(String::as_str).collect();
    assert_eq!(keys, HTTP_LABELS.iter().copied().collect());
    for (key, value) in [
        ("source_workload", "productpage-v1"),
        ("source_canonical_service", "productpage"),
        ("source_canonical_revision", "v1"),
        ("source_cluster", "Kubernetes"),
        ("destination_workload", "unknown"),
        ("destination_service", "reviews.default.svc.cluster.local"),
        ("destination_service_name", "reviews"),
        ("destination_service_namespace", "default"),
        ("response_code", "200"),
        ("grpc_response_status", ""),
        ("response_flags", "-"),
        ("connection_security_policy", "unknown"),
    ] {
        assert_eq!(labels[key], value, "{key}");
    }

    let inbound_labels = [
        ("reporter", "destination"),
        (
            "source_principal",
            "spiffe://cluster.local/ns/default/sa/gateway",
        ),
        ("source_workload_namespace", "default"),
        ("source_workload", "unknown"),
        ("destination_workload", "productpage-v1"),
        ("destination_service", "unknown"),
        ("request_protocol", "grpc"),
        ("response_code", "503"),
        ("grpc_response_status", "14"),
        ("response_flags", "UF"),
        ("connection_security_policy", "mutual_tls"),
    ];
    assert_eq!(parsed.value("istio_requests_total", &inbound_labels), 1.0);

    let buckets = parsed.buckets("istio_request_duration_milliseconds", &outbound);
    let bounds: Vec<f64> = buckets.iter().map(|b| b.0).collect();
    // Istio's defaults, written out rather than read from the constant under test.
    let mut want = vec![
        0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
        30000.0, 60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
    ];
    want.push(f64::INFINITY);
    assert_eq!(bounds, want);
    let bounds: Vec<f64> = parsed
        .buckets("istio_response_bytes", &outbound)
        .iter()
        .map(|b| b.0)
        .collect();
    let mut want = vec![1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6, 1e7];
    want.push(f64::INFINITY);
    assert_eq!(bounds, want);
    assert_eq!(parsed.value("istio_request_bytes_sum", &outbound), 300.0);

    let tcp_keys: BTreeSet<&str> = HTTP_LABELS
        .iter()
        .copied()
        .filter(|k| !matches!(*k, "response_code" | "grpc_response_status"))
        .collect();
    let live = [("request_protocol", "tcp"), ("response_flags", "-")];
    let (labels, sent) = parsed.find("istio_tcp_sent_bytes_total", &live)[0];
    assert_eq!(
        labels.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        tcp_keys
    );
    assert_eq!(*sent, 100.0);
    assert_eq!(parsed.value("istio_tcp_received_bytes_total", &live), 50.0);
    assert_eq!(
        parsed.value("istio_tcp_connections_opened_total", &live),
        1.0
    );
    assert_eq!(
        parsed.value("istio_tcp_connections_closed_total", &live),
        0.0
    );
    let closed = [("request_protocol", "tcp"), ("response_flags", "UC")];
    assert_eq!(
        parsed.value("istio_tcp_connections_closed_total", &closed),
        1.0
    );

    assert_eq!(parsed.value("trellis_proxy_connections_active", &[]), 1.0);
    assert_eq!(parsed.value("trellis_proxy_config_generation", &[]), 3.0);
    assert_eq!(
        parsed.value(
            "trellis_proxy_config_updates_total",
            &[("result", "applied")]
        ),
        1.0
    );
    assert_eq!(
        parsed.value("trellis_proxy_access_log_dropped_total", &[]),
        0.0
    );
}

#[test]
fn observations_land_in_istio_buckets() {
    let metrics = Metrics::new(&productpage());
    let edge = metrics.outbound(Some(&reviews()), None);
    // 0.3 ms and exactly 0.5 ms fall in the first bucket (upper bounds are inclusive), 10 ms in
    // `le=10`, just over 10 ms in `le=25`, two hours only in `+Inf`.
    for duration in [
        Duration::from_micros(300),
        Duration::from_micros(500),
        Duration::from_millis(10),
        Duration::from_micros(10_001),
        Duration::from_secs(7200),
    ] {
        edge.record_request(&RequestOutcome {
            duration,
            ..http(200, 0)
        });
    }
    let parsed = parse(&metrics.encode());
    let buckets: BTreeMap<String, f64> = parsed
        .buckets("istio_request_duration_milliseconds", &[])
        .into_iter()
        .map(|(le, count)| (le.to_string(), count))
        .collect();
    for (le, want) in [
        ("0.5", 2.0),
        ("1", 2.0),
        ("5", 2.0),
        ("10", 3.0),
        ("25", 4.0),
        ("3600000", 4.0),
        ("inf", 5.0),
    ] {
        assert_eq!(buckets[le], want, "le={le}");
    }
    assert_eq!(
        parsed.value("istio_request_duration_milliseconds_count", &[]),
        5.0
    );
}

#[test]
fn edges_with_the_same_labels_are_one_series() {
    let metrics = Metrics::new(&productpage());
    let a = metrics.outbound(Some(&reviews()), None);
    let b = metrics.outbound(Some(&reviews()), Some(&WorkloadIdentity::default()));
    assert!(Arc::ptr_eq(&a, &b));
    let c = metrics.inbound(Some(&reviews()), None, ConnectionSecurityPolicy::None);
    assert!(!Arc::ptr_eq(&a, &c));
    a.record_request(&http(200, 1));
    b.record_request(&http(200, 1));
    let parsed = parse(&metrics.encode());
    assert_eq!(
        parsed.value("istio_requests_total", &[("reporter", "source")]),
        2.0
    );
}

#[test]
fn guards_and_dropped_connections_are_counted() {
    let metrics = Metrics::new(&productpage());
    let edge = metrics.outbound(None, None);
    let request = metrics.request_started();
    drop(edge.tcp_opened());
    let parsed = parse(&metrics.encode());
    assert_eq!(parsed.value("trellis_proxy_requests_active", &[]), 1.0);
    let live = [("response_flags", "-")];
    assert_eq!(
        parsed.value("istio_tcp_connections_closed_total", &live),
        1.0
    );
    drop(request);
    let parsed = parse(&metrics.encode());
    assert_eq!(parsed.value("trellis_proxy_requests_active", &[]), 0.0);
}
