//! Checks for annotation values, each saying what is wrong in words an operator can act on.
//!
//! The rules are the ones the injector and the proxy apply when they read the value (a port
//! list that does not parse stops injection; an unknown `proxy.istio.io/config` field is
//! silently ignored), so a value refused here is one that would not do what was meant.

use serde_json::Value;

use crate::types::Duration;
use crate::types::names::{check_ip_or_cidr, is_dns1123_label};

/// `true` or `false` (in the spellings Go accepts: `1`, `t`, `TRUE`, ...).
pub(super) fn boolean(value: &str) -> Result<(), String> {
    const SPELLINGS: [&str; 12] = [
        "1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False",
    ];
    if SPELLINGS.contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is not a boolean: use \"true\" or \"false\""
        ))
    }
}

/// A non-negative whole number that fits in 32 bits.
pub(super) fn uint32(value: &str) -> Result<(), String> {
    if !value.is_empty()
        && value.bytes().all(|b| b.is_ascii_digit())
        && value.parse::<u32>().is_ok()
    {
        Ok(())
    } else {
        Err(format!("{value:?} is not a non-negative whole number"))
    }
}

/// A whole number from 0 to 100.
pub(super) fn percent(value: &str) -> Result<(), String> {
    match value.parse::<u8>() {
        Ok(n) if n <= 100 => Ok(()),
        _ => Err(format!("{value:?} is not a whole number from 0 to 100")),
    }
}

/// A port number (0 turns the feature off where that is allowed).
pub(super) fn port(value: &str) -> Result<(), String> {
    let trimmed = value.trim();
    if !trimmed.is_empty()
        && trimmed.bytes().all(|b| b.is_ascii_digit())
        && trimmed.parse::<u16>().is_ok()
    {
        Ok(())
    } else {
        Err(format!("{value:?} is not a port number (0-65535)"))
    }
}

/// A comma-separated list of port numbers; empty means none.
pub(super) fn port_list(value: &str) -> Result<(), String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(());
    }
    for item in value.split(',') {
        port(item).map_err(|e| {
            format!("{e}; write port numbers separated by commas, such as \"8080,9090\"")
        })?;
    }
    Ok(())
}

/// `*` (every port) or a list of ports.
pub(super) fn include_ports(value: &str) -> Result<(), String> {
    if value == "*" {
        Ok(())
    } else {
        port_list(value)
    }
}

/// A comma-separated list of CIDR blocks (`10.0.0.0/8`), without spaces; empty means none.
pub(super) fn cidr_list(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    for item in value.split(',') {
        let parsed = if item.contains('/') {
            check_ip_or_cidr(item)
        } else {
            Err(String::new())
        };
        if parsed.is_err() {
            return Err(format!(
                "{item:?} is not a CIDR block; write blocks such as \"10.0.0.0/8\", separated by commas without spaces"
            ));
        }
    }
    Ok(())
}

/// `*` (every address) or a list of CIDR blocks.
pub(super) fn include_ip_ranges(value: &str) -> Result<(), String> {
    if value == "*" {
        Ok(())
    } else {
        cidr_list(value)
    }
}

/// How inbound connections reach the proxy.
pub(super) fn interception_mode(value: &str) -> Result<(), String> {
    match value {
        "REDIRECT" | "TPROXY" | "NONE" => Ok(()),
        _ => Err(format!(
            "{value:?} is not an interception mode: use REDIRECT, TPROXY or NONE"
        )),
    }
}

/// A Kubernetes resource quantity (`100m`, `0.5`, `128Mi`, `1G`).
pub(super) fn quantity(value: &str) -> Result<(), String> {
    let bad =
        || format!("{value:?} is not a resource quantity, such as \"100m\", \"0.5\" or \"128Mi\"");
    let unsigned = value.strip_prefix(['+', '-']).unwrap_or(value);
    let digits_end = unsigned
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(digits_end);
    let mut parts = number.split('.');
    let whole = parts.next().unwrap_or_default();
    let fraction = parts.next();
    if parts.next().is_some() || (whole.is_empty() && fraction.is_none_or(str::is_empty)) {
        return Err(bad());
    }
    const SUFFIXES: [&str; 16] = [
        "", "n", "u", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
    ];
    let exponent = suffix
        .strip_prefix(['e', 'E'])
        .map(|e| e.strip_prefix(['+', '-']).unwrap_or(e));
    let suffix_ok = SUFFIXES.contains(&suffix)
        || exponent.is_some_and(|e| !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()));
    if suffix_ok { Ok(()) } else { Err(bad()) }
}

/// A duration such as `5s` or `1m30s`.
pub(super) fn duration(value: &str) -> Result<(), String> {
    Duration::parse(value)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// A JSON document.
pub(super) fn json(value: &str) -> Result<(), String> {
    serde_json::from_str::<Value>(value)
        .map(|_| ())
        .map_err(|e| format!("the value is not valid JSON: {e}"))
}

/// The proxy's log levels.
const LOG_LEVELS: [&str; 8] = [
    "trace", "debug", "info", "warning", "warn", "error", "critical", "off",
];

/// One of the proxy's log levels.
pub(super) fn proxy_log_level(value: &str) -> Result<(), String> {
    if LOG_LEVELS.contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is not a log level: use one of {}",
            LOG_LEVELS.join(", ")
        ))
    }
}

/// Per-component log levels: `upstream:debug,connection:info`.
pub(super) fn component_log_levels(value: &str) -> Result<(), String> {
    for item in value.split(',') {
        match item.split_once(':') {
            Some((component, level)) if !component.is_empty() => {
                proxy_log_level(level).map_err(|e| format!("in {item:?}: {e}"))?
            }
            _ => {
                return Err(format!(
                    "{item:?} is not <component>:<level>; write pairs such as \"upstream:debug,connection:info\""
                ));
            }
        }
    }
    Ok(())
}

/// The namespaces a service is visible to: `*` (all), `.` (its own), `~` (none) or names,
/// separated by commas.
pub(super) fn export_to(value: &str) -> Result<(), String> {
    for item in value.split(',').map(str::trim) {
        if !matches!(item, "*" | "." | "~") && !is_dns1123_label(item) {
            return Err(format!(
                "{item:?} is not a namespace: use \"*\" (every namespace), \".\" (the service's own), \"~\" (none) or namespace names, separated by commas"
            ));
        }
    }
    Ok(())
}

/// Proxy settings (`ProxyConfig` in the mesh configuration) as YAML or JSON: a mapping of known
/// fields, the few whose type is easy to get wrong checked.
pub(super) fn proxy_config(value: &str) -> Result<(), String> {
    let stream = crate::yaml::parse_stream(value);
    if let Some(error) = stream.error {
        return Err(format!("the value is not valid YAML: {}", error.message));
    }
    let config = match stream.documents.as_slice() {
        [] => return Ok(()),
        [document] => &document.value,
        _ => return Err("the value holds more than one YAML document".to_owned()),
    };
    let Value::Object(fields) = config else {
        return Err("the value must be a mapping of proxy settings, such as \"holdApplicationUntilProxyStarts: true\"".to_owned());
    };
    for (key, field) in fields {
        let name = camel_case(key);
        if !PROXY_CONFIG_FIELDS.contains(&name.as_str()) {
            return Err(format!(
                "{key:?} is not a proxy setting, so it is ignored; check its spelling"
            ));
        }
        check_proxy_field(&name, field).map_err(|e| format!("setting {key}: {e}"))?;
    }
    Ok(())
}

fn check_proxy_field(name: &str, field: &Value) -> Result<(), String> {
    match name {
        "holdApplicationUntilProxyStarts" | "statsCompression" if !field.is_boolean() => {
            Err("must be true or false".to_owned())
        }
        "concurrency" | "statNameLength" | "fileFlushMinSizeKb" if !field.is_u64() => {
            Err("must be a non-negative whole number".to_owned())
        }
        "statusPort" | "proxyAdminPort"
            if !field.as_u64().is_some_and(|p| (1..=65535).contains(&p)) =>
        {
            Err("must be a port number (1-65535)".to_owned())
        }
        "interceptionMode" => interception_mode(field.as_str().unwrap_or_default()),
        "drainDuration" | "terminationDrainDuration" | "fileFlushInterval" => {
            match field.as_str() {
                Some(text) => duration(text),
                None => Err("must be a duration, such as \"5s\"".to_owned()),
            }
        }
        "proxyMetadata" | "runtimeValues" => match field {
            Value::Object(map) => match map.iter().find(|(_, v)| !v.is_string()) {
                Some((key, _)) => Err(format!(
                    "the value of {key} must be a string (quote it, as in \"true\")"
                )),
                None => Ok(()),
            },
            _ => Err("must be a mapping of names to strings".to_owned()),
        },
        _ => Ok(()),
    }
}

/// `snake_case` to `camelCase`, since the proxy reads both spellings.
fn camel_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// The fields of the proxy settings.
const PROXY_CONFIG_FIELDS: &[&str] = &[
    "configPath",
    "binaryPath",
    "serviceCluster",
    "tracingServiceName",
    "drainDuration",
    "discoveryAddress",
    "discoveryRefreshDelay",
    "zipkinAddress",
    "statsdUdpAddress",
    "envoyMetricsServiceAddress",
    "proxyAdminPort",
    "availabilityZone",
    "controlPlaneAuthPolicy",
    "customConfigFile",
    "statNameLength",
    "concurrency",
    "proxyBootstrapTemplatePath",
    "interceptionMode",
    "tracing",
    "sds",
    "envoyAccessLogService",
    "envoyMetricsService",
    "proxyMetadata",
    "runtimeValues",
    "statusPort",
    "extraStatTags",
    "gatewayTopology",
    "terminationDrainDuration",
    "meshId",
    "readinessProbe",
    "proxyStatsMatcher",
    "holdApplicationUntilProxyStarts",
    "caCertificatesPem",
    "image",
    "privateKeyProvider",
    "proxyHeaders",
    "fileFlushInterval",
    "fileFlushMinSizeKb",
    "statsCompression",
    "connectionSettings",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_ranges() {
        assert!(port_list("8080, 9090").is_ok());
        assert!(port_list("").is_ok());
        assert!(port_list("8080,").is_err());
        assert!(port_list("http").is_err());
        assert!(include_ports("*").is_ok());
        assert!(cidr_list("10.0.0.0/8,172.16.0.0/12").is_ok());
        assert!(cidr_list("10.0.0.0/8, 172.16.0.0/12").is_err());
        assert!(cidr_list("10.0.0.1").is_err());
        assert!(include_ip_ranges("*").is_ok());
        assert!(port("70000").is_err());
    }

    #[test]
    fn quantities() {
        for good in ["100m", "0.5", "128Mi", "1G", "2", ".5", "1e3", "1E-2"] {
            assert!(quantity(good).is_ok(), "{good}");
        }
        for bad in ["", "100 m", "1.2.3", "128MB", "m", "1e", "abc"] {
            assert!(quantity(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn proxy_settings() {
        assert!(proxy_config("holdApplicationUntilProxyStarts: true").is_ok());
        assert!(proxy_config("{\"concurrency\": 2}").is_ok());
        assert!(proxy_config("hold_application_until_proxy_starts: true").is_ok());
        assert!(proxy_config("").is_ok());
        let typo = proxy_config("holdApplicationUntilProxyStart: true").unwrap_err();
        assert!(typo.contains("not a proxy setting"), "{typo}");
        assert!(proxy_config("concurrency: two").is_err());
        assert!(proxy_config("proxyMetadata: {ISTIO_META_DNS_CAPTURE: true}").is_err());
        assert!(proxy_config("proxyMetadata: {ISTIO_META_DNS_CAPTURE: \"true\"}").is_ok());
        assert!(proxy_config("- a").is_err());
    }

    #[test]
    fn levels_and_namespaces() {
        assert!(component_log_levels("upstream:debug,connection:info").is_ok());
        assert!(component_log_levels("upstream=debug").is_err());
        assert!(proxy_log_level("verbose").is_err());
        assert!(export_to(".,istio-system").is_ok());
        assert!(export_to("Bad_NS").is_err());
        assert!(boolean("yes").is_err());
    }
}
