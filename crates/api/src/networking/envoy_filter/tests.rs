use super::*;
use crate::{LoadOptions, Resource, load_text};

/// The warning every EnvoyFilter gets.
const CAUTION: &str = "warning spec: an EnvoyFilter patches the proxy's generated configuration";

/// Every issue found loading `text` but the general caution: errors as `path: message`,
/// warnings prefixed `warning `.
fn issues(text: &str) -> Vec<String> {
    crate::testing::issues(text)
        .into_iter()
        .filter(|i| !i.starts_with(CAUTION))
        .collect()
}

fn filter(spec: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata:\n  name: f\nspec:\n{spec}"
    )
}

/// One config patch, given as the lines under `- ` (indented by four spaces).
fn patch(body: &str) -> String {
    filter(&format!("  configPatches:\n  - {}", body.trim_start()))
}

const HTTP_FILTER: &str = "  configPatches:
  - applyTo: HTTP_FILTER
    match:
      listener:
        filterChain:
          filter:
            name: envoy.filters.network.http_connection_manager
            subFilter:
              name: envoy.filters.http.router
      proxy:
        proxyVersion: '^1\\.2[0-9].*'
        metadata: {ISTIO_VERSION: '1.20'}
    patch:
      operation: INSERT_BEFORE
      filterClass: AUTHZ
      value:
        name: envoy.filters.http.ext_proc
        typed_config:
          '@type': type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor
          grpc_service: {envoy_grpc: {cluster_name: ext-proc}}
  priority: -10
  workloadSelector:
    labels: {app: productpage}
";

#[test]
fn a_full_example_loads_and_is_cautioned_about() {
    let load = load_text("t.yaml", &filter(HTTP_FILTER), &LoadOptions::default());
    assert!(load.is_clean(), "{:?}", load.rejected);
    let warnings: Vec<String> = load.loaded[0]
        .warnings
        .iter()
        .map(|w| w.to_string())
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("spec: an EnvoyFilter patches"),
        "{warnings:?}"
    );
    let Resource::EnvoyFilter(object) = &load.loaded[0].resource else {
        panic!()
    };
    let cp = &object.spec.config_patches[0];
    assert_eq!(cp.apply_to, Some(ApplyTo::HttpFilter));
    assert_eq!(
        cp.patch.as_ref().unwrap().filter_class,
        Some(FilterClass::Authz)
    );
    let value = cp.patch.as_ref().unwrap().value.as_ref().unwrap();
    assert_eq!(
        value["typed_config"]["grpc_service"]["envoy_grpc"]["cluster_name"],
        "ext-proc"
    );
    assert_eq!(object.spec.priority, Some(-10));
}

#[test]
fn istio_samples_load() {
    let name = "ratelimit/local-rate-limit-service.yaml";
    let text = crate::testing::sample(name);
    let load = load_text(name, &text, &LoadOptions::default());
    assert!(load.is_clean(), "{:?}", load.rejected);
    assert_eq!(load.loaded.len(), 1);
    assert!(issues(&text).is_empty(), "{:?}", issues(&text));
}

#[test]
fn waypoint_patches() {
    let ok = "  configPatches:
  - applyTo: HTTP_FILTER
    match:
      context: WAYPOINT
      waypoint:
        filter: {name: envoy.filters.network.http_connection_manager, subFilter: {name: envoy.filters.http.router}}
        route: {name: default}
        portNumber: 8080
    patch: {operation: REMOVE}
  - applyTo: CLUSTER
    match: {context: WAYPOINT, waypoint: {}}
    patch: {operation: REMOVE}
";
    assert!(issues(&filter(ok)).is_empty(), "{:?}", issues(&filter(ok)));
    assert_eq!(
        issues(&patch(
            "applyTo: HTTP_FILTER\n    match: {context: SIDECAR_INBOUND, waypoint: {}}\n    patch: {operation: REMOVE}\n"
        )),
        vec!["spec.configPatches[0].match.waypoint: a waypoint match needs context WAYPOINT"]
    );
    assert_eq!(
        issues(&patch(
            "applyTo: HTTP_FILTER\n    match: {context: WAYPOINT, listener: {}}\n    patch: {operation: REMOVE}\n"
        )),
        vec![
            "spec.configPatches[0].match.context: context WAYPOINT needs a waypoint match (and no other object match)"
        ]
    );
    assert_eq!(
        issues(&patch(
            "applyTo: HTTP_FILTER\n    match: {context: WAYPOINT, waypoint: {portNumber: 65536}}\n    patch: {operation: REMOVE}\n"
        )),
        vec![
            "spec.configPatches[0].match.waypoint.portNumber: port must be between 1 and 65535 (got 65536)"
        ]
    );
}

#[test]
fn patches_need_apply_to_operation_and_value() {
    assert_eq!(
        issues(&patch("patch: {operation: MERGE, value: {}}\n")),
        vec![
            "spec.configPatches[0].applyTo: applyTo is required: name the kind of object to patch (LISTENER, CLUSTER, HTTP_FILTER, ...)"
        ]
    );
    assert_eq!(
        issues(&patch(
            "applyTo: INVALID\n    patch: {operation: MERGE, value: {}}\n"
        ))
        .len(),
        1
    );
    assert_eq!(
        issues(&patch("applyTo: CLUSTER\n")),
        vec!["spec.configPatches[0].patch: a patch is required: set its operation (and value)"]
    );
    assert_eq!(
        issues(&patch("applyTo: CLUSTER\n    patch: {value: {name: c}}\n")),
        vec![
            "spec.configPatches[0].patch.operation: an operation is required (MERGE, ADD, REMOVE, INSERT_BEFORE, INSERT_AFTER, INSERT_FIRST, REPLACE or MERGE_AND_REPLACE_LIST)"
        ]
    );
    assert_eq!(
        issues(&patch("applyTo: CLUSTER\n    patch: {operation: ADD}\n")),
        vec!["spec.configPatches[0].patch.value: ADD needs a value to apply"]
    );
    assert_eq!(
        issues(&patch(
            "applyTo: CLUSTER\n    patch: {operation: REMOVE, value: {name: c}}\n"
        )),
        vec!["warning spec.configPatches[0].patch.value: REMOVE takes no value; it is ignored"]
    );
    assert_eq!(
        issues(&patch(
            "applyTo: CLUSTER\n    patch: {operation: ADD, value: [1]}\n"
        )),
        vec![
            "spec.configPatches[0].patch.value: the value must be a mapping (Envoy configuration in its JSON form)"
        ]
    );
    let found = issues(&patch(
        "applyTo: CLUSTER\n    patch: {operation: ADD, value: {name: c}, operatoin: x}\n",
    ));
    assert_eq!(
        found,
        vec!["spec.configPatches[0].patch.operatoin: unknown field \"operatoin\""]
    );
}

#[test]
fn retired_v2_types_are_refused() {
    let text = patch(
        "applyTo: HTTP_FILTER
    patch:
      operation: ADD
      value:
        name: envoy.lua
        typed_config:
          '@type': type.googleapis.com/envoy.config.filter.http.lua.v2.Lua
          inline_code: x
",
    );
    assert_eq!(
        issues(&text),
        vec![
            "spec.configPatches[0].patch.value: \"type.googleapis.com/envoy.config.filter.http.lua.v2.Lua\" is a type of Envoy's retired v2 API, which proxies no longer understand; use its v3 equivalent"
        ]
    );
}

#[test]
fn proxy_version_is_a_regex() {
    let text = patch(
        "applyTo: CLUSTER\n    match: {proxy: {proxyVersion: '1.(2'}}\n    patch: {operation: REMOVE}\n",
    );
    let found = issues(&text);
    assert_eq!(found.len(), 1);
    assert!(
        found[0].starts_with(
            "spec.configPatches[0].match.proxy.proxyVersion: invalid regular expression \"1.(2\""
        ),
        "{found:?}"
    );
    let long = format!(
        "applyTo: CLUSTER\n    match: {{proxy: {{proxyVersion: '{}'}}}}\n    patch: {{operation: REMOVE}}\n",
        "1".repeat(1025)
    );
    assert_eq!(
        issues(&patch(&long)),
        vec![
            "warning spec.configPatches[0].match.proxy.proxyVersion: a proxyVersion longer than 1024 characters is ignored"
        ]
    );
}

#[test]
fn matches_must_fit_apply_to() {
    assert_eq!(
        issues(&patch(
            "applyTo: HTTP_FILTER\n    match: {cluster: {service: a.com}}\n    patch: {operation: REMOVE}\n"
        )),
        vec![
            "spec.configPatches[0].match: applyTo HTTP_FILTER patches listener objects, so it can only use a listener match (found cluster)"
        ]
    );
    assert_eq!(
        issues(&patch(
            "applyTo: HTTP_ROUTE\n    match: {listener: {portNumber: 80}}\n    patch: {operation: REMOVE}\n"
        )),
        vec![
            "spec.configPatches[0].match: applyTo HTTP_ROUTE patches routeConfiguration objects, so it can only use a routeConfiguration match (found listener)"
        ]
    );
    assert_eq!(
        issues(&patch(
            "applyTo: CLUSTER\n    match: {routeConfiguration: {}}\n    patch: {operation: REMOVE}\n"
        )),
        vec![
            "spec.configPatches[0].match: applyTo CLUSTER patches cluster objects, so it can only use a cluster match (found routeConfiguration)"
        ]
    );
    assert_eq!(
        issues(&patch(
            "applyTo: CLUSTER\n    match: {cluster: {}, listener: {}}\n    patch: {operation: REMOVE}\n"
        )),
        vec![
            "spec.configPatches[0].match: only one of listener, routeConfiguration, cluster, waypoint may be set (found listener and cluster)",
            "spec.configPatches[0].match: applyTo CLUSTER patches cluster objects, so it can only use a cluster match (found listener)",
        ]
    );
}

#[test]
fn filter_matches() {
    let with_filter = |apply_to: &str, filter: &str| {
        patch(&format!(
            "applyTo: {apply_to}\n    match: {{listener: {{filterChain: {{filter: {filter}}}}}}}\n    patch: {{operation: REMOVE}}\n"
        ))
    };
    let at = "spec.configPatches[0].match.listener.filterChain.filter";
    assert_eq!(
        issues(&with_filter("NETWORK_FILTER", "{subFilter: {name: a}}")),
        vec![format!(
            "{at}.name: a filter match needs the name of the filter to match"
        )]
    );
    assert_eq!(
        issues(&with_filter(
            "NETWORK_FILTER",
            "{name: envoy.filters.network.http_connection_manager, subFilter: {name: a}}"
        )),
        vec![format!(
            "{at}.subFilter: a subFilter match can only be used with applyTo HTTP_FILTER"
        )]
    );
    assert_eq!(
        issues(&with_filter(
            "HTTP_FILTER",
            "{name: envoy.filters.network.tcp_proxy, subFilter: {name: a}}"
        )),
        vec![format!(
            "{at}.name: a subFilter match needs the filter to be envoy.filters.network.http_connection_manager, which runs the HTTP filters"
        )]
    );
    assert_eq!(
        issues(&with_filter(
            "HTTP_FILTER",
            "{name: envoy.filters.network.http_connection_manager, subFilter: {}}"
        )),
        vec![format!(
            "{at}.subFilter: a subFilter match needs the name of the HTTP filter to match"
        ),]
    );
    assert_eq!(
        issues(&with_filter(
            "HTTP_FILTER",
            "{name: envoy.filters.network.http_connection_manager}"
        )),
        vec![
            "warning spec.configPatches[0].patch.operation: REMOVE acts on the filter named in match.listener.filterChain.filter.subFilter.name; without a name the patch has no effect",
        ]
    );
    assert_eq!(
        issues(&with_filter(
            "HTTP_FILTER",
            "{name: envoy.http_connection_manager, subFilter: {name: envoy.router}}"
        )),
        vec![
            format!(
                "warning {at}.name: filter name \"envoy.http_connection_manager\" is deprecated; use envoy.filters.network.http_connection_manager"
            ),
            format!(
                "warning {at}.subFilter.name: filter name \"envoy.router\" is deprecated; use envoy.filters.http.router"
            ),
        ]
    );
    assert_eq!(
        issues(&with_filter(
            "FILTER_CHAIN",
            "{name: envoy.filters.network.tcp_proxy}"
        )),
        vec![format!(
            "warning {at}: a filter match has no effect with applyTo FILTER_CHAIN"
        )]
    );
}

#[test]
fn operations_must_fit_apply_to() {
    assert_eq!(
        issues(&patch(
            "applyTo: CLUSTER\n    patch: {operation: INSERT_BEFORE, value: {name: c}}\n"
        )),
        vec![
            "warning spec.configPatches[0].patch.operation: INSERT_BEFORE has no effect with applyTo CLUSTER; it supports MERGE, ADD, REMOVE"
        ]
    );
    assert_eq!(
        issues(&patch(
            "applyTo: ROUTE_CONFIGURATION\n    patch: {operation: ADD, value: {name: r}}\n"
        )),
        vec![
            "warning spec.configPatches[0].patch.operation: ADD has no effect with applyTo ROUTE_CONFIGURATION; it supports MERGE"
        ]
    );
    assert!(
        issues(&patch(
            "applyTo: CLUSTER\n    patch: {operation: MERGE_AND_REPLACE_LIST, value: {name: c}}\n"
        ))
        .is_empty()
    );
    assert_eq!(
        issues(&patch(
            "applyTo: NETWORK_FILTER\n    patch: {operation: REPLACE, value: {name: f}}\n"
        )),
        vec![
            "warning spec.configPatches[0].patch.operation: REPLACE acts on the filter named in match.listener.filterChain.filter.name; without a name the patch has no effect"
        ]
    );
}

#[test]
fn attachment() {
    let both = filter(
        "  workloadSelector: {labels: {app: a}}\n  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: gw}]\n",
    );
    assert_eq!(
        issues(&both),
        vec![
            "spec: only one of workloadSelector, targetRefs may be set (found workloadSelector and targetRefs)"
        ]
    );
    let refs = filter(
        "  targetRefs:\n  - {kind: Deployment, group: apps, name: d}\n  - {kind: Service, name: s, namespace: other}\n  - {kind: Service}\n",
    );
    assert_eq!(
        issues(&refs),
        vec![
            "warning spec.targetRefs[0]: an EnvoyFilter cannot attach to a Deployment: it applies only through a Service, ServiceEntry, Gateway or GatewayClass, so this reference is ignored",
            "spec.targetRefs[1].namespace: cross-namespace references are not supported; leave namespace unset",
            "spec.targetRefs[2].name: is required",
        ]
    );
    assert_eq!(
        issues(&filter("  workloadSelector: {labels: {app: '*'}}\n")),
        vec![
            "spec.workloadSelector.labels.app: wildcards are not supported in a workload selector"
        ]
    );
    assert_eq!(
        issues(&filter("  workloadSelector: {}\n")),
        vec![
            "warning spec.workloadSelector: the selector has no labels, so it selects every workload in the namespace"
        ]
    );
}
