use std::collections::BTreeMap;

use trellis_api::types::{Regex, StringMatch};
use trellis_proxy_config::{HeaderMatch, QueryMatch, RouteMatch};

use crate::GatewayOptions;
use crate::testing::{assert_warned, http_fixture, http_rules, star_routes, translate_with};

#[test]
fn every_request_condition_is_carried() {
    let t = http_rules(
        r#"
- match:
  - uri: {prefix: /API}
    ignoreUriCase: true
    method: {exact: GET}
    authority: {prefix: shop.}
    scheme: {exact: https}
    headers:
      X-User: {exact: alice}
      x-any: {}
    withoutHeaders:
      x-debug: {regex: "*"}
      x-env: {exact: test}
    queryParams:
      v: {regex: "[0-9]+"}
    port: 80
  route: [{destination: {host: a}}]
"#,
        "",
    );
    assert!(t.warnings.is_empty(), "{:#?}", t.warnings);
    let routes = star_routes(&t);
    assert_eq!(routes.len(), 1);
    let header = |name: &str, value: StringMatch, absent| HeaderMatch {
        name: name.into(),
        value,
        absent,
    };
    assert_eq!(
        routes[0].matches,
        [RouteMatch {
            path: Some(StringMatch::Prefix("/API".into())),
            ignore_case: true,
            method: Some(StringMatch::Exact("GET".into())),
            authority: Some(StringMatch::Prefix("shop.".into())),
            scheme: Some(StringMatch::Exact("https".into())),
            headers: vec![
                header("x-user", StringMatch::Exact("alice".into()), false),
                header("x-any", StringMatch::Any, false),
                header("x-debug", StringMatch::Any, true),
                header("x-env", StringMatch::Exact("test".into()), true),
            ],
            query: vec![QueryMatch {
                name: "v".into(),
                value: StringMatch::Regex(Regex::new("[0-9]+").unwrap())
            }],
            port: Some(80),
        }]
    );
}

#[test]
fn conditions_on_the_proxy_are_settled_at_translation() {
    let t = http_rules(
        r#"
- match:
  - {uri: {exact: /other-port}, port: 8080}
  - {uri: {exact: /other-gateway}, gateways: [elsewhere]}
  - {uri: {exact: /this-gateway}, gateways: [default/gw]}
  - {uri: {exact: /other-namespace}, sourceNamespace: prod}
  - {uri: {exact: /this-namespace}, sourceNamespace: istio-system}
  route: [{destination: {host: a}}]
- match: [{port: 8080}]
  route: [{destination: {host: b}}]
"#,
        "",
    );
    let routes = star_routes(&t);
    assert_eq!(
        routes.len(),
        1,
        "a rule none of whose matches applies is dropped: {routes:#?}"
    );
    let paths: Vec<_> = routes[0]
        .matches
        .iter()
        .map(|m| m.path.clone().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            StringMatch::Exact("/this-gateway".into()),
            StringMatch::Exact("/this-namespace".into())
        ]
    );
}

#[test]
fn source_labels_are_compared_with_the_gateway_labels() {
    let rules = r#"
- match: [{uri: {exact: /ingress}, sourceLabels: {istio: ingressgateway}}]
  route: [{destination: {host: a}}]
- route: [{destination: {host: b}}]
"#;
    let labels = BTreeMap::from([
        ("istio".to_owned(), "ingressgateway".to_owned()),
        ("app".to_owned(), "x".to_owned()),
    ]);
    let options = GatewayOptions {
        labels: Some(labels),
        ..GatewayOptions::new([0, 0, 0, 0].into())
    };
    let known = translate_with(&http_fixture(rules), &options);
    assert_eq!(star_routes(&known).len(), 2);
    let unknown = http_rules(rules, "");
    assert_eq!(star_routes(&unknown).len(), 1);
    assert_warned(
        &unknown,
        &[
            "VirtualService default/vs: spec.http[0].match[0].sourceLabels",
            "labels are not known",
        ],
    );
}

#[test]
fn a_catch_all_ends_the_virtual_service() {
    let t = http_rules(
        r#"
- match:
  - uri: {exact: /first}
  - uri: {prefix: /}
  - uri: {exact: /unreachable-match}
  route: [{destination: {host: a}}]
- match: [{uri: {exact: /unreachable-rule}}]
  route: [{destination: {host: b}}]
"#,
        "",
    );
    let routes = star_routes(&t);
    let all: Vec<(String, Vec<RouteMatch>)> = routes
        .iter()
        .map(|r| (r.name.clone(), r.matches.clone()))
        .collect();
    let path = |m: StringMatch| RouteMatch {
        path: Some(m),
        ..RouteMatch::default()
    };
    assert_eq!(
        all,
        [
            (
                "vs.default.0".to_owned(),
                vec![path(StringMatch::Exact("/first".into()))]
            ),
            (
                "vs.default.0".to_owned(),
                vec![path(StringMatch::Prefix("/".into()))]
            ),
        ],
        "the catch-all part of a rule is split off and moved last"
    );
}

#[test]
fn jwt_claim_conditions_leave_their_match_out() {
    let t = http_rules(
        r#"
- match:
  - headers: {"@request.auth.claims.group": {exact: admin}}
  - uri: {prefix: /public}
  route: [{destination: {host: a}}]
"#,
        "",
    );
    let routes = star_routes(&t);
    assert_eq!(routes[0].matches.len(), 1);
    assert_eq!(
        routes[0].matches[0].path,
        Some(StringMatch::Prefix("/public".into()))
    );
    assert_warned(&t, &["spec.http[0].match[0]", "JWT claim", "left out"]);
}

#[test]
fn stat_prefix_is_reported() {
    let t = http_rules(
        "- match: [{uri: {prefix: /x}, statPrefix: x}]\n  route: [{destination: {host: a}}]",
        "",
    );
    assert_warned(&t, &["spec.http[0].match[0].statPrefix", "not supported"]);
}
