//! Tests of `AuthorizationPolicy` reading and rules.

use super::Action;
use crate::validate::Severity;
use crate::{LoadOptions, Resource, load_text};

fn policy(spec: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: p, namespace: foo}}\nspec:\n{spec}"
    )
}

/// Errors as `path: message`.
fn errors(text: &str) -> Vec<String> {
    let load = load_text("t.yaml", text, &LoadOptions::default());
    assert!(load.syntax.is_none(), "{:?}", load.syntax);
    load.rejected
        .iter()
        .flat_map(|r| r.issues.iter().map(|i| i.to_string()))
        .collect()
}

/// Warnings of a document that loads.
fn warnings(text: &str) -> Vec<String> {
    let load = load_text("t.yaml", text, &LoadOptions::default());
    assert!(load.is_clean(), "{:?}", load.rejected);
    let warnings = &load.loaded[0].warnings;
    assert!(warnings.iter().all(|w| w.severity == Severity::Warning));
    warnings.iter().map(|i| i.to_string()).collect()
}

#[test]
fn loads_a_full_policy() {
    let text = policy(
        "  selector:
    matchLabels: {app: httpbin, version: v1}
  action: ALLOW
  rules:
  - from:
    - source:
        principals: [cluster.local/ns/default/sa/curl, '*/ns/test/sa/curl']
        notPrincipals: [cluster.local/ns/default/sa/bad]
        requestPrincipals: ['*']
        notRequestPrincipals: [issuer/bad]
        namespaces: [test]
        notNamespaces: [prod]
        ipBlocks: [10.0.0.0/8, 192.168.1.1]
        notIpBlocks: ['2001:db8::/32']
        remoteIpBlocks: [203.0.113.0/24]
        notRemoteIpBlocks: [203.0.113.7]
        trustDomains: [cluster.local, '*.example.com']
        notTrustDomains: [evil.example.com]
    - source:
        serviceAccounts: [curl, test/curl]
        notServiceAccounts: [other/bad]
    to:
    - operation:
        hosts: [httpbin.foo.svc.cluster.local, '*.example.com']
        notHosts: [admin.example.com]
        ports: ['8000']
        notPorts: ['9000']
        methods: [GET, POST]
        notMethods: [DELETE]
        paths: [/info*, '/api/{*}/items/{**}']
        notPaths: [/admin]
    when:
    - key: request.auth.claims[iss]
      values: [https://accounts.google.com]
    - key: request.headers[x-version]
      notValues: [v0]
    - key: source.ip
      values: [10.1.2.3, 10.2.0.0/16]
    - key: destination.port
      values: ['8000']
    - key: source.serviceAccount
      values: [test/curl]
    - key: experimental.envoy.filters.network.mysql_proxy[db.table]
      values: ['[update]']
",
    );
    assert_eq!(warnings(&text), Vec::<String>::new());
    let load = load_text("t.yaml", &text, &LoadOptions::default());
    let Resource::AuthorizationPolicy(p) = &load.loaded[0].resource else {
        panic!()
    };
    assert_eq!(p.spec.action(), Action::Allow);
    assert_eq!(p.spec.rules[0].from.len(), 2);
}

#[test]
fn custom_needs_a_provider_and_rules() {
    assert_eq!(
        errors(&policy("  action: CUSTOM\n")),
        vec![
            "spec.rules: a CUSTOM policy without rules never applies; add an empty rule {} to apply it to every request",
            "spec.provider: is required for the CUSTOM action",
        ]
    );
    let text = policy(
        "  action: CUSTOM
  provider: {}
  rules:
  - from:
    - source: {namespaces: [foo], ipBlocks: [1.2.3.4]}
    when:
    - {key: 'request.auth.claims[iss]', values: [a]}
",
    );
    assert_eq!(
        errors(&text),
        vec![
            "spec.provider.name: is required for the CUSTOM action",
            "spec.rules[0].from[0].source.namespaces: is not supported with the CUSTOM action",
            "spec.rules[0].when[0].key: request.auth.claims[iss] is not supported with the CUSTOM action",
        ]
    );
}

#[test]
fn provider_only_with_custom_and_deny_needs_rules() {
    assert_eq!(
        errors(&policy("  action: DENY\n  provider: {name: ext-authz}\n")),
        vec![
            "spec.rules: a DENY policy without rules never applies; add an empty rule {} to deny every request",
            "spec.provider: only the CUSTOM action uses a provider (action is DENY)",
        ]
    );
    assert!(errors(&policy("  action: AUDIT\n  rules: [{}]\n")).is_empty());
}

#[test]
fn sources_and_operations_must_say_something() {
    let text = policy(
        "  rules:
  - from: [{}, {source: {}}]
    to: [{}, {operation: {}}]
",
    );
    assert_eq!(
        errors(&text),
        vec![
            "spec.rules[0].from[0].source: is required",
            "spec.rules[0].from[1].source: must set at least one field",
            "spec.rules[0].to[0].operation: is required",
            "spec.rules[0].to[1].operation: must set at least one field",
        ]
    );
}

#[test]
fn source_values_are_checked() {
    let text = policy(
        "  rules:
  - from:
    - source:
        principals: ['']
        ipBlocks: [10.0.0.0/33, not-an-ip]
        trustDomains: ['a*b', 'x/y', '']
    - source:
        serviceAccounts: ['*', a/b/c, ns/]
        namespaces: [foo]
",
    );
    assert_eq!(
        errors(&text),
        vec![
            "spec.rules[0].from[0].source.principals[0]: must not be empty",
            "spec.rules[0].from[0].source.trustDomains[0]: \"a*b\": a wildcard may only start or end the value",
            "spec.rules[0].from[0].source.trustDomains[1]: \"x/y\": a trust domain cannot contain '/'",
            "spec.rules[0].from[0].source.trustDomains[2]: must not be empty",
            "spec.rules[0].from[0].source.ipBlocks[0]: \"10.0.0.0/33\" is not a valid CIDR block",
            "spec.rules[0].from[0].source.ipBlocks[1]: \"not-an-ip\" is not a valid IP address",
            "spec.rules[0].from[1].source: serviceAccounts and notServiceAccounts cannot be combined with principals, notPrincipals, namespaces or notNamespaces",
            "spec.rules[0].from[1].source.serviceAccounts[0]: \"*\": wildcards are not allowed in service accounts",
            "spec.rules[0].from[1].source.serviceAccounts[1]: \"a/b/c\" must be a service account name or namespace/serviceAccount",
            "spec.rules[0].from[1].source.serviceAccounts[2]: \"ns/\" must be a service account name or namespace/serviceAccount",
        ]
    );
}

#[test]
fn operation_values_are_checked() {
    let text = policy(
        "  rules:
  - to:
    - operation:
        ports: ['0', http, '8080']
        notPaths: ['/a/{**}/{*}', '/a/{x}', '/a/{*}/b c']
        methods: ['']
",
    );
    assert_eq!(
        errors(&text),
        vec![
            "spec.rules[0].to[0].operation.ports[0]: \"0\" is not a port number (1-65535)",
            "spec.rules[0].to[0].operation.ports[1]: \"http\" is not a port number (1-65535)",
            "spec.rules[0].to[0].operation.methods[0]: must not be empty",
            "spec.rules[0].to[0].operation.notPaths[0]: \"/a/{**}/{*}\": {**} must be the last template operator in the path",
            "spec.rules[0].to[0].operation.notPaths[1]: \"/a/{x}\": '{' and '}' may only appear in a whole-segment {*} or {**} template",
            "spec.rules[0].to[0].operation.notPaths[2]: \"/a/{*}/b c\": segment \"b c\" of a templated path may only hold letters, digits and -._~%!$&'()+,;:@=",
        ]
    );
}

#[test]
fn conditions_need_known_keys_and_values() {
    let text = policy(
        "  rules:
  - when:
    - key: ''
    - key: source.ip
    - key: request.headers
      values: [a]
    - key: destination.port
      values: ['70000']
      notValues: ['']
    - key: source.ip
      values: [1.2.3]
    - key: destination.namespace
      values: [a]
    - key: request.method
      values: [GET]
",
    );
    let found = errors(&text);
    assert_eq!(
        found[..6],
        [
            "spec.rules[0].when[0].key: must not be empty",
            "spec.rules[0].when[1]: set values or notValues (or both)",
            "spec.rules[0].when[2].key: \"request.headers\" must have the form request.headers[<name>]",
            "spec.rules[0].when[3].values[0]: \"70000\" is not a port number (1-65535)",
            "spec.rules[0].when[3].notValues[0]: must not be empty",
            "spec.rules[0].when[4].values[0]: \"1.2.3\" is not a valid IP address",
        ]
    );
    assert_eq!(
        found[6],
        "spec.rules[0].when[5].key: destination.namespace is not supported: a policy applies in its own namespace"
    );
    assert!(found[7].starts_with(
        "spec.rules[0].when[6].key: unknown condition key \"request.method\"; known keys are"
    ));
    assert_eq!(found.len(), 8);
}

#[test]
fn deny_rules_with_only_http_attributes_warn() {
    let text = policy("  action: DENY\n  rules:\n  - to:\n    - operation: {methods: [POST]}\n");
    let found = warnings(&text);
    assert_eq!(found.len(), 1);
    assert!(
        found[0].starts_with("spec.rules[0]: this DENY rule uses only HTTP attributes"),
        "{found:?}"
    );
    let with_port = policy(
        "  action: DENY\n  rules:\n  - to:\n    - operation: {methods: [POST], ports: ['80']}\n",
    );
    assert!(warnings(&with_port).is_empty());
    let with_peer =
        policy("  action: DENY\n  rules:\n  - from:\n    - source: {namespaces: [dev]}\n");
    assert!(warnings(&with_peer).is_empty());
}

#[test]
fn literal_stars_and_lowercase_methods_warn() {
    let text = policy("  rules:\n  - to:\n    - operation: {methods: [get], hosts: ['a.*.com']}\n");
    let found = warnings(&text);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found[0].starts_with(
            "spec.rules[0].to[0].operation.hosts[0]: \"a.*.com\": only a single leading"
        )
    );
    assert!(found[1].starts_with(
        "spec.rules[0].to[0].operation.methods[0]: methods are matched case-sensitively"
    ));
}

#[test]
fn dry_run_needs_allow_or_deny_and_a_boolean() {
    let with = |annotation: &str, spec: &str| {
        format!(
            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: p\n  annotations: {{istio.io/dry-run: '{annotation}'}}\nspec:\n{spec}"
        )
    };
    assert!(errors(&with("true", "  action: DENY\n  rules: [{}]\n")).is_empty());
    assert!(errors(&with("0", "  rules: [{}]\n")).is_empty());
    assert_eq!(
        errors(&with("yes", "  rules: [{}]\n")),
        vec![
            "metadata.annotations[\"istio.io/dry-run\"]: \"yes\" is not a boolean: use \"true\" or \"false\""
        ]
    );
    assert_eq!(
        errors(&with("true", "  action: AUDIT\n  rules: [{}]\n")),
        vec![
            "metadata.annotations[\"istio.io/dry-run\"]: dry-run is only supported for ALLOW and DENY policies, not AUDIT"
        ]
    );
}

#[test]
fn attachment_rules_apply() {
    let text = policy(
        "  selector: {matchLabels: {app: a}}\n  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: gw, namespace: other}]\n",
    );
    assert_eq!(
        errors(&text),
        vec![
            "spec: only one of targetRefs or selector can be set",
            "spec.targetRefs[0].namespace: cross namespace referencing is not currently supported",
        ]
    );
}
