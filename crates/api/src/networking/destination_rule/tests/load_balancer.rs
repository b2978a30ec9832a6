//! Load balancing: oneOf choices, consistent hashing, warmup, locality and zone-aware settings.

use super::{assert_issue, issues};

#[test]
fn load_balancer_oneofs_and_hashing() {
    let found = issues(
        r#"
host: reviews
trafficPolicy:
  loadBalancer:
    simple: ROUND_ROBIN
    consistentHash:
      httpHeaderName: x-user
      useSourceIp: false
      ringHash: {}
      maglev: {tableSize: 10}
      minimumRingSize: 10
      httpCookie: {name: "", attributes: [{name: a}, {name: a}, {name: ""}]}
"#,
    );
    let lb = "spec.trafficPolicy.loadBalancer";
    assert_issue(
        &found,
        &format!("E {lb}"),
        "only one of simple, consistentHash, backendUtilization",
    );
    let ch = format!("{lb}.consistentHash");
    let oneofs: Vec<&String> = found
        .iter()
        .filter(|i| i.starts_with(&format!("E {ch}: only one of")))
        .collect();
    assert_eq!(oneofs.len(), 2, "{found:#?}");
    assert!(
        oneofs[0].contains("found httpHeaderName and httpCookie and useSourceIp"),
        "{oneofs:?}"
    );
    assert!(
        oneofs[1].contains("found ringHash and maglev"),
        "{oneofs:?}"
    );
    assert_issue(
        &found,
        &format!("E {ch}.minimumRingSize"),
        "cannot be combined with ringHash or maglev",
    );
    assert_issue(
        &found,
        &format!("E {ch}.maglev.tableSize"),
        "must be a prime number (got 10)",
    );
    assert_issue(&found, &format!("E {ch}.httpCookie.name"), "needs a name");
    assert_issue(
        &found,
        &format!("E {ch}.httpCookie.attributes[1].name"),
        "listed twice",
    );
    assert_issue(
        &found,
        &format!("E {ch}.httpCookie.attributes[2].name"),
        "needs a name",
    );
    assert_eq!(found.len(), 8, "{found:#?}");
}

#[test]
fn maglev_table_sizes_and_deprecated_ring_size() {
    let ch = "spec.trafficPolicy.loadBalancer.consistentHash";
    let found = issues("host: r\ntrafficPolicy: {loadBalancer: {consistentHash: {maglev: {}}}}");
    assert_eq!(
        found,
        vec![format!(
            "E {ch}.maglev.tableSize: is required for maglev (a prime number such as 65537)"
        )]
    );
    let found = issues(
        "host: r\ntrafficPolicy: {loadBalancer: {consistentHash: {maglev: {tableSize: 5000011}}}}",
    );
    assert_issue(
        &found,
        &format!("E {ch}.maglev.tableSize"),
        "less than 5000011",
    );
    let found =
        issues("host: r\ntrafficPolicy: {loadBalancer: {consistentHash: {minimumRingSize: 1024}}}");
    assert_eq!(
        found,
        vec![format!(
            "W {ch}.minimumRingSize: minimumRingSize is deprecated: use ringHash.minimumRingSize"
        )]
    );
    for prime in [1, 2, 3, 131, 65537] {
        let spec = format!(
            "host: r\ntrafficPolicy: {{loadBalancer: {{consistentHash: {{maglev: {{tableSize: {prime}}}}}}}}}"
        );
        assert!(issues(&spec).is_empty(), "{prime}");
    }
    for composite in [4, 9, 65536] {
        let spec = format!(
            "host: r\ntrafficPolicy: {{loadBalancer: {{consistentHash: {{maglev: {{tableSize: {composite}}}}}}}}}"
        );
        assert_issue(&issues(&spec), &format!("E {ch}.maglev.tableSize"), "prime");
    }
}

#[test]
fn warmup_rules() {
    let found = issues(
        "host: r\ntrafficPolicy: {loadBalancer: {warmup: {duration: 100us, aggression: 0}, warmupDurationSecs: 0s}}",
    );
    let lb = "spec.trafficPolicy.loadBalancer";
    assert_issue(&found, &format!("E {lb}.warmup.duration"), "at least 1ms");
    assert_issue(
        &found,
        &format!("E {lb}.warmup.aggression"),
        "greater than 0",
    );
    assert_issue(
        &found,
        &format!("E {lb}.warmupDurationSecs"),
        "at least 1ms",
    );
    assert_eq!(found.len(), 3, "{found:#?}");
    let found = issues(
        "host: r\ntrafficPolicy: {loadBalancer: {warmup: {minimumPercent: 150, duration: 1s}}}",
    );
    assert_issue(
        &found,
        &format!("E {lb}.warmup.minimumPercent"),
        "between 0 and 100",
    );
}

#[test]
fn locality_distribute() {
    let found = issues(
        r#"
host: reviews
trafficPolicy:
  outlierDetection: {consecutive5xxErrors: 1}
  loadBalancer:
    localityLbSetting:
      distribute:
      - from: us-east/*
        to: {"us-east/*": 60, "us-west/*": 30}
      - from: us-east/zone1
        to: {"eu/*": 0, "us/*": 100}
      - from: "a/*/b"
        to: {"x": 100}
      - from: "a//b"
        to: {"x//": 50, "y": 50}
      failover: [{from: us-east, to: us-west}]
"#,
    );
    let loc = "spec.trafficPolicy.loadBalancer.localityLbSetting";
    assert_issue(
        &found,
        &format!("E {loc}"),
        "distribute and failover cannot both be set",
    );
    assert_issue(
        &found,
        &format!("E {loc}.distribute[0].to"),
        "add up to 100 (they add up to 90)",
    );
    assert_issue(&found, &format!("E {loc}.distribute[1].from"), "overlaps");
    assert_issue(
        &found,
        &format!("E {loc}.distribute[1].to[\"eu/*\"]"),
        "between 1 and 100 (got 0)",
    );
    assert_issue(
        &found,
        &format!("E {loc}.distribute[2].from"),
        "may appear once, at the end",
    );
    assert_issue(
        &found,
        &format!("E {loc}.distribute[3].from"),
        "cannot be empty",
    );
    assert_issue(
        &found,
        &format!("E {loc}.distribute[3].to[\"x//\"]"),
        "cannot be empty",
    );
    assert_eq!(found.len(), 7, "{found:#?}");
}

#[test]
fn a_catch_all_locality_may_come_last() {
    let spec = r#"
host: reviews
trafficPolicy:
  loadBalancer:
    localityLbSetting:
      distribute:
      - {from: us-east/zone1/*, to: {"us-east/zone1/*": 100}}
      - {from: us-east/*, to: {"us-east/*": 100}}
      - {from: "*", to: {"us-east/*": 50, "us-west/*": 50}}
"#;
    assert!(issues(spec).is_empty(), "{:#?}", issues(spec));
    let found = issues(
        "host: r\ntrafficPolicy: {loadBalancer: {localityLbSetting: {distribute: [{from: a, to: {a: 100}}, {from: a/b, to: {a: 100}}]}}}",
    );
    assert_issue(
        &found,
        "E spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[1].from",
        "overlaps",
    );
}

#[test]
fn locality_failover() {
    let found = issues(
        r#"
host: reviews
trafficPolicy:
  loadBalancer:
    localityLbSetting:
      failover:
      - {from: us-east, to: us-east}
      - {from: us-east/zone1, to: "eu-*"}
      failoverPriority: [topology.kubernetes.io/zone, my-label]
"#,
    );
    let loc = "spec.trafficPolicy.loadBalancer.localityLbSetting";
    assert_issue(
        &found,
        &format!("E {loc}.failoverPriority[0]"),
        "cannot be used together with failover",
    );
    assert_issue(&found, &format!("W {loc}"), "needs outlierDetection");
    assert_issue(&found, &format!("E {loc}.failover[0]"), "different region");
    assert_issue(&found, &format!("E {loc}.failover[1].from"), "regions only");
    assert_issue(&found, &format!("E {loc}.failover[1].to"), "wildcard");
    assert_eq!(found.len(), 5, "{found:#?}");
}

#[test]
fn zone_aware_settings() {
    let found = issues(
        r#"
host: reviews
trafficPolicy:
  outlierDetection: {consecutive5xxErrors: 1}
  loadBalancer:
    localityLbSetting: {enabled: true}
    zoneAwareLbSetting:
      failover: [{from: a/b, to: c}]
      failoverPriority: [topology.istio.io/subzone]
      minClusterSize: 0
"#,
    );
    let lb = "spec.trafficPolicy.loadBalancer";
    assert_issue(
        &found,
        &format!("E {lb}"),
        "only one of localityLbSetting, zoneAwareLbSetting",
    );
    assert_issue(
        &found,
        &format!("E {lb}.zoneAwareLbSetting.failoverPriority[0]"),
        "zone-aware routing already orders",
    );
    assert_issue(
        &found,
        &format!("E {lb}.zoneAwareLbSetting.failover[0].from"),
        "regions only",
    );
    assert_issue(
        &found,
        &format!("E {lb}.zoneAwareLbSetting.minClusterSize"),
        "at least 1",
    );
    assert_eq!(found.len(), 4, "{found:#?}");
}
