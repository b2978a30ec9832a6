//! Any bytes, parsed as an HTTP/1 request head by the proxy's own server (as a client could send
//! it), then put through everything the proxy's request path does with a head before it goes
//! upstream: routing over a fixed route table, hop-by-hop stripping, forwarding headers, header
//! operations, path rewrites, redirect locations and the hash of every consistent-hashing key.
//! Nothing may panic, and what stripping and header operations promise must hold afterwards.

#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::OnceLock;

use http::header::{self, HeaderName};
use http::uri::PathAndQuery;
use libfuzzer_sys::fuzz_target;
use trellis_proxy::balance::request_hash;
use trellis_proxy::downstream::http1;
use trellis_proxy::http::headers;
use trellis_proxy::router::Router;
use trellis_proxy_config::{
    Action, DirectResponse, HashKey, HeaderChanges, HeaderMatch, HeaderOperations, QueryMatch,
    Redirect, RedirectPort, Regex, Rewrite, Route, RouteMatch, RouteTable, StringMatch,
    VirtualHost,
};

/// Headers that never survive stripping, whatever the request says.
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "transfer-encoding",
    "upgrade",
];

fn route(name: &str, matches: Vec<RouteMatch>) -> Route {
    Route {
        name: name.into(),
        matches,
        action: Action::DirectResponse(DirectResponse {
            status: 200,
            body: None,
        }),
        headers: HeaderOperations::default(),
        fault: None,
        cors: None,
        rate_limit: None,
        source: None,
    }
}

fn path(m: StringMatch, ignore_case: bool) -> RouteMatch {
    RouteMatch {
        path: Some(m),
        ignore_case,
        ..RouteMatch::default()
    }
}

fn regex(pattern: &str) -> Regex {
    Regex::new(pattern).expect("a valid pattern")
}

/// Every kind of match, on three kinds of virtual host.
fn router() -> &'static Router {
    static ROUTER: OnceLock<Router> = OnceLock::new();
    ROUTER.get_or_init(|| {
        let specific = vec![
            route("api", vec![path(StringMatch::Prefix("/API/".into()), true)]),
            route(
                "unicode",
                vec![path(StringMatch::Prefix("/caf\u{e9}/".into()), true)],
            ),
            route(
                "exact",
                vec![path(StringMatch::Exact("/exact".into()), false)],
            ),
            route(
                "items",
                vec![path(StringMatch::Regex(regex("/items/[0-9]+")), true)],
            ),
            route(
                "headers",
                vec![RouteMatch {
                    headers: vec![
                        HeaderMatch {
                            name: "x-user".into(),
                            value: StringMatch::Prefix("a".into()),
                            absent: false,
                        },
                        HeaderMatch {
                            name: "x-debug".into(),
                            value: StringMatch::Any,
                            absent: true,
                        },
                        HeaderMatch {
                            name: ":authority".into(),
                            value: StringMatch::Regex(regex(".*:[0-9]+")),
                            absent: false,
                        },
                    ],
                    ..RouteMatch::default()
                }],
            ),
            route(
                "query",
                vec![RouteMatch {
                    query: vec![QueryMatch {
                        name: "v".into(),
                        value: StringMatch::Exact("2".into()),
                    }],
                    method: Some(StringMatch::Exact("GET".into())),
                    scheme: Some(StringMatch::Exact("http".into())),
                    authority: Some(StringMatch::Prefix("shop".into())),
                    port: Some(80),
                    ..RouteMatch::default()
                }],
            ),
            route("rest", vec![path(StringMatch::Prefix("/".into()), false)]),
        ];
        Router::new(&RouteTable {
            name: "fuzz".into(),
            on_demand: false,
            virtual_hosts: vec![
                VirtualHost {
                    name: "shop".into(),
                    domains: vec!["shop.example.com".into()],
                    routes: specific,
                },
                VirtualHost {
                    name: "wild".into(),
                    domains: vec!["*.example.com".into()],
                    routes: vec![route(
                        "w",
                        vec![path(StringMatch::Prefix("/w".into()), false)],
                    )],
                },
                VirtualHost {
                    name: "any".into(),
                    domains: vec!["*".into()],
                    routes: vec![route("a", vec![])],
                },
            ],
        })
    })
}

fn rewrites() -> &'static [Rewrite] {
    static REWRITES: OnceLock<Vec<Rewrite>> = OnceLock::new();
    REWRITES.get_or_init(|| {
        vec![
            Rewrite {
                path_prefix: Some("/v2/".into()),
                ..Rewrite::default()
            },
            Rewrite {
                path_prefix: Some(String::new()),
                ..Rewrite::default()
            },
            Rewrite {
                path_regex: Some((regex("^/([^/]*)(/.*)?$"), "/x\\2/\\1".into())),
                ..Rewrite::default()
            },
        ]
    })
}

fn redirects() -> [Redirect; 3] {
    let redirect = |scheme: Option<&str>,
                    authority: Option<&str>,
                    port,
                    path: Option<&str>,
                    prefix: Option<&str>| Redirect {
        status: 301,
        scheme: scheme.map(Into::into),
        authority: authority.map(Into::into),
        port,
        path: path.map(Into::into),
        prefix: prefix.map(Into::into),
    };
    [
        redirect(
            Some("https"),
            None,
            Some(RedirectPort::FromScheme),
            None,
            None,
        ),
        redirect(
            None,
            Some("new.example.com"),
            Some(RedirectPort::FromRequest),
            None,
            Some("/new/"),
        ),
        redirect(
            None,
            None,
            Some(RedirectPort::Number(8443)),
            Some("/fixed"),
            None,
        ),
    ]
}

fuzz_target!(|data: &[u8]| {
    // The head as the proxy's HTTP/1.1 server reads it; a head it refuses goes no further.
    let Ok(Some(mut parts)) = http1::parse_request(data) else {
        return;
    };
    assert!(
        parts.version == http::Version::HTTP_10 || parts.version == http::Version::HTTP_11,
        "{:?}",
        parts.version
    );
    let peer = if data.len() % 2 == 0 {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7)), 40000)
    } else {
        SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 40000)
    };
    // The authority as the connection manager takes it.
    let authority = parts
        .uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            parts
                .headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let first_names: Vec<HeaderName> = parts.headers.keys().take(2).cloned().collect();

    let matched = router().find(&parts, &authority, 80);
    let prefix_len = matched.as_ref().and_then(|m| m.prefix_len);

    for key in [
        HashKey::Header("x-user".into()),
        HashKey::Header(":authority".into()),
        HashKey::Header(":path".into()),
        HashKey::Cookie {
            name: "session".into(),
            path: None,
            ttl: None,
        },
        HashKey::SourceIp,
        HashKey::QueryParameter("id".into()),
    ] {
        let _ = request_hash(&key, &parts, peer);
    }

    for redirect in redirects() {
        let _ = headers::redirect_location(&redirect, &parts, &authority, prefix_len);
    }
    if let Some(path_and_query) = parts.uri.path_and_query() {
        for rewrite in rewrites() {
            if let Some(path) =
                headers::rewritten_path(rewrite, path_and_query.as_str(), prefix_len)
            {
                let _ = PathAndQuery::try_from(path);
            }
        }
    }

    // Hop-by-hop headers, and those the connection header names, are gone; TE is gone unless
    // it says only "trailers".
    let named: Vec<HeaderName> = parts
        .headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    headers::strip_hop_by_hop(&mut parts.headers);
    for name in HOP_BY_HOP {
        assert!(
            !parts.headers.contains_key(name),
            "{name} survived stripping"
        );
    }
    for name in &named {
        assert!(
            !parts.headers.contains_key(name),
            "{name}, named by connection, survived stripping"
        );
    }
    for te in parts.headers.get_all(header::TE) {
        assert!(
            te.as_bytes().eq_ignore_ascii_case(b"trailers"),
            "TE {te:?} survived stripping"
        );
    }

    let client_id = parts.headers.get("x-request-id").cloned();
    headers::add_forwarding_headers(&mut parts.headers, &headers::peer_value(peer.ip()));
    let id = parts.headers.get("x-request-id").expect("x-request-id is set");
    if let Some(client_id) = client_id {
        assert_eq!(id, client_id, "the client's request id is kept");
    }
    let forwarded = parts
        .headers
        .get("x-forwarded-for")
        .expect("x-forwarded-for is set");
    assert!(
        forwarded
            .as_bytes()
            .ends_with(peer.ip().to_string().as_bytes()),
        "{forwarded:?} ends with the peer"
    );
    assert!(parts.headers.contains_key("x-forwarded-proto"));

    // Header operations, some naming headers the request has.
    let value_of = |name: Option<&HeaderName>| {
        name.and_then(|n| parts.headers.get(n))
            .and_then(|v| v.to_str().ok())
            .unwrap_or("fuzz")
            .to_owned()
    };
    let added = first_names
        .first()
        .map_or("x-add", |n| n.as_str())
        .to_owned();
    let removed = first_names
        .get(1)
        .map_or("x-remove", |n| n.as_str())
        .to_owned();
    let changes = HeaderChanges {
        set: vec![
            ("x-route".into(), value_of(first_names.first())),
            ("bad name".into(), "x".into()),
        ],
        add: vec![
            (added.clone(), "added".into()),
            ("x-nl".into(), "a\nb".into()),
        ],
        remove: vec![removed.clone(), "Not A Header!".into()],
    };
    headers::apply(&changes, &mut parts.headers);
    if added != "x-route" && removed != "x-route" {
        let route_values: Vec<_> = parts.headers.get_all("x-route").iter().collect();
        assert_eq!(route_values.len(), 1, "set leaves exactly one value");
    }
    assert!(
        !parts.headers.contains_key(removed.as_str()),
        "{removed} survived its removal"
    );
    assert!(
        !parts.headers.contains_key("x-nl"),
        "an invalid value is never added"
    );
});
