//! Tests of `VirtualService` reading and rules: a full example, Istio's samples, and one test
//! per rule with the field path and message it reports (HTTP rules in `tests/http_rules.rs`).

use crate::validate::{FieldIssue, Severity};
use crate::{LoadOptions, Resource, load_text};

mod http_rules;

fn document(spec: &str) -> String {
    let spec: String = spec.lines().map(|line| format!("  {line}\n")).collect();
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: t\n  namespace: ns\nspec:\n{spec}"
    )
}

fn all_issues(text: &str) -> Vec<FieldIssue> {
    let load = load_text("t.yaml", text, &LoadOptions::default());
    assert!(load.syntax.is_none(), "{:?}", load.syntax);
    let rejected = load.rejected.iter().flat_map(|r| r.issues.iter());
    let warnings = load.loaded.iter().flat_map(|l| l.warnings.iter());
    rejected.chain(warnings).cloned().collect()
}

fn of(spec: &str, severity: Severity) -> Vec<String> {
    all_issues(&document(spec))
        .into_iter()
        .filter(|i| i.severity == severity)
        .map(|i| i.to_string())
        .collect()
}

fn errors(spec: &str) -> Vec<String> {
    of(spec, Severity::Error)
}

fn warnings(spec: &str) -> Vec<String> {
    of(spec, Severity::Warning)
}

/// Asserts that `issues` holds one at `path` whose message contains `words`.
#[track_caller]
fn has(issues: &[String], path: &str, words: &str) {
    let prefix = format!("{path}: ");
    assert!(
        issues
            .iter()
            .any(|i| i.starts_with(&prefix) && i[prefix.len()..].contains(words)),
        "expected `{path}: ..{words}..` in {issues:#?}"
    );
}

const ROUTE: &str = "route:\n  - destination: {host: reviews}";

#[test]
fn loads_a_full_virtual_service() {
    let text = r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: everything
  namespace: shop
spec:
  hosts: ["shop.example.com", "*.shop.example.com"]
  gateways: ["shop/edge", "mesh"]
  exportTo: [".", "other"]
  http:
  - name: api
    match:
    - name: v2
      uri: {prefix: /api/v2}
      scheme: {exact: https}
      method: {regex: "GET|POST"}
      authority: {prefix: shop}
      headers:
        x-user: {exact: jason}
        ":path": {prefix: /api}
      withoutHeaders:
        x-debug: {regex: "*"}
        x-test: {}
      queryParams:
        flag: {exact: "on"}
      port: 8080
      sourceLabels: {app: web}
      gateways: ["mesh"]
      sourceNamespace: frontend
      statPrefix: api-v2
      ignoreUriCase: true
    route:
    - destination: {host: api, subset: v2, port: {number: 9080}}
      weight: 75
      headers:
        request:
          set: {x-route: v2}
          add: {x-trace: "%REQ(x-request-id)%"}
          remove: [x-internal]
        response:
          set: {cache-control: no-store}
    - destination: {host: api.shop.svc.cluster.local, subset: v1}
      weight: 25
    timeout: 10s
    retries:
      attempts: 3
      perTryTimeout: 2s
      retryOn: "5xx,gateway-error,503,reset"
      retryRemoteLocalities: true
      retryIgnorePreviousHosts: true
      backoff: 25ms
    fault:
      delay: {fixedDelay: 5s, percentage: {value: 0.5}}
      abort: {httpStatus: 503, percentage: {value: 1}}
    rewrite:
      uriRegexRewrite: {match: "/api/v2/(.*)", rewrite: '/\1'}
      authority: api.internal
    mirror: {host: shadow, subset: v2}
    mirrorPercentage: {value: 10}
    corsPolicy:
      allowOrigins: [{exact: "https://shop.example.com"}, {regex: "https://.*\\.shop\\.example\\.com"}]
      allowMethods: [GET, POST]
      allowHeaders: [x-user, "*"]
      exposeHeaders: [x-trace]
      maxAge: 24h
      allowCredentials: true
      unmatchedPreflights: IGNORE
    headers:
      response:
        add: {x-served-by: trellis}
  - name: legacy
    match: [{uri: {exact: /old}}]
    redirect: {uri: /new, authority: shop.example.com, scheme: https, port: 8443, redirectCode: 308}
  - name: teapot
    match: [{uri: {exact: /teapot}}]
    directResponse:
      status: 418
      body: {string: "short and stout"}
  - name: grpc-down
    match: [{uri: {prefix: /grpc.Health}}]
    route: [{destination: {host: grpc}}]
    fault: {abort: {grpcStatus: UNAVAILABLE}}
    mirrors:
    - destination: {host: shadow-a}
      percentage: {value: 5}
  - name: default
    route: [{destination: {host: web}}]
  tls:
  - match:
    - sniHosts: ["secure.shop.example.com"]
      port: 443
      destinationSubnets: ["10.0.0.0/8"]
      sourceLabels: {app: web}
      gateways: ["shop/edge"]
      sourceNamespace: frontend
    route:
    - destination: {host: secure, port: {number: 8443}}
  tcp:
  - match:
    - port: 5432
      destinationSubnets: ["10.1.0.1"]
      sourceSubnet: "10.2.0.0/16"
    route:
    - {destination: {host: db}, weight: 100}
"#;
    let issues = all_issues(text);
    assert!(issues.is_empty(), "{issues:#?}");
    let load = load_text("t.yaml", text, &LoadOptions::default());
    let Resource::VirtualService(vs) = &load.loaded[0].resource else {
        panic!("not a VirtualService")
    };
    assert_eq!(vs.spec.http.len(), 5);
    assert!(vs.spec.applies_to_mesh());
    // Serialising and reading back gives the same value.
    let json = serde_json::to_string(&vs.spec).unwrap();
    let again: super::VirtualService = serde_json::from_str(&json).unwrap();
    assert_eq!(again, vs.spec);
    assert!(json.contains(r#""x-debug":{"regex":"*"}"#), "{json}");
}

#[test]
fn istio_samples_load_without_errors() {
    let files = crate::testing::sample_files();
    let mut count = 0;
    let mut problems = Vec::new();
    let mut warned = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        if !text.contains("kind: VirtualService") {
            continue;
        }
        let load = load_text(&file.to_string_lossy(), &text, &LoadOptions::default());
        for rejected in load
            .rejected
            .iter()
            .filter(|r| r.kind.as_deref() == Some("VirtualService"))
        {
            problems.push(format!("{}: {:?}", file.display(), rejected.issues));
        }
        for loaded in load
            .loaded
            .iter()
            .filter(|l| matches!(l.resource, Resource::VirtualService(_)))
        {
            count += 1;
            for warning in &loaded.warnings {
                let name = file.file_name().unwrap().to_string_lossy().to_string();
                warned.push(format!("{name}: {warning}"));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(
        count >= 20,
        "only {count} VirtualServices found in the samples"
    );
    // The one sample with a rule after a catch-all rule (Istio warns about it too).
    assert_eq!(warned, vec![
        "fault-injection-details-v1.yaml: spec.http[1]: this rule is never used: http[0] before it has no match \
         conditions and takes every request"
            .to_owned()
    ]);
}

#[test]
fn hosts_are_required_outside_delegates() {
    let e = errors("gateways: [ns/gw]\ntcp:\n- route: [{destination: {host: db}}]");
    has(&e, "spec.gateways", "without hosts is a delegate");
    has(&e, "spec.tcp", "delegates can only hold http rules");
    assert!(errors(&format!("http:\n- {ROUTE}")).is_empty());
}

#[test]
fn some_rules_are_required() {
    has(
        &errors("hosts: [a]"),
        "spec",
        "at least one http, tls or tcp rule",
    );
}

#[test]
fn host_names() {
    let e = errors(&format!(
        "hosts: [\"foo.ba!r\", \"*\", \"10.0.0.1\", \"foo.*.com\"]\nhttp:\n- {ROUTE}"
    ));
    has(&e, "spec.hosts[0]", "not a DNS-1123 label");
    has(
        &e,
        "spec.hosts[1]",
        "\"*\" cannot be a host of rules that apply to sidecars",
    );
    has(&e, "spec.hosts[3]", "is invalid");
    assert_eq!(e.len(), 3, "{e:#?}");
    // At gateways only, "*" is fine.
    assert!(
        errors(&format!(
            "hosts: [\"*\"]\ngateways: [ns/gw]\nhttp:\n- {ROUTE}"
        ))
        .is_empty()
    );
    // With mesh in the list, it is not.
    has(
        &errors(&format!(
            "hosts: [\"*\"]\ngateways: [ns/gw, mesh]\nhttp:\n- {ROUTE}"
        )),
        "spec.hosts[0]",
        "sidecars",
    );
}

#[test]
fn duplicate_hosts() {
    let e = errors(&format!(
        "hosts: [\"*.foo.bar\", \"*.bar\", a.com, a.com]\nhttp:\n- {ROUTE}"
    ));
    has(&e, "spec.hosts[1]", "overlaps \"*.foo.bar\"");
    has(&e, "spec.hosts[3]", "overlaps \"a.com\"");
}

#[test]
fn gateway_names() {
    let e = errors(&format!(
        "hosts: [a]\ngateways: [\"b@dgateway\", \"ns1/*\", \"*/gw\", \"/gw\", ns/Gw]\nhttp:\n- {ROUTE}"
    ));
    has(&e, "spec.gateways[0]", "not a valid gateway reference");
    has(&e, "spec.gateways[1]", "\"*\" is not a valid gateway name");
    has(
        &e,
        "spec.gateways[2]",
        "\"*\" is not a valid namespace name",
    );
    has(&e, "spec.gateways[3]", "needs both a namespace and a name");
    has(&e, "spec.gateways[4]", "\"Gw\" is not a valid gateway name");
    let text = format!("hosts: [a]\ngateways: [gateway.example.com, mesh, gw]\nhttp:\n- {ROUTE}");
    assert!(errors(&text).is_empty());
    has(
        &warnings(&text),
        "spec.gateways[0]",
        "write it as \"example/gateway\"",
    );
}

#[test]
fn export_to() {
    has(
        &errors(&format!(
            "hosts: [a]\nexportTo: [\"*\", ns]\nhttp:\n- {ROUTE}"
        )),
        "spec.exportTo",
        "cannot be combined",
    );
    has(
        &errors(&format!("hosts: [a]\nexportTo: [\"~\"]\nhttp:\n- {ROUTE}")),
        "spec.exportTo[0]",
        "not a valid exportTo value",
    );
}

#[test]
fn tls_rules() {
    let e = errors(
        "hosts: [\"*.example.com\"]
tls:
- match:
  - sniHosts: [a.example.com, other.com, \"foo.*.com\"]
    destinationSubnets: [\"10.0.0.0/33\"]
    port: 0
- match: []
- match:
  - sniHosts: []",
    );
    has(
        &e,
        "spec.tls[0].match[0].sniHosts[1]",
        "not within any of the VirtualService's hosts [*.example.com]",
    );
    has(&e, "spec.tls[0].match[0].sniHosts[2]", "is invalid");
    has(
        &e,
        "spec.tls[0].match[0].destinationSubnets[0]",
        "not a valid CIDR block",
    );
    has(&e, "spec.tls[0].route", "needs at least one destination");
    has(&e, "spec.tls[1].match", "at least one match");
    has(&e, "spec.tls[2].match[0].sniHosts", "at least one SNI host");
    let missing = errors("hosts: [a]\ntls:\n- route: [{destination: {host: b}}]");
    has(&missing, "spec.tls[0].match", "is required");
    let ip = "hosts: [a]\ntls:\n- match: [{sniHosts: [\"1.1.1.1\"]}]\n  route: [{destination: {host: b}}]";
    has(
        &warnings(ip),
        "spec.tls[0].match[0].sniHosts[0]",
        "IP address",
    );
}

#[test]
fn generated_sni_names_at_gateways() {
    let sni = "outbound_.15010_._.istiod.istio-system.svc.cluster.local";
    let ok = format!(
        "hosts: [{sni}]\ngateways: [ns1/gateway]\ntls:\n- match: [{{sniHosts: [{sni}]}}]\n  route: [{{destination: {{host: istiod.istio-system.svc.cluster.local}}}}]"
    );
    assert!(errors(&ok).is_empty(), "{:?}", errors(&ok));
    let bad = "hosts: [outbound_.x_._.svc]\ngateways: [ns1/gateway]\ntls:\n- match: [{sniHosts: [outbound_.x_._.svc]}]\n  route: [{destination: {host: b}}]";
    let e = errors(bad);
    has(&e, "spec.hosts[0]", "not a valid generated SNI name");
    has(
        &e,
        "spec.tls[0].match[0].sniHosts[0]",
        "not a valid generated SNI name",
    );
    // Sidecars never see these names: outside gateways they are plain (invalid) host names.
    has(
        &errors(&ok.replace("gateways: [ns1/gateway]\n", "")),
        "spec.hosts[0]",
        "is invalid",
    );
}

#[test]
fn tcp_rules() {
    let e = errors(
        "hosts: [a]\ntcp:\n- match: [{port: 70000, gateways: [\"a/b/c\"], sourceNamespace: \"-x\"}]",
    );
    has(&e, "spec.tcp[0].match[0].port", "between 1 and 65535");
    has(
        &e,
        "spec.tcp[0].match[0].gateways[0]",
        "not a valid gateway name",
    );
    has(
        &e,
        "spec.tcp[0].match[0].sourceNamespace",
        "not a valid namespace name",
    );
    has(&e, "spec.tcp[0].route", "needs at least one destination");
    let w = warnings(
        "hosts: [a]\ntcp:\n- match: [{sourceSubnet: nowhere}]\n  route: [{destination: {host: b}}]",
    );
    has(&w, "spec.tcp[0].match[0].sourceSubnet", "can never match");
}

#[test]
fn unreachable_http_rules() {
    let w = warnings(
        "hosts: [a]
http:
- name: catch-all
  route: [{destination: {host: b}}]
- match: [{uri: {prefix: /x}}]
  route: [{destination: {host: b}}]",
    );
    has(
        &w,
        "spec.http[1]",
        "rule \"catch-all\" (http[0]) before it has no match conditions",
    );
    let w = warnings(
        "hosts: [a]
http:
- match:
  - {name: api, uri: {prefix: /api}}
  route: [{destination: {host: b}}]
- match:
  - {uri: {prefix: /api}}
  - {uri: {prefix: /api/v1}, headers: {x-user: {exact: jason}}}
  route: [{destination: {host: c}}]
- match:
  - {uri: {prefix: /web}, method: {exact: GET}}
  - {uri: {prefix: /web}, method: {exact: POST}}
  route: [{destination: {host: d}}]",
    );
    has(
        &w,
        "spec.http[1].match[0]",
        "the same as match \"api\" (http[0].match[0])",
    );
    has(
        &w,
        "spec.http[1].match[1]",
        "http[0].match[0]) comes first and accepts every request this one does",
    );
    has(
        &w,
        "spec.http[1]",
        "earlier rules take every request its matches accept",
    );
    assert_eq!(w.len(), 3, "{w:#?}");
}

#[test]
fn match_coverage() {
    use super::HttpMatchRequest;
    let read = |text: &str| -> HttpMatchRequest { serde_json::from_str(text).unwrap() };
    let gateways = vec!["mesh".to_owned()];
    let scope = super::reachability::tests_scope(&gateways);
    let covers = |a: &str, b: &str| scope(&read(a), &read(b));
    assert!(covers(r#"{}"#, r#"{"uri": {"exact": "/a"}}"#));
    assert!(covers(
        r#"{"uri": {"prefix": "/"}}"#,
        r#"{"method": {"exact": "GET"}}"#
    ));
    assert!(covers(
        r#"{"uri": {"regex": "/a.*"}}"#,
        r#"{"uri": {"exact": "/abc"}}"#
    ));
    assert!(covers(
        r#"{"uri": {"prefix": "/A"}, "ignoreUriCase": true}"#,
        r#"{"uri": {"prefix": "/ab"}}"#
    ));
    assert!(!covers(
        r#"{"uri": {"prefix": "/a"}}"#,
        r#"{"uri": {"prefix": "/ab"}, "ignoreUriCase": true}"#
    ));
    assert!(covers(
        r#"{"headers": {"x": {}}}"#,
        r#"{"headers": {"X": {"exact": "1"}}}"#
    ));
    assert!(!covers(r#"{"headers": {"x": {"exact": "1"}}}"#, r#"{}"#));
    assert!(covers(
        r#"{"withoutHeaders": {"x": {"exact": "1"}}}"#,
        r#"{"withoutHeaders": {"x": {"regex": "*"}}}"#
    ));
    assert!(!covers(
        r#"{"withoutHeaders": {"x": {}}}"#,
        r#"{"withoutHeaders": {"x": {"exact": "1"}}}"#
    ));
    assert!(covers(
        r#"{"sourceLabels": {"app": "a"}}"#,
        r#"{"sourceLabels": {"app": "a", "v": "1"}}"#
    ));
    assert!(!covers(r#"{"gateways": ["ns/gw"]}"#, r#"{}"#));
    assert!(covers(r#"{"port": 0}"#, r#"{"port": 80}"#));
    assert!(!covers(r#"{"port": 80}"#, r#"{"port": 81}"#));
    assert!(!covers(r#"{"sourceNamespace": "a"}"#, r#"{}"#));
    assert!(!covers(
        r#"{"uri": {"regex": "/a.*"}}"#,
        r#"{"uri": {"prefix": "/a"}}"#
    ));
}

#[test]
fn unreachable_tcp_and_tls_rules() {
    let w = warnings(
        "hosts: [a.example.com]
tcp:
- route: [{destination: {host: b}}]
- match: [{port: 80}]
  route: [{destination: {host: b}}]
tls:
- match: [{sniHosts: [a.example.com]}]
  route: [{destination: {host: b}}]
- match: [{sniHosts: [a.example.com], port: 0}]
  route: [{destination: {host: c}}]",
    );
    has(
        &w,
        "spec.tcp[1]",
        "tcp[0] before it has no match conditions",
    );
    has(&w, "spec.tls[1].match[0]", "the same as tls[0].match[0]");
    has(
        &w,
        "spec.tls[1]",
        "earlier rules already have all of its matches",
    );
    assert_eq!(w.len(), 3, "{w:#?}");
}
