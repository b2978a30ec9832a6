//! Every routing action through real sockets: matches, direct responses, redirects, rewrites,
//! header changes, and the replies for requests no route or cluster takes.

mod support;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use support::*;
use trellis_proxy_config::{
    Action, HeaderChanges, HeaderMatch, HeaderOperations, LoadBalancer, QueryMatch, Redirect,
    RedirectPort, Regex, Rewrite, RouteMatch, StringMatch,
};

fn path(m: StringMatch) -> RouteMatch {
    RouteMatch {
        path: Some(m),
        ..RouteMatch::default()
    }
}

#[tokio::test]
async fn matches_pick_the_first_route_that_accepts_the_request() {
    let routes = vec![
        direct(
            "exact",
            vec![path(StringMatch::Exact("/exact".into()))],
            200,
            "exact",
        ),
        direct(
            "regex",
            vec![path(StringMatch::Regex(
                Regex::new("/items/[0-9]+").unwrap(),
            ))],
            200,
            "regex",
        ),
        direct(
            "header",
            vec![RouteMatch {
                headers: vec![HeaderMatch {
                    name: "x-user".into(),
                    value: StringMatch::Prefix("jas".into()),
                    absent: false,
                }],
                ..RouteMatch::default()
            }],
            200,
            "header",
        ),
        direct(
            "query-and-method",
            vec![RouteMatch {
                query: vec![QueryMatch {
                    name: "debug".into(),
                    value: StringMatch::Exact("1".into()),
                }],
                method: Some(StringMatch::Exact("GET".into())),
                ..RouteMatch::default()
            }],
            200,
            "query",
        ),
        direct(
            "case",
            vec![RouteMatch {
                path: Some(StringMatch::Prefix("/caps".into())),
                ignore_case: true,
                ..RouteMatch::default()
            }],
            200,
            "case",
        ),
        direct(
            "prefix",
            vec![path(StringMatch::Prefix("/".into()))],
            200,
            "prefix",
        ),
    ];
    let proxy = start(http_config(routes, vec![])).await;
    assert_eq!(get(&proxy.url("/exact"), &[]).await.body, "exact");
    assert_eq!(get(&proxy.url("/exact/more"), &[]).await.body, "prefix");
    assert_eq!(get(&proxy.url("/items/42"), &[]).await.body, "regex");
    assert_eq!(get(&proxy.url("/items/x"), &[]).await.body, "prefix");
    assert_eq!(
        get(&proxy.url("/a"), &[("x-user", "jason")]).await.body,
        "header"
    );
    assert_eq!(get(&proxy.url("/a?x=2&debug=1"), &[]).await.body, "query");
    assert_eq!(get(&proxy.url("/CAPS/x"), &[]).await.body, "case");
}

#[tokio::test]
async fn unmatched_requests_get_404_no_route() {
    let routes = vec![direct(
        "only",
        vec![path(StringMatch::Exact("/only".into()))],
        200,
        "ok",
    )];
    let proxy = start(http_config(routes, vec![])).await;
    let got = get(&proxy.url("/other"), &[]).await;
    assert_eq!(got.status, 404);
    assert_eq!(got.body, "route not found");
}

#[tokio::test]
async fn forwards_with_rewrites_and_header_changes() {
    let upstream = upstreams("web", 1).await;
    let mut route = forward(
        "api",
        vec![path(StringMatch::Prefix("/api/".into()))],
        &[("web", 100)],
    );
    if let Action::Forward(forward) = &mut route.action {
        forward.rewrite = Some(Rewrite {
            path_prefix: Some("/echo/".into()),
            authority: Some("backend.internal".into()),
            ..Rewrite::default()
        });
        forward.destinations[0].headers.request.add = vec![("x-canary".into(), "no".into())];
        forward.destinations[0].headers.response = HeaderChanges {
            set: vec![
                ("x-destination".into(), "web".into()),
                ("x-served-by".into(), "web".into()),
            ],
            add: vec![],
            remove: vec![],
        };
    }
    route.headers = HeaderOperations {
        request: HeaderChanges {
            set: vec![("x-route".into(), "api".into())],
            add: vec![],
            remove: vec!["x-secret".into()],
        },
        response: HeaderChanges {
            set: vec![("x-served-by".into(), "trellis".into())],
            add: vec![],
            remove: vec!["content-type".into()],
        },
    };
    let mut regex_route = forward(
        "regex",
        vec![path(StringMatch::Prefix("/service/".into()))],
        &[("web", 100)],
    );
    if let Action::Forward(forward) = &mut regex_route.action {
        let regex = Regex::new("^/service/([^/]+)(/.*)$").unwrap();
        forward.rewrite = Some(Rewrite {
            path_regex: Some((regex, "/echo\\2/\\1".into())),
            ..Rewrite::default()
        });
    }
    let clusters = vec![cluster(
        "web",
        &[upstream[0].addr()],
        LoadBalancer::RoundRobin,
    )];
    let proxy = start(http_config(vec![route, regex_route], clusters)).await;

    let got = get(
        &proxy.url("/api/users?page=2"),
        &[("x-secret", "s3cret"), ("x-route", "client")],
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.header("x-destination"), Some("web"));
    // The destination's changes come after the route's: the more specific one wins.
    assert_eq!(got.header("x-served-by"), Some("web"));
    assert_eq!(got.header("content-type"), None);
    let echo = got.json();
    assert_eq!(echo["path"], "/echo/users");
    assert_eq!(echo["query"], "page=2");
    assert_eq!(echo["authority"], "backend.internal");
    let headers = &echo["headers"];
    assert_eq!(headers["x-route"], "api");
    assert_eq!(headers["x-canary"], "no");
    assert!(headers.get("x-secret").is_none(), "{headers}");
    assert!(
        headers["x-request-id"]
            .as_str()
            .is_some_and(|id| id.len() == 36),
        "{headers}"
    );
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");

    let got = get(&proxy.url("/service/reviews/v1/list"), &[]).await;
    assert_eq!(got.json()["path"], "/echo/v1/list/reviews");
}

#[tokio::test]
async fn the_request_id_sent_upstream_is_the_one_logged() {
    let upstream = upstreams("web", 1).await;
    let clusters = vec![cluster(
        "web",
        &[upstream[0].addr()],
        LoadBalancer::RoundRobin,
    )];
    let route = forward("all", vec![], &[("web", 100)]);
    let (proxy, log) = start_logged(http_config(vec![route], clusters)).await;

    let made = get(&proxy.url("/echo/made"), &[]).await.json()["headers"]["x-request-id"].clone();
    assert!(made.as_str().is_some_and(|id| id.len() == 36), "{made}");
    let kept = get(&proxy.url("/echo/kept"), &[("x-request-id", "from-client")])
        .await
        .json()["headers"]["x-request-id"]
        .clone();
    assert_eq!(kept, "from-client");

    eventually("both requests are logged", || log.json().len() == 2).await;
    assert!(
        log.json().iter().all(|line| line["route_name"] == "all"),
        "{:?}",
        log.json()
    );
    let logged: Vec<(String, String)> = log
        .json()
        .iter()
        .map(|line| (line["path"].to_string(), line["request_id"].to_string()))
        .collect();
    assert!(
        logged.contains(&("\"/echo/made\"".into(), made.to_string())),
        "{logged:?}"
    );
    assert!(
        logged.contains(&("\"/echo/kept\"".into(), kept.to_string())),
        "{logged:?}"
    );
}

#[tokio::test]
async fn redirects_build_the_location() {
    let redirect = |name: &str, prefix: &str, redirect: Redirect| trellis_proxy_config::Route {
        name: name.into(),
        matches: vec![path(StringMatch::Prefix(prefix.into()))],
        action: Action::Redirect(redirect),
        headers: HeaderOperations::default(),
        fault: None,
        cors: None,
        rate_limit: None,
        source: None,
    };
    let routes = vec![
        redirect(
            "to-https",
            "/secure",
            Redirect {
                status: 301,
                scheme: Some("https".into()),
                authority: None,
                port: Some(RedirectPort::FromScheme),
                path: None,
                prefix: None,
            },
        ),
        redirect(
            "moved",
            "/old/",
            Redirect {
                status: 308,
                scheme: None,
                authority: Some("new.example.com".into()),
                port: None,
                path: None,
                prefix: Some("/new/".into()),
            },
        ),
    ];
    let proxy = start(http_config(routes, vec![])).await;
    let got = send(
        &client(),
        Request::get(proxy.url("/secure/x"))
            .header("host", "shop.example.com:8080")
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(got.status, 301);
    assert_eq!(
        got.header("location"),
        Some("https://shop.example.com/secure/x")
    );
    let got = get(&proxy.url("/old/page?a=1"), &[]).await;
    assert_eq!(got.status, 308);
    assert_eq!(
        got.header("location"),
        Some("http://new.example.com/new/page?a=1")
    );
}

#[tokio::test]
async fn missing_clusters_and_endpoints_get_503_with_flags() {
    let routes = vec![
        forward(
            "nowhere",
            vec![path(StringMatch::Prefix("/nc".into()))],
            &[("missing", 100)],
        ),
        forward(
            "empty",
            vec![path(StringMatch::Prefix("/uh".into()))],
            &[("empty", 100)],
        ),
    ];
    let proxy = start(http_config(
        routes,
        vec![cluster("empty", &[], LoadBalancer::RoundRobin)],
    ))
    .await;
    let got = get(&proxy.url("/nc"), &[]).await;
    assert_eq!((got.status, got.body.as_str()), (503, "cluster not found"));
    let got = get(&proxy.url("/uh"), &[]).await;
    assert_eq!(
        (got.status, got.body.as_str()),
        (503, "no healthy upstream")
    );
}

#[tokio::test]
async fn virtual_hosts_are_chosen_by_authority() {
    let mut config = http_config(vec![direct("any", vec![], 200, "any")], vec![]);
    let table = config.routes.get_mut("routes").unwrap();
    table.virtual_hosts.insert(
        0,
        trellis_proxy_config::VirtualHost {
            name: "shop".into(),
            domains: vec!["shop.example.com".into(), "*.shop.example.com".into()],
            routes: vec![direct("shop", vec![], 200, "shop")],
        },
    );
    let proxy = start(config).await;
    let with_host = |host: &'static str| {
        Request::get(proxy.url("/"))
            .header("host", host)
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    assert_eq!(
        send(&client(), with_host("shop.example.com")).await.body,
        "shop"
    );
    assert_eq!(
        send(&client(), with_host("eu.shop.example.com:8443"))
            .await
            .body,
        "shop"
    );
    assert_eq!(
        send(&client(), with_host("other.example.com")).await.body,
        "any"
    );
}
