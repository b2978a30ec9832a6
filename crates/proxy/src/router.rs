//! Route tables compiled for lookup: virtual hosts by authority, then the first route whose
//! match accepts the request.
//!
//! Compiled once per configuration update; lookups allocate nothing.

use std::sync::Arc;

use http::request::Parts;
pub use trellis_proxy_config::strip_port;
use trellis_proxy_config::{HeaderMatch, QueryMatch, Route, RouteMatch, RouteTable, StringMatch};

/// A route table ready for lookups.
#[derive(Debug)]
pub struct Router {
    pub name: String,
    /// The table's virtual hosts come as requests need them (see [`crate::on_demand`]).
    pub on_demand: bool,
    exact: crate::fast_map::FastMap<String, usize>,
    /// `*.suffix` domains as (".suffix", host index), longest suffix first.
    wildcards: Vec<(String, usize)>,
    catch_all: Option<usize>,
    hosts: Vec<CompiledHost>,
}

#[derive(Debug)]
struct CompiledHost {
    name: Arc<str>,
    routes: Vec<Arc<Route>>,
}

/// What a lookup found, borrowed from the router (no reference counts change per request).
#[derive(Debug, Clone, Copy)]
pub struct Matched<'a> {
    pub virtual_host: &'a str,
    pub route: &'a Arc<Route>,
    /// For prefix path matches: how many bytes of the path the prefix covered (rewrites and
    /// prefix redirects replace that part).
    pub prefix_len: Option<usize>,
}

impl Router {
    pub fn new(table: &RouteTable) -> Self {
        let mut router = Self {
            name: table.name.clone(),
            on_demand: table.on_demand,
            exact: Default::default(),
            wildcards: Vec::new(),
            catch_all: None,
            hosts: Vec::new(),
        };
        for (index, host) in table.virtual_hosts.iter().enumerate() {
            for domain in &host.domains {
                let domain = domain.to_ascii_lowercase();
                if domain == "*" {
                    router.catch_all.get_or_insert(index);
                } else if let Some(suffix) = domain.strip_prefix('*') {
                    router.wildcards.push((suffix.to_owned(), index));
                } else {
                    router.exact.entry(domain).or_insert(index);
                }
            }
            router.hosts.push(CompiledHost {
                name: Arc::from(host.name.as_str()),
                routes: host.routes.iter().cloned().map(Arc::new).collect(),
            });
        }
        router
            .wildcards
            .sort_by_key(|(suffix, _)| std::cmp::Reverse(suffix.len()));
        router
    }

    /// The route for a request, or `None` (no virtual host, or no route matched).
    pub fn find(&self, request: &Parts, authority: &str, port: u16) -> Option<Matched<'_>> {
        let host = self.host_for(authority)?;
        for route in &host.routes {
            if route.matches.is_empty() {
                return Some(Matched {
                    virtual_host: &host.name,
                    route,
                    prefix_len: None,
                });
            }
            for m in &route.matches {
                if let Some(prefix_len) = accepts(m, request, authority, port) {
                    return Some(Matched {
                        virtual_host: &host.name,
                        route,
                        prefix_len,
                    });
                }
            }
        }
        None
    }

    /// Whether a virtual host serves `authority`.
    pub fn serves(&self, authority: &str) -> bool {
        self.host_for(authority).is_some()
    }

    fn host_for(&self, authority: &str) -> Option<&CompiledHost> {
        let lowered;
        let authority = if authority.bytes().any(|b| b.is_ascii_uppercase()) {
            lowered = authority.to_ascii_lowercase();
            lowered.as_str()
        } else {
            authority
        };
        let name = strip_port(authority);
        let index = self
            .exact
            .get(name)
            .or_else(|| self.exact.get(authority))
            .copied()
            .or_else(|| {
                self.wildcards
                    .iter()
                    .find(|(suffix, _)| name.ends_with(suffix.as_str()))
                    .map(|(_, i)| *i)
            })
            .or(self.catch_all)?;
        self.hosts.get(index)
    }
}

/// Whether `m` accepts the request; `Some(prefix_len)` when it does.
fn accepts(m: &RouteMatch, request: &Parts, authority: &str, port: u16) -> Option<Option<usize>> {
    let mut prefix_len = None;
    if let Some(path_match) = &m.path {
        let path = request.uri.path();
        let ok = if m.ignore_case {
            match path_match {
                StringMatch::Exact(e) => path.eq_ignore_ascii_case(e),
                StringMatch::Prefix(p) => {
                    path.len() >= p.len()
                        && path.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes())
                }
                other => other.matches(&path.to_ascii_lowercase()),
            }
        } else {
            path_match.matches(path)
        };
        if !ok {
            return None;
        }
        if let StringMatch::Prefix(p) = path_match {
            prefix_len = Some(p.len());
        }
    }
    if m.method
        .as_ref()
        .is_some_and(|method| !method.matches(request.method.as_str()))
        || m.authority
            .as_ref()
            .is_some_and(|expected| !expected.matches(authority))
        || m.scheme
            .as_ref()
            .is_some_and(|scheme| !scheme.matches(request.uri.scheme_str().unwrap_or("http")))
    {
        return None;
    }
    if m.port.is_some_and(|p| p != port) {
        return None;
    }
    if !m.headers.iter().all(|h| header_matches(h, request)) {
        return None;
    }
    if !m
        .query
        .iter()
        .all(|q| query_matches(q, request.uri.query().unwrap_or("")))
    {
        return None;
    }
    Some(prefix_len)
}

fn header_matches(m: &HeaderMatch, request: &Parts) -> bool {
    let found = match m.name.as_str() {
        ":method" => Some(request.method.as_str()),
        ":path" => request.uri.path_and_query().map(|p| p.as_str()),
        ":scheme" => request.uri.scheme_str(),
        ":authority" => request.uri.authority().map(|a| a.as_str()).or_else(|| {
            request
                .headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
        }),
        name => {
            let mut values = request
                .headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok());
            // Several values of one header are matched as Envoy does: joined by commas.
            match (values.next(), values.next()) {
                (None, _) => None,
                (Some(one), None) => Some(one),
                (Some(_), Some(_)) => {
                    let joined: Vec<&str> = request
                        .headers
                        .get_all(name)
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .collect();
                    return m.absent != m.value.matches(&joined.join(","));
                }
            }
        }
    };
    let present_and_matching = found.is_some_and(|v| m.value.matches(v));
    present_and_matching != m.absent
}

fn query_matches(m: &QueryMatch, query: &str) -> bool {
    query.split('&').any(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        name == m.name && m.value.matches(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use trellis_proxy_config::{Action, DirectResponse, HeaderOperations, VirtualHost};

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

    fn table() -> Router {
        let path = |m: StringMatch| RouteMatch {
            path: Some(m),
            ..RouteMatch::default()
        };
        Router::new(&RouteTable {
            name: "t".into(),
            on_demand: false,
            virtual_hosts: vec![
                VirtualHost {
                    name: "exact".into(),
                    domains: vec!["shop.example.com".into()],
                    routes: vec![
                        route("api", vec![path(StringMatch::Prefix("/api".into()))]),
                        route(
                            "beta",
                            vec![RouteMatch {
                                headers: vec![HeaderMatch {
                                    name: "x-beta".into(),
                                    value: StringMatch::Exact("1".into()),
                                    absent: false,
                                }],
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
                                ..RouteMatch::default()
                            }],
                        ),
                    ],
                },
                VirtualHost {
                    name: "wild".into(),
                    domains: vec!["*.example.com".into()],
                    routes: vec![route("w", vec![])],
                },
                VirtualHost {
                    name: "any".into(),
                    domains: vec!["*".into()],
                    routes: vec![route("a", vec![])],
                },
            ],
        })
    }

    fn find(
        router: &Router,
        method: &str,
        uri: &str,
        authority: &str,
        headers: &[(&str, &str)],
    ) -> Option<String> {
        let mut builder = http::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let (parts, ()) = builder.body(()).unwrap().into_parts();
        router
            .find(&parts, authority, 80)
            .map(|m| format!("{}/{}", m.virtual_host, m.route.name))
    }

    #[test]
    fn picks_the_most_specific_host() {
        let r = table();
        assert_eq!(
            find(&r, "GET", "/api/x", "shop.example.com:8080", &[]).as_deref(),
            Some("exact/api")
        );
        assert_eq!(
            find(&r, "GET", "/", "Other.Example.com", &[]).as_deref(),
            Some("wild/w")
        );
        assert_eq!(
            find(&r, "GET", "/", "10.0.0.1", &[]).as_deref(),
            Some("any/a")
        );
        assert_eq!(strip_port("[::1]:80"), "[::1]");
    }

    #[test]
    fn a_domain_with_a_port_matches_the_authority_in_any_case() {
        let r = Router::new(&RouteTable {
            name: "outbound".into(),
            on_demand: true,
            virtual_hosts: vec![VirtualHost {
                name: "reviews".into(),
                domains: vec!["reviews:9080".into()],
                routes: vec![route("r", vec![])],
            }],
        });
        assert!(r.serves("Reviews:9080"));
        assert!(!r.serves("reviews:9081"));
        assert!(!r.serves("reviews"));
    }

    #[test]
    fn matches_headers_query_and_method() {
        let r = table();
        assert_eq!(
            find(&r, "GET", "/x", "shop.example.com", &[("x-beta", "1")]).as_deref(),
            Some("exact/beta")
        );
        assert_eq!(
            find(&r, "GET", "/x?a=1&v=2", "shop.example.com", &[]).as_deref(),
            Some("exact/query")
        );
        assert_eq!(find(&r, "POST", "/x?v=2", "shop.example.com", &[]), None);
        assert_eq!(find(&r, "GET", "/x", "shop.example.com", &[]), None);
    }
}
