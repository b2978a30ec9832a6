//! Rules that answer themselves: `redirect` and `directResponse`.
//!
//! A redirect keeps Istio's fields: `uri` (the whole path), `prefixRewrite`, `authority`,
//! `scheme`, `port` or `derivePort`, and `redirectCode` (301 when unset; a code other than 301,
//! 302, 303, 307 or 308 is reported and 301 used, as Envoy accepts no other). A direct
//! response's body is its `string`, or its `bytes` decoded from base64; bytes that are not
//! UTF-8 text cannot be carried yet and are reported.

use trellis_api::networking::{HttpBody, HttpDirectResponse, HttpRedirect, RedirectPortSelection};
use trellis_proxy_config::{DirectResponse, Redirect, RedirectPort};

use crate::rules::Rule;
use crate::warnings::Warnings;

pub(crate) fn redirect(
    rule: &Rule<'_>,
    redirect: &HttpRedirect,
    warnings: &mut Warnings,
) -> Redirect {
    let status = match redirect.redirect_code {
        None | Some(0) => 301,
        Some(code @ (301 | 302 | 303 | 307 | 308)) => code as u16,
        Some(code) => {
            let path = format!("{}.redirect.redirectCode", rule.path);
            warnings.field(
                "VirtualService",
                rule.source,
                &path,
                format!("{code} is not a redirect status (301, 302, 303, 307 or 308); 301 is used"),
            );
            301
        }
    };
    let port = match (
        redirect
            .port
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0),
        redirect.derive_port,
    ) {
        (Some(number), _) => Some(RedirectPort::Number(number)),
        (None, Some(RedirectPortSelection::FromProtocolDefault)) => Some(RedirectPort::FromScheme),
        (None, Some(RedirectPortSelection::FromRequestPort)) => Some(RedirectPort::FromRequest),
        (None, None) => None,
    };
    Redirect {
        status,
        scheme: redirect.scheme.clone(),
        authority: redirect.authority.clone(),
        port,
        path: redirect.uri.clone(),
        prefix: redirect.prefix_rewrite.clone(),
    }
}

pub(crate) fn direct_response(
    rule: &Rule<'_>,
    response: &HttpDirectResponse,
    warnings: &mut Warnings,
) -> DirectResponse {
    let path = format!("{}.directResponse", rule.path);
    let status = u16::try_from(response.status).unwrap_or_else(|_| {
        warnings.field(
            "VirtualService",
            rule.source,
            &format!("{path}.status"),
            format!("{} is not an HTTP status; 500 is used", response.status),
        );
        500
    });
    let body = match &response.body {
        None | Some(HttpBody::Empty) => None,
        Some(HttpBody::String(text)) => Some(text.clone()),
        Some(HttpBody::Bytes(encoded)) => match decode_base64(encoded).map(String::from_utf8) {
            Some(Ok(text)) => Some(text),
            Some(Err(_)) => {
                warnings.field(
                    "VirtualService",
                    rule.source,
                    &format!("{path}.body.bytes"),
                    "binary (non-UTF-8) bodies are not supported yet; the response has no body",
                );
                None
            }
            None => {
                warnings.field(
                    "VirtualService",
                    rule.source,
                    &format!("{path}.body.bytes"),
                    "is not base64; the response has no body",
                );
                None
            }
        },
    };
    DirectResponse { status, body }
}

/// Decodes base64 as protobuf's JSON form accepts it: the standard or URL-safe alphabet, with or
/// without padding.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32)
    }
    let digits = text.trim_end_matches('=').as_bytes();
    if digits.len() % 4 == 1 || text.len() - digits.len() > 2 {
        return None;
    }
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let mut bits = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            bits |= value(*c)? << (18 - 6 * i);
        }
        let bytes = bits.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::decode_base64;

    #[test]
    fn base64_in_both_alphabets_with_or_without_padding() {
        assert_eq!(
            decode_base64("dGhpcyBpcyBhIHRlc3Q=").unwrap(),
            b"this is a test"
        );
        assert_eq!(
            decode_base64("dGhpcyBpcyBhIHRlc3Q").unwrap(),
            b"this is a test"
        );
        assert_eq!(decode_base64("YQ==").unwrap(), b"a");
        assert_eq!(decode_base64("").unwrap(), b"");
        assert_eq!(
            decode_base64("-_8=").unwrap(),
            decode_base64("+/8=").unwrap()
        );
        assert_eq!(decode_base64("+/8=").unwrap(), [0xfb, 0xff]);
        assert!(decode_base64("a").is_none());
        assert!(decode_base64("ab!c").is_none());
    }
}
