//! DestinationRule: a full rule loads, Istio's samples load, and each rule reports at its field.

use crate::testing::{assert_issue, document, marked_issues, sample_files};
use crate::{LoadOptions, load_text};

/// Loads one DestinationRule (`ns/r`) with the given spec; issues as `E/W path: message`.
fn issues(spec: &str) -> Vec<String> {
    marked_issues(&document(
        "networking.istio.io/v1",
        "DestinationRule",
        "r",
        spec,
    ))
}

mod load_balancer;

#[test]
fn a_full_rule_loads() {
    let found = issues(
        r#"
host: reviews.prod.svc.cluster.local
exportTo: [".", "other"]
trafficPolicy:
  loadBalancer:
    consistentHash:
      httpCookie: {name: user, ttl: 0s, path: /, attributes: [{name: SameSite, value: Strict}]}
      ringHash: {minimumRingSize: 1024}
    localityLbSetting:
      enabled: true
      distribute:
      - from: us-west/zone1/*
        to: {"us-west/zone1/*": 80, "us-west/zone2/*": 20}
    warmup: {duration: 30s, minimumPercent: 10, aggression: 1.5}
  connectionPool:
    tcp:
      maxConnections: 100
      connectTimeout: 30ms
      idleTimeout: 0s
      maxConnectionDuration: 1h
      tcpKeepalive: {probes: 3, time: 7200s, interval: 75s}
    http:
      http1MaxPendingRequests: 10
      http2MaxRequests: 100
      maxRequestsPerConnection: 10
      maxRetries: 3
      idleTimeout: 1m
      h2UpgradePolicy: UPGRADE
      maxConcurrentStreams: 100
      http2KeepAlive: {interval: 10s, timeout: 2s}
  outlierDetection:
    consecutive5xxErrors: 7
    consecutiveGatewayErrors: 3
    splitExternalLocalOriginErrors: true
    consecutiveLocalOriginFailures: 2
    interval: 5m
    baseEjectionTime: 15m
    maxEjectionPercent: 50
    minHealthPercent: 30
    outlierDetectionHttpErrorCodes: [503, 504]
  tls:
    mode: MUTUAL
    clientCertificate: /etc/certs/cert.pem
    privateKey: /etc/certs/key.pem
    caCertificates: /etc/certs/ca.pem
    subjectAltNames: [reviews.example.com]
    sni: reviews.example.com
  portLevelSettings:
  - port: {number: 9080}
    loadBalancer: {simple: LEAST_REQUEST}
    tls: {mode: ISTIO_MUTUAL, sni: reviews}
  retryBudget: {percent: 20, minRetryConcurrency: 3, budgetInterval: 10s}
subsets:
- name: v1
  labels: {version: v1}
  trafficPolicy:
    loadBalancer:
      consistentHash: {maglev: {tableSize: 65537}, useSourceIp: true}
- name: v2
  labels: {version: v2}
  trafficPolicy:
    tunnel: {protocol: CONNECT, targetHost: proxy.example.com, targetPort: 8443}
- name: v3
  labels: {version: v3}
  trafficPolicy:
    proxyProtocol: {version: V2}
"#,
    );
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn sample_destination_rules_load() {
    let mut checked = 0;
    for path in sample_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        let load = load_text(&path.to_string_lossy(), &text, &LoadOptions::default());
        let refused: Vec<_> = load
            .rejected
            .iter()
            .filter(|r| r.kind.as_deref() == Some("DestinationRule"))
            .map(|r| (&r.name, &r.issues))
            .collect();
        assert!(refused.is_empty(), "{}: {refused:#?}", path.display());
        for loaded in load
            .loaded
            .iter()
            .filter(|l| l.resource.kind() == crate::Kind::DestinationRule)
        {
            assert!(
                loaded.warnings.is_empty(),
                "{}: {:?}",
                path.display(),
                loaded.warnings
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 10,
        "only {checked} DestinationRules found in the samples"
    );
}

#[test]
fn host_subsets_and_selector() {
    let found = issues(
        r#"
host: Reviews_Bad
subsets:
- {name: v1, labels: {version: v1}}
- {name: v1, labels: {version: v2}}
- {name: V_2, labels: {"-bad": x}}
workloadSelector: {}
exportTo: [other]
"#,
    );
    assert_issue(&found, "E spec.host", "\"Reviews_Bad\"");
    assert_issue(&found, "E spec.subsets[1].name", "used twice");
    assert_issue(
        &found,
        "E spec.subsets[2].name",
        "subset name \"V_2\" is invalid",
    );
    assert_issue(&found, "E spec.subsets[2].labels.-bad", "label key");
    assert_issue(&found, "W spec.workloadSelector", "every workload");
    assert_issue(
        &found,
        "E spec.exportTo",
        "cannot be exported beyond its own namespace",
    );
    assert_eq!(found.len(), 6, "{found:#?}");
}

#[test]
fn host_is_required() {
    let found = issues("subsets: []");
    assert_eq!(found, vec!["E spec.host: is required"]);
}

#[test]
fn empty_policies_are_refused() {
    let found = issues(
        r#"
host: reviews
trafficPolicy:
  portLevelSettings:
  - port: {number: 80}
  - tls: {mode: SIMPLE}
subsets:
- {name: v1, trafficPolicy: {}}
"#,
    );
    assert_issue(
        &found,
        "E spec.trafficPolicy.portLevelSettings[0]",
        "at least one of",
    );
    assert_issue(
        &found,
        "E spec.trafficPolicy.portLevelSettings[1].port",
        "must name its port",
    );
    assert_issue(
        &found,
        "E spec.subsets[0].trafficPolicy",
        "at least one field",
    );
    assert_eq!(found.len(), 3, "{found:#?}");
}

#[test]
fn duplicate_port_settings_warn() {
    let found = issues(
        r#"
host: reviews
trafficPolicy:
  portLevelSettings:
  - {port: {number: 80}, tls: {mode: SIMPLE}}
  - {port: {number: 80}, tls: {mode: DISABLE}}
"#,
    );
    assert_eq!(
        found,
        vec![
            "W spec.trafficPolicy.portLevelSettings[1].port: port 80 is already configured by an earlier entry; this one is ignored"
        ]
    );
}

#[test]
fn tunnel_and_proxy_protocol() {
    let found = issues(
        r#"
host: reviews
trafficPolicy:
  tunnel: {protocol: GET, targetHost: "bad host", targetPort: 0}
  proxyProtocol: {version: V1}
"#,
    );
    assert_issue(&found, "E spec.trafficPolicy", "tunnel and proxyProtocol");
    assert_issue(
        &found,
        "E spec.trafficPolicy.tunnel.protocol",
        "CONNECT or POST",
    );
    assert_issue(
        &found,
        "E spec.trafficPolicy.tunnel.targetHost",
        "neither a valid DNS name nor an IP",
    );
    assert_issue(
        &found,
        "E spec.trafficPolicy.tunnel.targetPort",
        "between 1 and 65535",
    );
    assert_eq!(found.len(), 4, "{found:#?}");
    assert!(
        issues("host: r\ntrafficPolicy: {tunnel: {targetHost: 10.0.0.1, targetPort: 443}}")
            .is_empty()
    );
}

#[test]
fn connection_pool_limits() {
    let found = issues(
        r#"
host: reviews
trafficPolicy:
  connectionPool:
    tcp:
      maxConnections: -1
      connectTimeout: 500us
      idleTimeout: 1500us
      tcpKeepalive: {time: 0s}
    http:
      http1MaxPendingRequests: -1
      maxRetries: -2
      h2UpgradePolicy: UPGRADE
      useClientProtocol: true
      http2KeepAlive: {interval: 1s}
subsets:
- name: v1
  trafficPolicy: {connectionPool: {}}
"#,
    );
    let pool = "spec.trafficPolicy.connectionPool";
    assert_issue(
        &found,
        &format!("E {pool}.tcp.maxConnections"),
        "cannot be negative (got -1)",
    );
    assert_issue(
        &found,
        &format!("E {pool}.tcp.connectTimeout"),
        "at least 1ms",
    );
    assert_issue(
        &found,
        &format!("E {pool}.tcp.idleTimeout"),
        "whole number of milliseconds",
    );
    assert_issue(
        &found,
        &format!("E {pool}.tcp.tcpKeepalive.time"),
        "at least 1ms",
    );
    assert_issue(
        &found,
        &format!("E {pool}.http.http1MaxPendingRequests"),
        "cannot be negative",
    );
    assert_issue(
        &found,
        &format!("E {pool}.http.maxRetries"),
        "cannot be negative (got -2)",
    );
    assert_issue(
        &found,
        &format!("E {pool}.http.useClientProtocol"),
        "UPGRADE",
    );
    assert_issue(
        &found,
        &format!("E {pool}.http.http2KeepAlive.timeout"),
        "is required",
    );
    assert_issue(
        &found,
        "E spec.subsets[0].trafficPolicy.connectionPool",
        "must set tcp or http",
    );
    assert_eq!(found.len(), 9, "{found:#?}");
}

#[test]
fn outlier_detection_rules() {
    let found = issues(
        r#"
host: reviews
trafficPolicy:
  outlierDetection:
    consecutiveErrors: 5
    consecutiveLocalOriginFailures: 3
    interval: 0.5ms
    baseEjectionTime: 30s
    maxEjectionPercent: 101
    minHealthPercent: -1
    outlierDetectionHttpErrorCodes: [503, 99]
"#,
    );
    let od = "spec.trafficPolicy.outlierDetection";
    assert_issue(&found, &format!("W {od}.consecutiveErrors"), "deprecated");
    assert_issue(
        &found,
        &format!("E {od}.consecutiveLocalOriginFailures"),
        "splitExternalLocalOriginErrors",
    );
    assert_issue(&found, &format!("E {od}.interval"), "at least 1ms");
    assert_issue(
        &found,
        &format!("E {od}.maxEjectionPercent"),
        "between 0 and 100 (got 101)",
    );
    assert_issue(
        &found,
        &format!("E {od}.minHealthPercent"),
        "between 0 and 100 (got -1)",
    );
    assert_issue(
        &found,
        &format!("E {od}.outlierDetectionHttpErrorCodes[1]"),
        "99 is not an HTTP status code",
    );
    assert_eq!(found.len(), 6, "{found:#?}");
}

#[test]
fn client_tls_rules() {
    let found = issues(
        r#"
host: reviews
trafficPolicy:
  tls: {mode: MUTUAL, caCertificates: /ca.pem}
  portLevelSettings:
  - port: {number: 1}
    tls: {mode: SIMPLE, credentialName: creds, privateKey: /key.pem}
  - port: {number: 2}
    tls: {mode: SIMPLE, insecureSkipVerify: true, subjectAltNames: [a.example.com]}
  - port: {number: 3}
    tls: {mode: ISTIO_MUTUAL, clientCertificate: /cert.pem}
"#,
    );
    let tp = "spec.trafficPolicy";
    assert_issue(
        &found,
        &format!("E {tp}.tls.clientCertificate"),
        "MUTUAL TLS needs a client certificate",
    );
    assert_issue(
        &found,
        &format!("E {tp}.tls.privateKey"),
        "MUTUAL TLS needs a private key",
    );
    assert_issue(
        &found,
        &format!("E {tp}.portLevelSettings[0].tls.privateKey"),
        "together with credentialName",
    );
    assert_issue(
        &found,
        &format!("E {tp}.portLevelSettings[1].tls.subjectAltNames"),
        "insecureSkipVerify",
    );
    assert_issue(
        &found,
        &format!("W {tp}.portLevelSettings[2].tls.clientCertificate"),
        "mesh's own certificates",
    );
    assert_eq!(found.len(), 5, "{found:#?}");
    assert!(
        issues("host: r\ntrafficPolicy: {tls: {mode: MUTUAL, credentialName: client-creds}}")
            .is_empty()
    );
}

#[test]
fn configmap_credentials_stay_in_the_namespace() {
    let found = issues(
        r#"
host: reviews
trafficPolicy:
  tls: {mode: SIMPLE, credentialName: "configmap://other/ca"}
subsets:
- name: v1
  trafficPolicy:
    portLevelSettings:
    - {port: {number: 443}, tls: {mode: SIMPLE, credentialName: "configmap://ca"}}
"#,
    );
    assert_issue(
        &found,
        "E spec.trafficPolicy.tls.credentialName",
        "own namespace \"ns\" (got \"other\")",
    );
    assert_issue(
        &found,
        "E spec.subsets[0].trafficPolicy.portLevelSettings[0].tls.credentialName",
        "configmap://<namespace>/<name>",
    );
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(
        issues(
            "host: r\ntrafficPolicy: {tls: {mode: SIMPLE, credentialName: \"configmap://ns/ca\"}}"
        )
        .is_empty()
    );
}

#[test]
fn durations_and_enums_are_read_strictly() {
    let found =
        issues("host: r\ntrafficPolicy: {loadBalancer: {simple: FASTEST}, tls: {mode: STRICT}}");
    assert!(
        found
            .iter()
            .any(|i| i.starts_with("E spec.trafficPolicy.loadBalancer.simple: unknown value")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|i| i.starts_with("E spec.trafficPolicy.tls.mode: unknown value")),
        "{found:#?}"
    );
    let found = issues("host: r\ntrafficPolicy: {connectionPool: {tcp: {connectTimeout: 10}}}");
    assert!(
        found
            .iter()
            .any(|i| i.starts_with("E spec.trafficPolicy.connectionPool.tcp.connectTimeout:")),
        "{found:#?}"
    );
}
