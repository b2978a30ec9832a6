//! The naming rules Kubernetes and Istio put on DNS names, hosts, labels and addresses.
//!
//! Each check returns a sentence saying what is wrong, for the validator to report at the field
//! it is checking. They are shared by every kind, so one rule reads the same everywhere.

use std::net::IpAddr;

/// A DNS-1123 label: 1-63 of `[a-z0-9-]`, starting and ending alphanumeric.
pub fn is_dns1123_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

/// A DNS-1123 subdomain: dot-separated labels, at most 253 characters.
pub fn is_dns1123_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(is_dns1123_label)
}

/// A DNS-1123 label that may instead be `*` or start with `*` (only in the first label).
fn is_wildcard_label(label: &str) -> bool {
    match label.strip_prefix('*') {
        Some("") => true,
        Some(rest) => {
            label.len() <= 63
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !rest.ends_with('-')
        }
        None => is_dns1123_label(label),
    }
}

/// Checks a resource name (`metadata.name`) the way Kubernetes does for most kinds.
pub fn check_resource_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("name is required".into());
    }
    if !is_dns1123_subdomain(name) {
        return Err(format!(
            "{name:?} is not a valid name: use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit (at most 253 characters)"
        ));
    }
    Ok(())
}

/// Checks a namespace name.
pub fn check_namespace(name: &str) -> Result<(), String> {
    if is_dns1123_label(name) {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid namespace: use at most 63 lowercase letters, digits and '-'"
        ))
    }
}

fn check_domain_length(domain: &str) -> Result<(), String> {
    if domain.is_empty() {
        return Err("an empty host name is not allowed".into());
    }
    if domain.len() > 255 {
        return Err(format!(
            "host name {domain:?} is too long (at most 255 characters)"
        ));
    }
    Ok(())
}

fn check_labels(domain: &str, labels: &str) -> Result<(), String> {
    let parts: Vec<&str> = labels.split('.').collect();
    let last = parts[parts.len() - 1];
    if !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "host name {domain:?} is invalid: its top-level label {last:?} cannot be all digits"
        ));
    }
    for (index, label) in parts.iter().enumerate() {
        if index == parts.len() - 1 && label.is_empty() && index > 0 {
            continue; // a trailing dot, as in `istio.io.`
        }
        if !is_dns1123_label(label) {
            return Err(format!(
                "host name {domain:?} is invalid: label {label:?} is not a DNS-1123 label"
            ));
        }
    }
    Ok(())
}

/// A fully qualified or short DNS name without wildcards.
pub fn check_fqdn(domain: &str) -> Result<(), String> {
    check_domain_length(domain)?;
    check_labels(domain, domain)
}

/// A DNS name whose first label may be a wildcard: `*`, `*.example.com`, `reviews`.
pub fn check_wildcard_domain(domain: &str) -> Result<(), String> {
    check_domain_length(domain)?;
    let (first, rest) = match domain.split_once('.') {
        Some((first, rest)) => (first, Some(rest)),
        None => (domain, None),
    };
    if !is_wildcard_label(first) {
        return Err(format!(
            "host name {domain:?} is invalid: label {first:?} is not a DNS-1123 label"
        ));
    }
    match rest {
        Some(rest) => check_labels(domain, rest),
        None => Ok(()),
    }
}

/// Only a whole leading label may be a wildcard: `*` or `*.example.com`, never `*foo.com`.
pub fn check_no_partial_wildcard(host: &str) -> Result<(), String> {
    let leading_label = host
        .strip_prefix("*.")
        .is_some_and(|rest| !rest.contains('*'));
    if host.contains('*') && host != "*" && !leading_label {
        return Err(format!(
            "partial wildcard {host:?} is not allowed: use \"*\" or \"*.domain\""
        ));
    }
    Ok(())
}

/// A `namespace/dnsName` host as Gateway servers and Sidecar egress listeners take it.
/// Gateways also accept a bare host and an IP address; Sidecars do not.
pub fn check_namespaced_host(host: &str, gateway: bool) -> Vec<String> {
    let mut problems = Vec::new();
    let Some((namespace, name)) = host.split_once('/') else {
        if gateway {
            check_namespaced_host_name(host, true, &mut problems);
        } else {
            problems.push(format!(
                "host {host:?} must be of the form namespace/dnsName"
            ));
        }
        return problems;
    };
    if namespace.is_empty() || name.is_empty() {
        problems.push(format!(
            "host {host:?}: the namespace and the DNS name cannot be empty"
        ));
    }
    let namespace_ok = if gateway {
        matches!(namespace, "*" | ".") || is_dns1123_label(namespace)
    } else {
        let bare = namespace.strip_prefix('~').unwrap_or(namespace);
        bare.is_empty() || matches!(bare, "*" | ".") || is_dns1123_label(bare)
    };
    if !namespace_ok && !namespace.is_empty() {
        problems.push(format!("host {host:?}: {namespace:?} is not a valid namespace (use a namespace name, \".\" or \"*\")"));
    }
    if !name.is_empty() {
        check_namespaced_host_name(name, gateway, &mut problems);
    }
    problems
}

fn check_namespaced_host_name(name: &str, gateway: bool, problems: &mut Vec<String>) {
    if name != "*" && !name.contains('.') {
        problems.push(format!(
            "host {name:?}: short names are not allowed here, use a fully qualified name"
        ));
    }
    if let Err(e) = check_wildcard_domain(name)
        && !(gateway && name.parse::<IpAddr>().is_ok())
    {
        problems.push(e);
    }
    if let Err(e) = check_no_partial_wildcard(name) {
        problems.push(e);
    }
}

/// An IP address, or a CIDR block such as `10.0.0.0/8` or `2001:db8::/32`.
pub fn check_ip_or_cidr(text: &str) -> Result<(), String> {
    match text.split_once('/') {
        None => text
            .parse::<IpAddr>()
            .map(|_| ())
            .map_err(|_| format!("{text:?} is not a valid IP address")),
        Some((address, bits)) => {
            let bad = || format!("{text:?} is not a valid CIDR block");
            let address: IpAddr = address.parse().map_err(|_| bad())?;
            let bits: u8 = bits.parse().map_err(|_| bad())?;
            let max = if address.is_ipv4() { 32 } else { 128 };
            if bits > max || bits.to_string() != text.split_once('/').map_or("", |p| p.1) {
                return Err(bad());
            }
            Ok(())
        }
    }
}

/// A Kubernetes label (or annotation) key: an optional DNS subdomain prefix and a name.
pub fn check_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && (prefix.is_empty() || !is_dns1123_subdomain(prefix))
    {
        return Err(format!(
            "label key {key:?}: prefix {prefix:?} must be a DNS subdomain"
        ));
    }
    if !is_qualified_name_part(name) {
        return Err(format!(
            "label key {key:?}: the name part must be 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// A Kubernetes label value: empty, or up to 63 characters like a label key's name.
pub fn check_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() || is_qualified_name_part(value) {
        Ok(())
    } else {
        Err(format!(
            "label value {value:?} must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        ))
    }
}

fn is_qualified_name_part(name: &str) -> bool {
    let bytes = name.as_bytes();
    !name.is_empty()
        && name.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

/// An RFC 7230 token: the characters an HTTP header name may use.
pub fn is_header_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// An HTTP header name (an RFC 7230 token). Case does not matter: proxies lowercase names.
pub fn check_header_token(name: &str) -> Result<(), String> {
    if is_header_token(name) {
        Ok(())
    } else {
        Err(format!("{name:?} is not a valid HTTP header name"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_domains() {
        for ok in [
            "*",
            "*.example.com",
            "reviews",
            "reviews.default.svc.cluster.local",
            "istio.io.",
            "*bar.com",
        ] {
            assert!(check_wildcard_domain(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "foo.*.com",
            "Foo.com",
            "a..b",
            "foo.123",
            "-a.com",
            &"a".repeat(300),
        ] {
            assert!(check_wildcard_domain(bad).is_err(), "{bad}");
        }
        assert!(check_no_partial_wildcard("*bar.com").is_err());
        assert!(check_no_partial_wildcard("*.bar.com").is_ok());
    }

    #[test]
    fn namespaced_hosts() {
        assert!(check_namespaced_host("./*", false).is_empty());
        assert!(check_namespaced_host("istio-system/*.example.com", false).is_empty());
        assert!(check_namespaced_host("~/*", false).is_empty());
        assert!(!check_namespaced_host("*", false).is_empty());
        assert!(check_namespaced_host("*", true).is_empty());
        assert!(check_namespaced_host("bookinfo.com", true).is_empty());
        assert!(check_namespaced_host("10.0.0.1", true).is_empty());
        assert!(!check_namespaced_host("ns/reviews", true).is_empty());
        assert!(!check_namespaced_host("Bad_NS/*", true).is_empty());
    }

    #[test]
    fn labels_and_headers() {
        assert!(check_label_key("app.kubernetes.io/name").is_ok());
        assert!(check_label_key("version").is_ok());
        assert!(check_label_key("-bad").is_err());
        assert!(check_label_key("a/b/c").is_err());
        assert!(check_label_value("").is_ok());
        assert!(check_label_value("v1.2_x").is_ok());
        assert!(check_label_value("*").is_err());
        assert!(check_header_token("x-request-id").is_ok());
        assert!(check_header_token("X-Upper").is_ok());
        assert!(check_header_token(":authority").is_err());
        assert!(check_header_token("bad header").is_err());
        assert!(check_header_token("").is_err());
    }

    #[test]
    fn addresses() {
        assert!(check_ip_or_cidr("10.0.0.1").is_ok());
        assert!(check_ip_or_cidr("10.0.0.0/8").is_ok());
        assert!(check_ip_or_cidr("2001:db8::/32").is_ok());
        assert!(check_ip_or_cidr("10.0.0.0/33").is_err());
        assert!(check_ip_or_cidr("10.0.0/8").is_err());
        assert!(check_ip_or_cidr("host").is_err());
    }
}
