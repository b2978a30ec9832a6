//! Header work on the request path: hop-by-hop headers, forwarding headers, the request id,
//! Istio's header operations, rewrites and redirect locations.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use trellis_proxy_config::{HeaderChanges, Redirect, RedirectPort, Rewrite};

/// Headers that describe one connection and are never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
const FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Removes hop-by-hop headers, including those the `connection` header names. `TE: trailers`
/// survives (gRPC needs it).
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most requests carry none of them: one look at each name is cheaper than a lookup of each.
    if !headers
        .keys()
        .any(|name| name == header::TE || HOP_BY_HOP.contains(name))
    {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    // Every value counts: a second `TE` line must not ride along behind `TE: trailers`.
    if headers
        .get_all(header::TE)
        .iter()
        .any(|te| !te.as_bytes().eq_ignore_ascii_case(b"trailers"))
    {
        headers.remove(header::TE);
    }
}

/// The client's address as an `x-forwarded-for` entry; made once per connection.
pub fn peer_value(peer: std::net::IpAddr) -> HeaderValue {
    HeaderValue::from_str(&peer.to_string()).expect("an IP address is a header value")
}

/// Adds `x-forwarded-for` (appending the client's address, `peer` as [`peer_value`] made it),
/// `x-forwarded-proto` and, when the client sent none, a fresh `x-request-id`.
pub fn add_forwarding_headers(headers: &mut HeaderMap, peer: &HeaderValue) {
    use http::header::Entry;
    // Room for all three up front: the map grows at most once.
    headers.reserve(3);
    match headers.entry(FORWARDED_FOR) {
        Entry::Occupied(mut existing) => {
            let first = existing.get();
            let mut joined = Vec::with_capacity(first.len() + 2 + peer.len());
            joined.extend_from_slice(first.as_bytes());
            joined.extend_from_slice(b", ");
            joined.extend_from_slice(peer.as_bytes());
            if let Ok(joined) = HeaderValue::from_bytes(&joined) {
                // Replaces every earlier line: the joined value carries the first one on.
                existing.insert(joined);
            }
        }
        Entry::Vacant(vacant) => {
            vacant.insert(peer.clone());
        }
    }
    headers
        .entry(FORWARDED_PROTO)
        .or_insert(HeaderValue::from_static("http"));
    headers.entry(REQUEST_ID).or_insert_with(new_request_id);
}

/// A random version-4 UUID, as Envoy generates request ids.
pub fn new_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut bytes = fastrand::u128(..).to_be_bytes();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    // 8-4-4-4-12 hex digits: each group's bytes, two digits a byte.
    let mut text = *b"00000000-0000-0000-0000-000000000000";
    let groups: [(usize, std::ops::Range<usize>); 5] =
        [(0, 0..4), (9, 4..6), (14, 6..8), (19, 8..10), (24, 10..16)];
    for (start, range) in groups {
        for (offset, byte) in bytes[range].iter().enumerate() {
            text[start + 2 * offset] = HEX[usize::from(byte >> 4)];
            text[start + 2 * offset + 1] = HEX[usize::from(byte & 0x0f)];
        }
    }
    HeaderValue::from_bytes(&text).expect("hex digits and dashes make a header value")
}

/// Applies Istio's header operations in its order: set, add, remove.
pub fn apply(changes: &HeaderChanges, headers: &mut HeaderMap) {
    for (name, value) in &changes.set {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(name, value);
        }
    }
    for (name, value) in &changes.add {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(name, value);
        }
    }
    for name in &changes.remove {
        headers.remove(name.as_str());
    }
}

/// The path (and query) after a rewrite; `prefix_len` is how much of the path the route's
/// prefix match covered.
pub fn rewritten_path(
    rewrite: &Rewrite,
    path_and_query: &str,
    prefix_len: Option<usize>,
) -> Option<String> {
    let (path, query) = match path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_and_query, None),
    };
    let new_path = if let Some((regex, substitution)) = &rewrite.path_regex {
        regex.replace_all(path, substitution)
    } else if let Some(prefix) = &rewrite.path_prefix {
        let rest = &path[prefix_len.unwrap_or(path.len()).min(path.len())..];
        let mut joined = prefix.clone();
        if joined.ends_with('/') && rest.starts_with('/') {
            joined.pop();
        }
        joined.push_str(rest);
        if joined.is_empty() {
            joined.push('/');
        }
        joined
    } else {
        return None;
    };
    Some(match query {
        Some(query) => format!("{new_path}?{query}"),
        None => new_path,
    })
}

/// The `location` of a redirect for this request.
pub fn redirect_location(
    redirect: &Redirect,
    request: &Parts,
    authority: &str,
    prefix_len: Option<usize>,
) -> String {
    let scheme = redirect
        .scheme
        .as_deref()
        .unwrap_or_else(|| request.uri.scheme_str().unwrap_or("http"));
    let host = redirect
        .authority
        .as_deref()
        .unwrap_or_else(|| crate::router::strip_port(authority));
    let port = match redirect.port {
        Some(RedirectPort::Number(port)) => Some(port),
        Some(RedirectPort::FromScheme) => None,
        Some(RedirectPort::FromRequest) => {
            authority.rsplit_once(':').and_then(|(_, p)| p.parse().ok())
        }
        None if redirect.authority.is_some() => None,
        // A scheme change drops the old scheme's default port (http://x:80 -> https://x).
        None if redirect.scheme.is_some() => authority
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .filter(|p| !matches!(p, 80 | 443)),
        None => authority.rsplit_once(':').and_then(|(_, p)| p.parse().ok()),
    };
    let default_port = if scheme == "https" { 443 } else { 80 };
    let host_port = match port {
        Some(port) if port != default_port => format!("{host}:{port}"),
        _ => host.to_owned(),
    };
    let path_and_query = request.uri.path_and_query().map_or("/", |p| p.as_str());
    let path = if let Some(path) = &redirect.path {
        path.clone()
    } else if let Some(prefix) = &redirect.prefix {
        let rewrite = Rewrite {
            path_prefix: Some(prefix.clone()),
            ..Rewrite::default()
        };
        rewritten_path(&rewrite, path_and_query, prefix_len)
            .unwrap_or_else(|| path_and_query.to_owned())
    } else {
        path_and_query.to_owned()
    };
    format!("{scheme}://{host_port}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_hop_by_hop_and_connection_named_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-private"),
        );
        headers.insert("x-private", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut headers);
        let mut names: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["te", "x-kept"]);
    }

    #[test]
    fn te_other_than_trailers_goes_even_behind_trailers() {
        let mut headers = HeaderMap::new();
        headers.append(header::TE, HeaderValue::from_static("trailers"));
        headers.append(header::TE, HeaderValue::from_static("gzip"));
        strip_hop_by_hop(&mut headers);
        assert!(!headers.contains_key(header::TE));
    }

    #[test]
    fn forwarding_headers_append_and_keep_ids() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("1.2.3.4"));
        headers.insert("x-request-id", HeaderValue::from_static("abc"));
        add_forwarding_headers(&mut headers, &peer_value("10.0.0.9".parse().unwrap()));
        assert_eq!(headers["x-request-id"], "abc");
        assert_eq!(headers["x-forwarded-for"], "1.2.3.4, 10.0.0.9");
        let id = new_request_id();
        let text = id.to_str().unwrap();
        assert_eq!(text.len(), 36);
        for (at, c) in text.char_indices() {
            match at {
                8 | 13 | 18 | 23 => assert_eq!(c, '-', "{text}"),
                14 => assert_eq!(c, '4', "version 4: {text}"),
                19 => assert!("89ab".contains(c), "RFC 4122 variant: {text}"),
                _ => assert!(c.is_ascii_hexdigit() && !c.is_ascii_uppercase(), "{text}"),
            }
        }
        assert_ne!(new_request_id(), id, "random");
    }

    #[test]
    fn rewrites_prefixes_and_regexes() {
        let rewrite = Rewrite {
            path_prefix: Some("/v2/".into()),
            ..Rewrite::default()
        };
        assert_eq!(
            rewritten_path(&rewrite, "/api/users?x=1", Some(4)).unwrap(),
            "/v2/users?x=1"
        );
        let rewrite = Rewrite {
            path_prefix: Some("/".into()),
            ..Rewrite::default()
        };
        assert_eq!(rewritten_path(&rewrite, "/api", Some(4)).unwrap(), "/");
        let regex = trellis_proxy_config::Regex::new("/service/([^/]+)(/.*)").unwrap();
        let rewrite = Rewrite {
            path_regex: Some((regex, "\\2/instance/\\1".into())),
            ..Rewrite::default()
        };
        assert_eq!(
            rewritten_path(&rewrite, "/service/foo/v1/api", None).unwrap(),
            "/v1/api/instance/foo"
        );
    }

    #[test]
    fn builds_redirect_locations() {
        let (parts, ()) = http::Request::builder()
            .uri("/old/page?q=1")
            .body(())
            .unwrap()
            .into_parts();
        let redirect = Redirect {
            status: 301,
            scheme: Some("https".into()),
            authority: None,
            port: None,
            path: None,
            prefix: Some("/new".into()),
        };
        assert_eq!(
            redirect_location(&redirect, &parts, "shop.example.com:80", Some(4)),
            "https://shop.example.com/new/page?q=1"
        );
        let redirect = Redirect {
            status: 302,
            scheme: None,
            authority: Some("other".into()),
            port: Some(RedirectPort::Number(8080)),
            path: Some("/x".into()),
            prefix: None,
        };
        assert_eq!(
            redirect_location(&redirect, &parts, "shop", None),
            "http://other:8080/x"
        );
    }
}
