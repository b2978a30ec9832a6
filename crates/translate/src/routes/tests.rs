use std::collections::BTreeSet;

use trellis_api::types::{Duration, Regex};
use trellis_proxy_config::{
    AbortStatus, Action, CorsPolicy, DirectResponse, Fault, FaultAbort, FaultDelay, HeaderChanges,
    HeaderOperations, Mirror, Redirect, RedirectPort, RetryOn, RetryPolicy, Rewrite, StringMatch,
    WeightedCluster,
};

use crate::testing::{assert_warned, forward, http_rules, star_routes};

const A: &str = "outbound|80||a.default.svc.cluster.local";
const B: &str = "outbound|80||b.default.svc.cluster.local";

fn changes(set: &[(&str, &str)], add: &[(&str, &str)], remove: &[&str]) -> HeaderChanges {
    let pairs = |p: &[(&str, &str)]| {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    HeaderChanges {
        set: pairs(set),
        add: pairs(add),
        remove: remove.iter().map(|r| r.to_string()).collect(),
    }
}

#[test]
fn weights_and_destination_headers() {
    let t = http_rules(
        r#"
- name: split
  route:
  - destination: {host: a}
    weight: 90
    headers: {request: {set: {x-canary: "no"}}, response: {remove: [x-internal]}}
  - destination: {host: b, port: {number: 80}}
    weight: 10
  - destination: {host: reviews, subset: v1}
"#,
        "",
    );
    let routes = star_routes(&t);
    assert_eq!(routes[0].name, "split");
    let f = forward(&routes[0]);
    assert_eq!(
        f.destinations,
        [
            WeightedCluster {
                cluster: A.into(),
                weight: 90,
                headers: HeaderOperations {
                    request: changes(&[("x-canary", "no")], &[], &[]),
                    response: changes(&[], &[], &["x-internal"])
                },
            },
            WeightedCluster {
                cluster: B.into(),
                weight: 10,
                headers: HeaderOperations::default()
            },
        ],
        "a destination without weight among several gets no traffic"
    );
    assert!(
        !t.config
            .clusters
            .contains_key("outbound|80|v1|reviews.default.svc.cluster.local")
    );
}

#[test]
fn a_lone_destination_gets_everything() {
    let t = http_rules("- route: [{destination: {host: a}, weight: 0}]", "");
    assert_eq!(forward(&star_routes(&t)[0]).destinations[0].weight, 100);
}

#[test]
fn rewrites_headers_and_timeout() {
    let t = http_rules(
        r#"
- match: [{uri: {regex: "^/old/(.*)$"}}]
  route: [{destination: {host: b}}]
  rewrite: {uriRegexRewrite: {match: "^/old/(.*)$", rewrite: "/new/\\1"}}
  headers: {request: {set: {Host: b.example.com}}}
- route: [{destination: {host: a}}]
  rewrite: {uri: /v2/, authority: internal.a}
  timeout: 2.5s
  headers:
    request: {set: {x-a: "1"}, add: {x-b: "2"}, remove: [x-c]}
    response: {set: {x-d: "4"}}
"#,
        "",
    );
    let routes = star_routes(&t);
    assert!(routes[1].matches.is_empty());
    let first = forward(&routes[1]);
    assert_eq!(
        first.rewrite,
        Some(Rewrite {
            path_prefix: Some("/v2/".into()),
            path_regex: None,
            authority: Some("internal.a".into())
        })
    );
    assert_eq!(first.timeout, Some(Duration::from_millis(2500)));
    assert_eq!(
        routes[1].headers,
        HeaderOperations {
            request: changes(&[("x-a", "1")], &[("x-b", "2")], &["x-c"]),
            response: changes(&[("x-d", "4")], &[], &[])
        }
    );
    let regex = forward(&routes[0]);
    assert_eq!(regex.timeout, None);
    assert_eq!(
        regex.rewrite,
        Some(Rewrite {
            path_prefix: None,
            path_regex: Some((Regex::new("^/old/(.*)$").unwrap(), "/new/\\1".into())),
            authority: Some("b.example.com".into()),
        }),
        "setting the host header rewrites the authority"
    );
    assert!(
        routes[0].headers.is_empty(),
        "the host header is not set as well"
    );
}

#[test]
fn redirects() {
    let t = http_rules(
        r#"
- match: [{uri: {prefix: /a}}]
  redirect: {uri: /b, authority: new.example.com, port: 8443, scheme: https, redirectCode: 308}
- match: [{uri: {prefix: /c}}]
  redirect: {prefixRewrite: /d, derivePort: FROM_REQUEST_PORT}
- match: [{uri: {prefix: /e}}]
  redirect: {uri: /f, derivePort: FROM_PROTOCOL_DEFAULT, redirectCode: 302}
"#,
        "",
    );
    let actions: Vec<Action> = star_routes(&t).into_iter().map(|r| r.action).collect();
    assert_eq!(
        actions,
        [
            Action::Redirect(Redirect {
                status: 308,
                scheme: Some("https".into()),
                authority: Some("new.example.com".into()),
                port: Some(RedirectPort::Number(8443)),
                path: Some("/b".into()),
                prefix: None,
            }),
            Action::Redirect(Redirect {
                status: 301,
                scheme: None,
                authority: None,
                port: Some(RedirectPort::FromRequest),
                path: None,
                prefix: Some("/d".into()),
            }),
            Action::Redirect(Redirect {
                status: 302,
                scheme: None,
                authority: None,
                port: Some(RedirectPort::FromScheme),
                path: Some("/f".into()),
                prefix: None,
            }),
        ]
    );
}

#[test]
fn direct_responses() {
    let t = http_rules(
        r#"
- match: [{uri: {exact: /text}}]
  directResponse: {status: 503, body: {string: "down for maintenance"}}
- match: [{uri: {exact: /bytes}}]
  directResponse: {status: 200, body: {bytes: dGhpcyBpcyBhIHRlc3Q=}}
- match: [{uri: {exact: /binary}}]
  directResponse: {status: 200, body: {bytes: "//79"}}
- match: [{uri: {exact: /empty}}]
  directResponse: {status: 204}
"#,
        "",
    );
    let actions: Vec<Action> = star_routes(&t).into_iter().map(|r| r.action).collect();
    let response = |status, body: Option<&str>| {
        Action::DirectResponse(DirectResponse {
            status,
            body: body.map(str::to_owned),
        })
    };
    assert_eq!(
        actions,
        [
            response(503, Some("down for maintenance")),
            response(200, Some("this is a test")),
            response(200, None),
            response(204, None),
        ]
    );
    assert_warned(&t, &["spec.http[2].directResponse.body.bytes", "non-UTF-8"]);
}

#[test]
fn retries() {
    let t = http_rules(
        r#"
- match: [{uri: {exact: /default}}]
  route: [{destination: {host: a}}]
- match: [{uri: {exact: /off}}]
  route: [{destination: {host: a}}]
  retries: {attempts: 0}
- match: [{uri: {exact: /custom}}]
  route: [{destination: {host: a}}]
  retries: {attempts: 4, perTryTimeout: 1s, retryOn: "gateway-error,connect-failure,503,429,reset-before-request", backoff: 100ms}
- match: [{uri: {exact: /attempts-only}}]
  route: [{destination: {host: a}}]
  retries: {attempts: 1, retryIgnorePreviousHosts: false}
"#,
        "",
    );
    let retries: Vec<Option<RetryPolicy>> = star_routes(&t)
        .iter()
        .map(|r| forward(r).retry.clone())
        .collect();
    assert_eq!(retries[0], Some(RetryPolicy::mesh_default()));
    assert_eq!(retries[1], None);
    assert_eq!(
        retries[2],
        Some(RetryPolicy {
            attempts: 4,
            per_try_timeout: Some(Duration::from_millis(1000)),
            retry_on: BTreeSet::from([
                RetryOn::GatewayError,
                RetryOn::ConnectFailure,
                RetryOn::RetriableStatusCodes
            ]),
            retriable_status_codes: BTreeSet::from([429, 503]),
            backoff: Duration::from_millis(100),
        })
    );
    assert_eq!(
        retries[3],
        Some(RetryPolicy {
            attempts: 1,
            ..RetryPolicy::mesh_default()
        })
    );
    assert_warned(
        &t,
        &[
            "spec.http[2].retries.retryOn",
            "reset-before-request",
            "left out",
        ],
    );
    assert_warned(
        &t,
        &[
            "spec.http[3].retries.retryIgnorePreviousHosts",
            "not supported",
        ],
    );
}

#[test]
fn faults() {
    let t = http_rules(
        r#"
- match: [{uri: {exact: /delay}}]
  route: [{destination: {host: a}}]
  fault: {delay: {fixedDelay: 2s, percentage: {value: 12.5}}}
- match: [{uri: {exact: /both}}]
  route: [{destination: {host: a}}]
  fault:
    delay: {fixedDelay: 100ms, percent: 50}
    abort: {httpStatus: 503, percentage: {value: 100}}
- match: [{uri: {exact: /grpc}}]
  route: [{destination: {host: a}}]
  fault: {abort: {grpcStatus: UNAVAILABLE, percentage: {value: 30}}}
- match: [{uri: {exact: /no-share}}]
  route: [{destination: {host: a}}]
  fault: {abort: {httpStatus: 418}}
- route: [{destination: {host: a}}]
"#,
        "",
    );
    let faults: Vec<Option<Fault>> = star_routes(&t).iter().map(|r| r.fault.clone()).collect();
    let delay = |millis, percent| FaultDelay {
        fixed: Duration::from_millis(millis),
        percent,
    };
    let abort = |status, percent| FaultAbort { status, percent };
    assert_eq!(
        faults,
        [
            Some(Fault {
                delay: Some(delay(2000, 12.5)),
                abort: None,
            }),
            Some(Fault {
                delay: Some(delay(100, 50.0)),
                abort: Some(abort(AbortStatus::Http(503), 100.0)),
            }),
            Some(Fault {
                delay: None,
                abort: Some(abort(AbortStatus::Grpc(14), 30.0)),
            }),
            Some(Fault {
                delay: None,
                abort: Some(abort(AbortStatus::Http(418), 0.0)),
            }),
            None,
        ]
    );
    assert_warned(
        &t,
        &[
            "spec.http[3].fault.abort",
            "has no percentage",
            "no request",
        ],
    );
}

#[test]
fn mirrors() {
    let t = http_rules(
        r#"
- match: [{uri: {exact: /all}}]
  route: [{destination: {host: a}}]
  mirror: {host: b}
- match: [{uri: {exact: /some}}]
  route: [{destination: {host: a}}]
  mirror: {host: b, port: {number: 80}}
  mirrorPercentage: {value: 12.5}
- match: [{uri: {exact: /none}}]
  route: [{destination: {host: a}}]
  mirror: {host: b}
  mirrorPercentage: {value: 0}
- route: [{destination: {host: a}}]
  mirrors:
  - destination: {host: b}
  - destination: {host: a}
    percentage: {value: 50}
"#,
        "",
    );
    let mirrors: Vec<Vec<Mirror>> = star_routes(&t)
        .iter()
        .map(|r| forward(r).mirrors.clone())
        .collect();
    let mirror = |cluster: &str, percent| Mirror {
        cluster: cluster.into(),
        percent,
    };
    assert_eq!(
        mirrors,
        [
            vec![mirror(B, 100.0)],
            vec![mirror(B, 12.5)],
            vec![],
            vec![mirror(B, 100.0), mirror(A, 50.0)],
        ]
    );
}

#[test]
fn cors_policies() {
    let t = http_rules(
        r#"
- match: [{uri: {prefix: /api}}]
  route: [{destination: {host: a}}]
  corsPolicy:
    allowOrigins: [{exact: "https://example.com"}, {regex: "https://.*[.]example[.]org"}]
    allowMethods: [GET, POST]
    allowHeaders: [x-token]
    exposeHeaders: [x-trace]
    maxAge: 24h
    allowCredentials: true
    unmatchedPreflights: IGNORE
- route: [{destination: {host: a}}]
  corsPolicy: {allowOrigin: ["*"]}
"#,
        "",
    );
    let routes = star_routes(&t);
    assert_eq!(
        routes[0].cors,
        Some(CorsPolicy {
            allow_origins: vec![
                StringMatch::Exact("https://example.com".into()),
                StringMatch::Regex(Regex::new("https://.*[.]example[.]org").unwrap()),
            ],
            allow_methods: vec!["GET".into(), "POST".into()],
            allow_headers: vec!["x-token".into()],
            expose_headers: vec!["x-trace".into()],
            max_age: Some(Duration::from_millis(86_400_000)),
            allow_credentials: true,
            forward_unmatched_preflights: false,
        })
    );
    assert_eq!(
        routes[1].cors,
        Some(CorsPolicy {
            allow_origins: vec![StringMatch::Exact("*".into())],
            forward_unmatched_preflights: true,
            ..CorsPolicy::default()
        })
    );
}

#[test]
fn unknown_destinations_are_reported_where_written() {
    let t = http_rules(
        r#"
- match: [{uri: {prefix: /x}}]
  route: [{destination: {host: missing, port: {number: 80}}}]
- match: [{uri: {prefix: /y}}]
  route: [{destination: {host: a, port: {number: 81}}}]
- route: [{destination: {host: reviews, subset: v9}}]
"#,
        "",
    );
    assert_warned(
        &t,
        &[
            "spec.http[0].route[0].destination",
            "missing.default.svc.cluster.local is not in the registry",
            "503 (UH)",
        ],
    );
    assert_warned(
        &t,
        &[
            "spec.http[1].route[0].destination",
            "has no port 81 (it has 80)",
        ],
    );
    assert_warned(
        &t,
        &["spec.http[2].route[0].destination", "subset v9", "503 (NC)"],
    );
    let missing = &t.config.clusters["outbound|80||missing.default.svc.cluster.local"];
    assert!(missing.endpoints.is_empty() && missing.service.is_none());
    assert!(
        t.config.clusters["outbound|81||a.default.svc.cluster.local"]
            .endpoints
            .is_empty()
    );
    assert!(
        !t.config
            .clusters
            .contains_key("outbound|80|v9|reviews.default.svc.cluster.local")
    );
}
