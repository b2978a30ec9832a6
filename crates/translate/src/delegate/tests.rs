use trellis_api::types::{Duration, StringMatch};
use trellis_proxy_config::RouteMatch;

use crate::testing::{assert_warned, forward, http_rules, star_routes};

const DELEGATE: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-routes, namespace: team}
spec:
  http:
  - name: v2
    match: [{uri: {prefix: /reviews/v2}}]
    route: [{destination: {host: reviews.default.svc.cluster.local, subset: v2}}]
  - match: [{uri: {prefix: /ratings}}]
    route: [{destination: {host: reviews.default.svc.cluster.local}}]
    timeout: 1s
  - route: [{destination: {host: reviews.default.svc.cluster.local, subset: v1}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
"#;

#[test]
fn delegate_rules_are_merged_into_the_delegating_rule() {
    let t = http_rules(
        r#"
- name: reviews
  match: [{uri: {prefix: /reviews}, headers: {x-team: {exact: a}}}]
  delegate: {name: reviews-routes, namespace: team}
  timeout: 5s
- route: [{destination: {host: a}}]
"#,
        DELEGATE,
    );
    let routes = star_routes(&t);
    let names: Vec<&str> = routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        ["reviews-v2", "reviews", "vs.default.1"],
        "{:#?}",
        t.warnings
    );
    let m = &routes[0].matches[0];
    assert_eq!(m.path, Some(StringMatch::Prefix("/reviews/v2".into())));
    assert_eq!(
        m.headers.len(),
        1,
        "the delegating rule's conditions narrow the delegate's"
    );
    assert_eq!(
        forward(&routes[0]).destinations[0].cluster,
        "outbound|80|v2|reviews.default.svc.cluster.local"
    );
    assert_eq!(
        forward(&routes[0]).timeout,
        Some(Duration::from_millis(5000)),
        "unset fields come from the delegating rule"
    );
    assert_eq!(
        routes[1].matches,
        [RouteMatch {
            path: Some(StringMatch::Prefix("/reviews".into())),
            headers: m.headers.clone(),
            ..RouteMatch::default()
        }],
        "a delegate rule without matches takes the delegating rule's"
    );
    assert_warned(
        &t,
        &[
            "VirtualService team/reviews-routes: spec.http[1]",
            "fall outside",
            "default/vs spec.http[0]",
        ],
    );
}

#[test]
fn delegates_must_exist_be_delegates_and_be_exported() {
    let t = http_rules(
        r#"
- match: [{uri: {prefix: /a}}]
  delegate: {name: nowhere}
- match: [{uri: {prefix: /b}}]
  delegate: {name: has-hosts}
- match: [{uri: {prefix: /c}}]
  delegate: {name: private, namespace: team}
"#,
        r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: has-hosts, namespace: default}
spec:
  hosts: [x.example.com]
  http: [{route: [{destination: {host: a}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: private, namespace: team}
spec:
  exportTo: ["."]
  http: [{route: [{destination: {host: a.default.svc.cluster.local}}]}]
"#,
    );
    assert!(
        t.config.routes["http.80"]
            .virtual_hosts
            .iter()
            .all(|h| h.routes.is_empty())
    );
    assert_warned(
        &t,
        &["spec.http[0].delegate", "default/nowhere does not exist"],
    );
    assert_warned(&t, &["spec.http[1].delegate", "is not a delegate"]);
    assert_warned(
        &t,
        &["spec.http[2].delegate", "not exported to namespace default"],
    );
}
