//! Just enough URL reading for configuration checks: the scheme, the host and the port of
//! `scheme://host:port/path`, the way the mesh reads a JWKS address or a Wasm module's location.

/// The parts of an absolute URL that checks look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Url<'a> {
    /// Lowercased, as URL schemes are case-insensitive.
    pub scheme: String,
    /// Empty when the URL has no `//authority` part (`file:/plugin.wasm`).
    pub host: &'a str,
    pub port: Option<u16>,
}

/// A URL scheme at the start of `text`, with the rest after its `:`.
fn split_scheme(text: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = text.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some((scheme, rest))
}

/// Reads `text` as an absolute URL (`scheme:/path` or `scheme://authority/path`).
pub(crate) fn parse(text: &str) -> Result<Url<'_>, String> {
    if let Some(c) = text.chars().find(|c| c.is_ascii_control() || *c == ' ') {
        return Err(format!("{text:?} is not a valid URL: it contains {c:?}"));
    }
    let Some((scheme, rest)) = split_scheme(text) else {
        return Err(format!(
            "{text:?} is not a valid URL: it has no scheme (such as https://)"
        ));
    };
    let scheme = scheme.to_ascii_lowercase();
    let Some(after) = rest.strip_prefix("//") else {
        return Ok(Url {
            scheme,
            host: "",
            port: None,
        });
    };
    let authority = after.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        let Some((inside, tail)) = bracketed.split_once(']') else {
            return Err(format!(
                "{text:?} is not a valid URL: an IPv6 host must end with ']'"
            ));
        };
        if inside.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!(
                "{text:?} is not a valid URL: [{inside}] is not an IPv6 address"
            ));
        }
        match tail {
            "" => (&host_port[..inside.len() + 2], None),
            _ => match tail.strip_prefix(':') {
                Some(port) => (&host_port[..inside.len() + 2], Some(port)),
                None => {
                    return Err(format!(
                        "{text:?} is not a valid URL: unexpected {tail:?} after the host"
                    ));
                }
            },
        }
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    let port = match port {
        None | Some("") => None,
        Some(port) => match port.parse::<u16>() {
            Ok(number) if port.bytes().all(|b| b.is_ascii_digit()) => Some(number),
            _ => {
                return Err(format!(
                    "{text:?} is not a valid URL: {port:?} is not a port number"
                ));
            }
        },
    };
    Ok(Url { scheme, host, port })
}

/// Whether `text` starts with a scheme followed by `:/`, which is how the mesh tells a URL from
/// a bare image reference such as `registry:5000/plugin` (a host and port, not a scheme).
pub(crate) fn has_scheme(text: &str) -> bool {
    split_scheme(text).is_some_and(|(_, rest)| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_scheme_host_and_port() {
        let url = parse("HTTPS://user@example.com:8443/keys?x=1").unwrap();
        assert_eq!(
            (url.scheme.as_str(), url.host, url.port),
            ("https", "example.com", Some(8443))
        );
        let url = parse("http://[::1]:80/").unwrap();
        assert_eq!((url.host, url.port), ("[::1]", Some(80)));
        let url = parse("file:///opt/plugin.wasm").unwrap();
        assert_eq!((url.scheme.as_str(), url.host), ("file", ""));
    }

    #[test]
    fn refuses_what_is_not_a_url() {
        assert!(parse("example.com/keys").unwrap_err().contains("no scheme"));
        assert!(
            parse("https://example.com:http/")
                .unwrap_err()
                .contains("not a port number")
        );
        assert!(
            parse("https://exa mple.com/")
                .unwrap_err()
                .contains("contains ' '")
        );
        assert!(parse("http://[zz]/").is_err());
    }

    #[test]
    fn tells_urls_from_image_references() {
        assert!(has_scheme("oci://ghcr.io/x:1"));
        assert!(has_scheme("file:/x.wasm"));
        assert!(!has_scheme("registry:5000/plugin"));
        assert!(!has_scheme("ghcr.io/x:1"));
    }
}
