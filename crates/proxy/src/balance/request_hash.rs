//! The hash a request is balanced by under consistent hashing (ring hash, Maglev): the value of
//! a header, a cookie or a query parameter, or the client's address, as a cluster's
//! [`HashKey`] says.
//!
//! It runs once per request, before the balancer: it borrows from the request, never allocates,
//! and returns `None` when the request lacks the key, in which case the balancer picks at random
//! (as Envoy does).

use std::net::SocketAddr;

use http::request::Parts;
use trellis_proxy_config::HashKey;

use super::hash::{hash_bytes, source_ip_hash, xxh64};

/// The request's hash for `key`, or `None` when the request does not carry it.
///
/// - `Header(name)`: every value of the header, in order (case-insensitive name). The names
///   `:authority` and `:path` stand for the request's authority (or `Host`) and path with query.
/// - `Cookie { name, .. }`: the cookie's value (surrounding quotes removed) from the `cookie`
///   headers. Setting the cookie when absent (`ttl`) is the HTTP layer's job.
/// - `SourceIp`: the peer's IP address (its port is ignored), see [`source_ip_hash`].
/// - `QueryParameter(name)`: the first value of the parameter, exactly as written in the URI
///   (not percent-decoded); a parameter without `=` has the empty value.
pub fn request_hash(key: &HashKey, request: &Parts, peer: SocketAddr) -> Option<u64> {
    match key {
        HashKey::Header(name) => header_hash(name, request),
        HashKey::Cookie { name, .. } => cookie_value(request, name).map(hash_bytes),
        HashKey::SourceIp => Some(source_ip_hash(peer.ip())),
        HashKey::QueryParameter(name) => query_value(request.uri.query()?, name).map(hash_bytes),
    }
}

fn header_hash(name: &str, request: &Parts) -> Option<u64> {
    if name.eq_ignore_ascii_case(":authority") {
        let authority = match request.uri.authority() {
            Some(authority) => authority.as_str().as_bytes(),
            None => request.headers.get(http::header::HOST)?.as_bytes(),
        };
        return Some(hash_bytes(authority));
    }
    if name.eq_ignore_ascii_case(":path") {
        return request
            .uri
            .path_and_query()
            .map(|p| hash_bytes(p.as_str().as_bytes()));
    }
    let mut values = request.headers.get_all(name).iter();
    let first = hash_bytes(values.next()?.as_bytes());
    // Further values are chained through the seed, so their order counts and nothing is copied.
    Some(values.fold(first, |acc, value| xxh64(value.as_bytes(), acc)))
}

fn cookie_value<'a>(request: &'a Parts, name: &str) -> Option<&'a [u8]> {
    request
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .find_map(|header| {
            header.as_bytes().split(|b| *b == b';').find_map(|pair| {
                let pair = pair.trim_ascii();
                let eq = pair.iter().position(|b| *b == b'=')?;
                let (cookie, value) = (&pair[..eq], &pair[eq + 1..]);
                (cookie.trim_ascii() == name.as_bytes()).then(|| unquote(value.trim_ascii()))
            })
        })
}

fn unquote(value: &[u8]) -> &[u8] {
    match value {
        [b'"', inner @ .., b'"'] => inner,
        _ => value,
    }
}

fn query_value<'a>(query: &'a str, name: &str) -> Option<&'a [u8]> {
    query.split('&').find_map(|pair| {
        let (param, value) = pair.split_once('=').unwrap_or((pair, ""));
        (param == name).then_some(value.as_bytes())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut builder = http::Request::builder().uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    fn peer() -> SocketAddr {
        "10.9.8.7:43210".parse().unwrap()
    }

    fn header(name: &str) -> HashKey {
        HashKey::Header(name.to_string())
    }

    fn cookie(name: &str) -> HashKey {
        HashKey::Cookie {
            name: name.to_string(),
            path: None,
            ttl: None,
        }
    }

    #[test]
    fn header_values_hash_stably_and_absence_is_none() {
        let a = parts("/", &[("x-user", "alice")]);
        let b = parts("/other", &[("X-User", "alice"), ("x-other", "1")]);
        let c = parts("/", &[("x-user", "bob")]);
        let key = header("X-USER");
        let hash = request_hash(&key, &a, peer());
        assert_eq!(hash, Some(hash_bytes(b"alice")));
        assert_eq!(request_hash(&key, &b, peer()), hash);
        assert_ne!(request_hash(&key, &c, peer()), hash);
        assert_eq!(request_hash(&key, &parts("/", &[]), peer()), None);
        // A name no header can have matches nothing (and does not panic).
        assert_eq!(request_hash(&header("x user"), &a, peer()), None);
    }

    #[test]
    fn repeated_header_values_all_count() {
        let one = parts("/", &[("x-tag", "a")]);
        let two = parts("/", &[("x-tag", "a"), ("x-tag", "b")]);
        let swapped = parts("/", &[("x-tag", "b"), ("x-tag", "a")]);
        let key = header("x-tag");
        let hashes = [&one, &two, &swapped].map(|p| request_hash(&key, p, peer()).unwrap());
        assert_ne!(hashes[0], hashes[1]);
        assert_ne!(hashes[1], hashes[2]);
    }

    #[test]
    fn pseudo_headers_name_the_authority_and_path() {
        let absolute = parts("http://reviews:9080/a?b=1", &[]);
        let with_host = parts("/a?b=1", &[("host", "reviews:9080")]);
        let authority = header(":authority");
        assert_eq!(
            request_hash(&authority, &absolute, peer()),
            Some(hash_bytes(b"reviews:9080"))
        );
        assert_eq!(
            request_hash(&authority, &with_host, peer()),
            Some(hash_bytes(b"reviews:9080"))
        );
        assert_eq!(
            request_hash(&header(":path"), &with_host, peer()),
            Some(hash_bytes(b"/a?b=1"))
        );
    }

    #[test]
    fn cookies_are_found_among_others_and_across_headers() {
        let key = cookie("session");
        let expected = Some(hash_bytes(b"abc123"));
        let cases = [
            parts("/", &[("cookie", "session=abc123")]),
            parts("/", &[("cookie", "theme=dark; session=abc123; lang=en")]),
            parts(
                "/",
                &[("cookie", "theme=dark"), ("cookie", "session=\"abc123\"")],
            ),
            parts("/", &[("cookie", " other_session=x;session = abc123 ")]),
        ];
        for request in &cases {
            assert_eq!(
                request_hash(&key, request, peer()),
                expected,
                "{:?}",
                request.headers
            );
        }
        let absent = [
            parts("/", &[]),
            parts("/", &[("cookie", "sessions=abc123; xsession=abc123")]),
            parts("/", &[("cookie", "session")]),
            parts("/", &[("x-session", "abc123")]),
        ];
        for request in &absent {
            assert_eq!(
                request_hash(&key, request, peer()),
                None,
                "{:?}",
                request.headers
            );
        }
    }

    #[test]
    fn source_ip_ignores_the_port() {
        let request = parts("/", &[]);
        let hash = request_hash(&HashKey::SourceIp, &request, peer());
        assert_eq!(
            hash,
            request_hash(&HashKey::SourceIp, &request, "10.9.8.7:1".parse().unwrap())
        );
        assert_ne!(
            hash,
            request_hash(
                &HashKey::SourceIp,
                &request,
                "10.9.8.6:43210".parse().unwrap()
            )
        );
        assert_eq!(hash, Some(source_ip_hash(peer().ip())));
    }

    #[test]
    fn query_parameters_match_whole_names() {
        let key = HashKey::QueryParameter("user".to_string());
        let hash = |uri: &str| request_hash(&key, &parts(uri, &[]), peer());
        assert_eq!(hash("/p?user=alice"), Some(hash_bytes(b"alice")));
        assert_eq!(
            hash("/p?a=1&user=alice&user=bob"),
            Some(hash_bytes(b"alice"))
        );
        assert_eq!(
            hash("/p?users=x&xuser=y&user=alice"),
            Some(hash_bytes(b"alice"))
        );
        assert_eq!(hash("/p?user"), Some(hash_bytes(b"")));
        assert_eq!(hash("/p?users=alice"), None);
        assert_eq!(hash("/p"), None);
        assert_eq!(hash("/p?"), None);
    }
}
