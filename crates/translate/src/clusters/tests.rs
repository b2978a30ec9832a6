use std::net::SocketAddr;

use trellis_api::types::Duration;
use trellis_proxy_config::{
    ConnectionLimits, HashKey, LoadBalancer, OutlierDetection, RetryBudget, ServiceRef,
    TcpKeepalive, UpstreamProtocol,
};

use crate::GatewayOptions;
use crate::testing::{assert_warned, http_fixture, http_rules, translate_with};

const V1: &str = "outbound|80|v1|reviews.default.svc.cluster.local";
const V2: &str = "outbound|80|v2|reviews.default.svc.cluster.local";
const ALL: &str = "outbound|80||reviews.default.svc.cluster.local";

/// Routes to reviews v1, v2 and the whole service, with these DestinationRules.
fn reviews(rules: &str) -> crate::Translation {
    http_rules(
        r#"
- match: [{uri: {prefix: /v1}}]
  route: [{destination: {host: reviews, subset: v1}}]
- match: [{uri: {prefix: /v2}}]
  route: [{destination: {host: reviews, subset: v2}}]
- route: [{destination: {host: reviews}}]
"#,
        rules,
    )
}

fn addresses(t: &crate::Translation, cluster: &str) -> Vec<SocketAddr> {
    t.config.clusters[cluster]
        .endpoints
        .iter()
        .map(|e| e.address)
        .collect()
}

const SUBSETS: &str = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    connectionPool:
      tcp: {connectTimeout: 250ms}
      http: {idleTimeout: 30s, h2UpgradePolicy: UPGRADE}
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      loadBalancer:
        consistentHash: {httpHeaderName: X-User, ringHash: {minimumRingSize: 2048}}
"#;

#[test]
fn subsets_filter_endpoints_and_override_the_policy() {
    let t = reviews(SUBSETS);
    assert!(t.warnings.is_empty(), "{:#?}", t.warnings);
    assert_eq!(addresses(&t, V1), ["10.0.1.1:80".parse().unwrap()]);
    assert_eq!(addresses(&t, V2), ["10.0.1.2:80".parse().unwrap()]);
    assert_eq!(addresses(&t, ALL).len(), 2);
    let v1 = &t.config.clusters[V1];
    assert_eq!(v1.load_balancer, LoadBalancer::RoundRobin);
    assert_eq!(v1.connect_timeout, Some(Duration::from_millis(250)));
    assert_eq!(v1.idle_timeout, Some(Duration::from_millis(30_000)));
    assert_eq!(v1.protocol, UpstreamProtocol::Http2);
    assert_eq!(
        v1.service,
        Some(ServiceRef {
            host: "reviews.default.svc.cluster.local".into(),
            name: "reviews.default.svc.cluster.local".into(),
            namespace: "default".into(),
            subset: Some("v1".into()),
        })
    );
    let v2 = &t.config.clusters[V2];
    assert_eq!(
        v2.load_balancer,
        LoadBalancer::RingHash {
            key: HashKey::Header("x-user".into()),
            minimum_ring_size: Some(2048)
        }
    );
    assert_eq!(
        v2.connect_timeout,
        Some(Duration::from_millis(250)),
        "fields the subset leaves unset are inherited"
    );
}

#[test]
fn port_level_settings_replace_the_top_level_ones_for_their_port() {
    let t = reviews(
        r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews.default.svc.cluster.local
  trafficPolicy:
    loadBalancer: {simple: RANDOM}
    connectionPool: {tcp: {connectTimeout: 1s}}
    portLevelSettings:
    - port: {number: 80}
      loadBalancer:
        consistentHash: {httpCookie: {name: session, path: /, ttl: 60s}, maglev: {tableSize: 65537}}
    - port: {number: 81}
      loadBalancer: {simple: ROUND_ROBIN}
  subsets:
  - {name: v1, labels: {version: v1}}
  - name: v2
    labels: {version: v2}
    trafficPolicy: {loadBalancer: {simple: LEAST_CONN}}
"#,
    );
    let all = &t.config.clusters[ALL];
    assert_eq!(
        all.load_balancer,
        LoadBalancer::Maglev {
            key: HashKey::Cookie {
                name: "session".into(),
                path: Some("/".into()),
                ttl: Some(Duration::from_millis(60_000))
            },
            table_size: Some(65537),
        }
    );
    assert_eq!(
        all.connect_timeout, None,
        "the port's entry replaces the connection pool too"
    );
    assert_eq!(t.config.clusters[V1].load_balancer, all.load_balancer);
    assert_eq!(
        t.config.clusters[V2].load_balancer,
        LoadBalancer::LeastRequest
    );
}

#[test]
fn default_and_other_load_balancers() {
    let none = reviews("");
    assert_eq!(
        none.config.clusters[ALL].load_balancer,
        LoadBalancer::LeastRequest,
        "Istio's default"
    );
    let rule = |lb: &str| {
        reviews(&format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: r, namespace: default}}\n\
             spec:\n  host: reviews\n  trafficPolicy:\n    loadBalancer: {lb}\n"
        ))
    };
    let passthrough = rule("{simple: PASSTHROUGH}");
    assert_eq!(
        passthrough.config.clusters[ALL].load_balancer,
        LoadBalancer::RoundRobin
    );
    assert_warned(
        &passthrough,
        &[
            "DestinationRule default/r: spec.trafficPolicy.loadBalancer.simple",
            "PASSTHROUGH",
        ],
    );
    let source_ip = rule("{consistentHash: {useSourceIp: true}}");
    assert_eq!(
        source_ip.config.clusters[ALL].load_balancer,
        LoadBalancer::RingHash {
            key: HashKey::SourceIp,
            minimum_ring_size: None
        }
    );
    let query = rule("{consistentHash: {httpQueryParameterName: user, minimumRingSize: 64}}");
    assert_eq!(
        query.config.clusters[ALL].load_balancer,
        LoadBalancer::RingHash {
            key: HashKey::QueryParameter("user".into()),
            minimum_ring_size: Some(64)
        }
    );
    let locality = rule("{simple: RANDOM, localityLbSetting: {enabled: true}}");
    assert_eq!(
        locality.config.clusters[ALL].load_balancer,
        LoadBalancer::Random
    );
    assert_warned(
        &locality,
        &["spec.trafficPolicy.loadBalancer.localityLbSetting: not supported yet"],
    );
}

#[test]
fn unsupported_policy_fields_are_reported() {
    let t = reviews(
        r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy:
    connectionPool: {tcp: {maxConnectionDuration: 1h}, http: {maxConcurrentStreams: 5, useClientProtocol: true}}
    outlierDetection: {consecutive5xxErrors: 3, splitExternalLocalOriginErrors: true}
"#,
    );
    assert_eq!(
        t.config.clusters[ALL].protocol,
        UpstreamProtocol::SameAsDownstream
    );
    for field in [
        "connectionPool.tcp.maxConnectionDuration",
        "connectionPool.http.maxConcurrentStreams",
        "outlierDetection.splitExternalLocalOriginErrors",
    ] {
        assert_warned(
            &t,
            &[&format!(
                "DestinationRule default/reviews: spec.trafficPolicy.{field}: not supported yet"
            )],
        );
    }
}

#[test]
fn connection_pool_limits_and_keepalive() {
    let t = reviews(
        r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 10, tcpKeepalive: {time: 30s, interval: 5s, probes: 3}}
      http: {http1MaxPendingRequests: 5, http2MaxRequests: 100, maxRetries: 0, maxRequestsPerConnection: 1}
"#,
    );
    let cluster = &t.config.clusters[ALL];
    assert_eq!(
        cluster.limits,
        Some(ConnectionLimits {
            max_connections: Some(10),
            max_pending_requests: Some(5),
            max_requests: Some(100),
            max_retries: None,
            max_requests_per_connection: Some(1),
            retry_budget: None,
        })
    );
    assert_eq!(
        cluster.tcp_keepalive,
        Some(TcpKeepalive {
            time: Some(Duration::from_millis(30_000)),
            interval: Some(Duration::from_millis(5_000)),
            probes: Some(3),
        })
    );
    assert_eq!(reviews("").config.clusters[ALL].limits, None);

    let budget = |settings: &str| {
        let t = reviews(&format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n\
             metadata: {{name: reviews, namespace: default}}\n\
             spec:\n  host: reviews\n  trafficPolicy: {{retryBudget: {settings}}}\n"
        ));
        t.config.clusters[ALL].limits.clone().unwrap().retry_budget
    };
    assert_eq!(
        budget("{}"),
        Some(RetryBudget {
            percent: 20.0,
            min_concurrency: 3
        })
    );
    assert_eq!(
        budget("{percent: 5, minRetryConcurrency: 1}"),
        Some(RetryBudget {
            percent: 5.0,
            min_concurrency: 1
        })
    );
}

#[test]
fn outlier_detection_takes_istios_values_and_envoys_defaults() {
    let od = |settings: &str| {
        let t = reviews(&format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n\
             metadata: {{name: reviews, namespace: default}}\n\
             spec:\n  host: reviews\n  trafficPolicy: {{outlierDetection: {settings}}}\n"
        ));
        t.config.clusters[ALL].outlier_detection.clone()
    };
    let defaults = OutlierDetection {
        consecutive_5xx: Some(5),
        consecutive_gateway_errors: None,
        interval: Duration::from_millis(10_000),
        base_ejection_time: Duration::from_millis(30_000),
        max_ejection_percent: 10,
        min_health_percent: 0,
    };
    assert_eq!(od("{}"), Some(defaults.clone()));
    assert_eq!(
        od(
            "{consecutive5xxErrors: 0, consecutiveGatewayErrors: 3, interval: 1s, \
            baseEjectionTime: 2s, maxEjectionPercent: 50, minHealthPercent: 40}"
        ),
        Some(OutlierDetection {
            consecutive_5xx: None,
            consecutive_gateway_errors: Some(3),
            interval: Duration::from_millis(1000),
            base_ejection_time: Duration::from_millis(2000),
            max_ejection_percent: 50,
            min_health_percent: 40,
        })
    );
    // The deprecated field counts gateway errors only.
    assert_eq!(
        od("{consecutiveErrors: 7}"),
        Some(OutlierDetection {
            consecutive_5xx: None,
            consecutive_gateway_errors: Some(7),
            ..defaults
        })
    );
    let none = reviews("");
    assert_eq!(none.config.clusters[ALL].outlier_detection, None);
}

/// The DestinationRule for reviews in `namespace`, setting `lb`, exported to `export_to`.
fn rule_in(namespace: &str, host: &str, lb: &str, export_to: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: r-{}, namespace: {namespace}}}\n\
         spec:\n  host: \"{host}\"\n  exportTo: {export_to}\n  trafficPolicy: {{loadBalancer: {{simple: {lb}}}}}\n",
        lb.to_lowercase().replace('_', "-")
    )
}

#[test]
fn rules_are_looked_up_in_the_proxy_then_service_then_root_namespace() {
    let rules = "- route: [{destination: {host: reviews}}]";
    let lb = |docs: &[String], namespace: Option<&str>| {
        let options = GatewayOptions {
            namespace: namespace.map(str::to_owned),
            ..GatewayOptions::new([0, 0, 0, 0].into())
        };
        let text = format!("{}\n---\n{}", http_fixture(rules), docs.join("\n---\n"));
        translate_with(&text, &options).config.clusters[ALL]
            .load_balancer
            .clone()
    };
    let root = rule_in(
        "istio-system",
        "reviews.default.svc.cluster.local",
        "RANDOM",
        r#"["*"]"#,
    );
    let service = rule_in("default", "reviews", "ROUND_ROBIN", r#"["*"]"#);
    let proxy = rule_in(
        "edge",
        "reviews.default.svc.cluster.local",
        "LEAST_REQUEST",
        r#"["."]"#,
    );
    let private = rule_in("default", "reviews", "ROUND_ROBIN", r#"["."]"#);
    let wildcard = rule_in("edge", "*.svc.cluster.local", "RANDOM", r#"["."]"#);
    assert_eq!(
        lb(&[root.clone(), service.clone()], None),
        LoadBalancer::Random,
        "a proxy in the root namespace uses its own rules"
    );
    assert_eq!(
        lb(&[root.clone(), service.clone()], Some("edge")),
        LoadBalancer::RoundRobin
    );
    assert_eq!(
        lb(&[root.clone(), private], Some("edge")),
        LoadBalancer::Random,
        "a rule not exported to the proxy is skipped"
    );
    assert_eq!(
        lb(
            &[root.clone(), service.clone(), proxy.clone()],
            Some("edge")
        ),
        LoadBalancer::LeastRequest
    );
    assert_eq!(
        lb(&[wildcard.clone(), service], Some("edge")),
        LoadBalancer::Random,
        "any rule of the proxy's namespace comes first"
    );
    assert_eq!(
        lb(&[wildcard, proxy], Some("edge")),
        LoadBalancer::LeastRequest,
        "the most specific host wins"
    );
}

#[test]
fn grpc_ports_speak_http2() {
    let t = http_rules(
        "- route: [{destination: {host: grpc.default.svc.cluster.local}}]",
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: grpc, namespace: default}
spec:
  hosts: [grpc.default.svc.cluster.local]
  ports: [{number: 7070, name: grpc, protocol: GRPC}]
  resolution: STATIC
  endpoints: [{address: 10.0.3.1, ports: {grpc: 17070}}]
"#,
    );
    let cluster = &t.config.clusters["outbound|7070||grpc.default.svc.cluster.local"];
    assert_eq!(cluster.protocol, UpstreamProtocol::Http2);
    assert_eq!(
        cluster.endpoints[0].address,
        "10.0.3.1:17070".parse().unwrap(),
        "the service's only port, at the endpoint's port"
    );
}

#[test]
fn rules_of_one_namespace_for_one_host_are_merged() {
    let t = reviews(
        r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: a, namespace: default}
spec:
  host: reviews
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
  subsets: [{name: v1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: b, namespace: default}
spec:
  host: reviews
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
  subsets: [{name: v1, labels: {version: v2}}, {name: v2, labels: {version: v2}}]
"#,
    );
    assert_eq!(
        t.config.clusters[ALL].load_balancer,
        LoadBalancer::Random,
        "the first rule's policy"
    );
    assert_eq!(
        addresses(&t, V1),
        ["10.0.1.1:80".parse().unwrap()],
        "the first definition of a subset"
    );
    assert_eq!(
        addresses(&t, V2),
        ["10.0.1.2:80".parse().unwrap()],
        "subsets of the second rule too"
    );
}

#[test]
fn rules_with_a_workload_selector_apply_to_the_workloads_they_select() {
    let text = format!(
        "{}\n---\n{}",
        http_fixture("- route: [{destination: {host: reviews}}]"),
        r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: for-ingress, namespace: istio-system}
spec:
  host: reviews.default.svc.cluster.local
  workloadSelector: {matchLabels: {istio: ingressgateway}}
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
"#
    );
    let lb = |labels: Option<&[(&str, &str)]>| {
        let labels = labels.map(|l| {
            l.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        });
        let options = GatewayOptions {
            labels,
            ..GatewayOptions::new([0, 0, 0, 0].into())
        };
        translate_with(&text, &options).config.clusters[ALL]
            .load_balancer
            .clone()
    };
    assert_eq!(
        lb(Some(&[("istio", "ingressgateway")])),
        LoadBalancer::Random
    );
    assert_eq!(
        lb(Some(&[("istio", "egressgateway")])),
        LoadBalancer::LeastRequest
    );
    assert_eq!(
        lb(None),
        LoadBalancer::LeastRequest,
        "with unknown labels the rule does not apply"
    );
}
