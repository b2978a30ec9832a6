//! The rules of `AuthorizationPolicy`: what each action needs, well-formed sources, operations
//! and conditions, and the `istio.io/dry-run` annotation.

use super::{Action, AuthorizationPolicy, Condition, Operation, Rule, Source};
use crate::meta::DRY_RUN_ANNOTATION;
use crate::meta::ObjectMeta;
use crate::resource::Spec;
use crate::security::validate_attachment;
use crate::types::names::check_ip_or_cidr;
use crate::validate::{Validate, Validator};

/// The most service accounts one list may name.
const MAX_SERVICE_ACCOUNTS: usize = 16;
/// The longest `namespace/serviceAccount` value.
const MAX_SERVICE_ACCOUNT_LENGTH: usize = 320;
/// The most rules (and `from` entries per rule) the CRD accepts.
const MAX_RULES: usize = 512;

/// Source fields an external authorizer cannot be given (they need the peer's identity).
const CUSTOM_UNSUPPORTED_SOURCES: [&str; 10] = [
    "principals",
    "notPrincipals",
    "requestPrincipals",
    "notRequestPrincipals",
    "namespaces",
    "notNamespaces",
    "serviceAccounts",
    "notServiceAccounts",
    "trustDomains",
    "notTrustDomains",
];

impl Spec for AuthorizationPolicy {
    fn validate_object(&self, meta: &ObjectMeta, v: &mut Validator) {
        let Some(value) = meta.annotations.get(DRY_RUN_ANNOTATION) else {
            return;
        };
        v.at("metadata", |v| {
            v.at("annotations", |v| {
                v.at(DRY_RUN_ANNOTATION, |v| match self.action() {
                    Action::Allow | Action::Deny => {
                        if parse_bool(value).is_none() {
                            v.error(format!(
                                "{value:?} is not a boolean: use \"true\" or \"false\""
                            ));
                        }
                    }
                    action => v.error(format!(
                        "dry-run is only supported for ALLOW and DENY policies, not {}",
                        action.as_str()
                    )),
                })
            })
        });
    }
}

/// The boolean spellings the annotation accepts.
fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

impl Validate for AuthorizationPolicy {
    fn validate(&self, v: &mut Validator) {
        validate_attachment(
            v,
            self.selector.as_ref(),
            self.target_ref.as_ref(),
            &self.target_refs,
        );
        let action = self.action();
        match action {
            Action::Custom => {
                if self.rules.is_empty() {
                    v.error_at(
                        "rules",
                        "a CUSTOM policy without rules never applies; add an empty rule {} to apply it to every request",
                    );
                }
                match &self.provider {
                    None => v.error_at("provider", "is required for the CUSTOM action"),
                    Some(provider) if provider.name.is_empty() => {
                        v.at("provider", |v| v.error_at("name", "is required for the CUSTOM action"))
                    }
                    Some(_) => {}
                }
            }
            Action::Deny if self.rules.is_empty() => v.error_at(
                "rules",
                "a DENY policy without rules never applies; add an empty rule {} to deny every request",
            ),
            _ => {}
        }
        if self.provider.is_some() && action != Action::Custom {
            v.error_at(
                "provider",
                format!(
                    "only the CUSTOM action uses a provider (action is {})",
                    action.as_str()
                ),
            );
        }
        if self.rules.len() > MAX_RULES {
            v.error_at("rules", format!("at most {MAX_RULES} rules may be listed"));
        }
        v.each("rules", &self.rules, |v, rule| check_rule(rule, action, v));
    }
}

fn check_rule(rule: &Rule, action: Action, v: &mut Validator) {
    if rule.from.len() > MAX_RULES {
        v.error_at("from", format!("at most {MAX_RULES} sources may be listed"));
    }
    v.each("from", &rule.from, |v, from| match &from.source {
        None => v.error_at("source", "is required"),
        Some(source) => v.at("source", |v| check_source(source, action, v)),
    });
    v.each("to", &rule.to, |v, to| match &to.operation {
        None => v.error_at("operation", "is required"),
        Some(operation) => v.at("operation", |v| check_operation(operation, v)),
    });
    v.each("when", &rule.when, |v, condition| {
        check_condition(condition, action, v)
    });

    let sources: Vec<&Source> = rule.from.iter().filter_map(|f| f.source.as_ref()).collect();
    let operations: Vec<&Operation> = rule
        .to
        .iter()
        .filter_map(|t| t.operation.as_ref())
        .collect();
    let tcp_in_from = sources.iter().any(|s| s.has_tcp_attributes());
    let tcp_in_to = operations
        .iter()
        .any(|o| !o.ports.is_empty() || !o.not_ports.is_empty());
    let http_only = (!sources.is_empty() && operations.is_empty() && !tcp_in_from)
        || (!operations.is_empty() && !tcp_in_to);
    if action == Action::Deny && http_only {
        v.warn(
            "this DENY rule uses only HTTP attributes, so it denies all traffic to TCP ports the policy covers; name the ports it is meant for",
        );
    }
}

fn check_source(source: &Source, action: Action, v: &mut Validator) {
    let fields = source.fields();
    if fields.iter().all(|(_, values)| values.is_empty()) {
        v.error("must set at least one field");
    }
    let with_accounts =
        !source.service_accounts.is_empty() || !source.not_service_accounts.is_empty();
    let with_identities = [
        &source.principals,
        &source.not_principals,
        &source.namespaces,
        &source.not_namespaces,
    ]
    .iter()
    .any(|l| !l.is_empty());
    if with_accounts && with_identities {
        v.error("serviceAccounts and notServiceAccounts cannot be combined with principals, notPrincipals, namespaces or notNamespaces");
    }
    for (key, values) in fields {
        if action == Action::Custom
            && !values.is_empty()
            && CUSTOM_UNSUPPORTED_SOURCES.contains(&key)
        {
            v.error_at(key, "is not supported with the CUSTOM action");
        }
        match key {
            "ipBlocks" | "notIpBlocks" | "remoteIpBlocks" | "notRemoteIpBlocks" => {
                v.each(key, values, |v, value| check_ip(value, v))
            }
            "serviceAccounts" | "notServiceAccounts" => {
                v.at(key, |v| check_service_accounts(values, v))
            }
            "trustDomains" | "notTrustDomains" => v.each(key, values, |v, value| {
                if value.is_empty() {
                    v.error("must not be empty");
                } else if let Err(e) =
                    check_wildcard_value(value).and_then(|()| check_trust_domain(value))
                {
                    v.error(e);
                }
            }),
            _ => v.each(key, values, |v, value| {
                if value.is_empty() {
                    v.error("must not be empty");
                } else {
                    warn_literal_star(value, v);
                }
            }),
        }
    }
}

fn check_operation(operation: &Operation, v: &mut Validator) {
    let fields = operation.fields();
    if fields.iter().all(|(_, values)| values.is_empty()) {
        v.error("must set at least one field");
    }
    for (key, values) in fields {
        v.each(key, values, |v, value| {
            if value.is_empty() {
                return v.error("must not be empty");
            }
            match key {
                "ports" | "notPorts" => {
                    if let Err(e) = check_port(value) {
                        v.error(e);
                    }
                }
                "paths" | "notPaths" => match check_path_template(value) {
                    Err(e) => v.error(e),
                    Ok(false) => warn_literal_star(value, v),
                    Ok(true) => {}
                },
                "methods" | "notMethods" => {
                    if value.bytes().any(|b| b.is_ascii_lowercase()) {
                        v.warn(format!(
                            "methods are matched case-sensitively and HTTP methods are uppercase: {value:?} matches no standard method"
                        ));
                    }
                    warn_literal_star(value, v);
                }
                _ => warn_literal_star(value, v),
            }
        });
    }
}

/// What a condition key names, and so how its values are checked.
enum Attribute {
    /// Any non-empty value.
    Text,
    Ip,
    Port,
    ServiceAccount,
    TrustDomain,
    /// The key itself is wrong.
    Invalid(String),
}

const CONDITION_KEYS: &str = "request.headers[<name>], source.ip, remote.ip, source.namespace, source.principal, \
     source.serviceAccount, source.trustDomain, request.auth.principal, request.auth.audiences, request.auth.presenter, \
     request.auth.claims[<claim>], destination.ip, destination.port, connection.sni, experimental.envoy.filters.<filter>[<key>]";

fn attribute(key: &str) -> Attribute {
    let map_key = |prefix: &str| -> Attribute {
        let inner = key
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(']'));
        match inner {
            Some(name) if !name.is_empty() => Attribute::Text,
            _ => Attribute::Invalid(format!("{key:?} must have the form {prefix}<name>]")),
        }
    };
    match key {
        "source.ip" | "remote.ip" | "destination.ip" => Attribute::Ip,
        "destination.port" => Attribute::Port,
        "source.serviceAccount" => Attribute::ServiceAccount,
        "source.trustDomain" => Attribute::TrustDomain,
        "source.namespace"
        | "source.principal"
        | "request.auth.principal"
        | "request.auth.audiences"
        | "request.auth.presenter"
        | "connection.sni" => Attribute::Text,
        "destination.namespace" => Attribute::Invalid(
            "destination.namespace is not supported: a policy applies in its own namespace".into(),
        ),
        "destination.name" | "destination.user" => Attribute::Invalid(format!(
            "{key} is no longer supported; use the policy's selector or targetRefs"
        )),
        _ if key.starts_with("request.headers") => map_key("request.headers["),
        _ if key.starts_with("request.auth.claims") => map_key("request.auth.claims["),
        _ if key.starts_with("destination.labels") => Attribute::Invalid(
            "destination.labels is not supported: use the policy's selector instead".into(),
        ),
        _ if key.starts_with("experimental.envoy.filters.") => match key.find('[') {
            Some(open)
                if open > "experimental.envoy.filters.".len()
                    && key.ends_with(']')
                    && key.len() > open + 2 =>
            {
                Attribute::Text
            }
            _ => Attribute::Invalid(format!(
                "{key:?} must have the form experimental.envoy.filters.<filter>[<key>]"
            )),
        },
        _ => Attribute::Invalid(format!(
            "unknown condition key {key:?}; known keys are {CONDITION_KEYS}"
        )),
    }
}

fn check_condition(condition: &Condition, action: Action, v: &mut Validator) {
    let key = condition.key.as_str();
    if key.is_empty() {
        return v.error_at("key", "must not be empty");
    }
    if action == Action::Custom
        && (matches!(
            key,
            "source.namespace"
                | "source.serviceAccount"
                | "source.trustDomain"
                | "source.principal"
        ) || key.starts_with("request.auth."))
    {
        v.error_at(
            "key",
            format!("{key} is not supported with the CUSTOM action"),
        );
    }
    if condition.values.is_empty() && condition.not_values.is_empty() {
        v.error("set values or notValues (or both)");
    }
    let kind = attribute(key);
    if let Attribute::Invalid(message) = &kind {
        v.error_at("key", message.clone());
    }
    for (list, values) in [
        ("values", &condition.values),
        ("notValues", &condition.not_values),
    ] {
        if matches!(kind, Attribute::ServiceAccount) {
            v.at(list, |v| check_service_accounts(values, v));
            continue;
        }
        v.each(list, values, |v, value| {
            if value.is_empty() {
                return v.error("must not be empty");
            }
            let result = match kind {
                Attribute::Ip => check_ip_or_cidr(value),
                Attribute::Port => check_port(value),
                Attribute::TrustDomain => check_wildcard_value(value),
                _ => Ok(()),
            };
            if let Err(e) = result {
                v.error(e);
            }
        });
    }
}

fn check_ip(value: &str, v: &mut Validator) {
    if value.is_empty() {
        v.error("must not be empty");
    } else if let Err(e) = check_ip_or_cidr(value) {
        v.error(e);
    }
}

fn check_port(value: &str) -> Result<(), String> {
    match value.parse::<u32>() {
        Ok(1..=65535) if value.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
        _ => Err(format!("{value:?} is not a port number (1-65535)")),
    }
}

/// Checks a list of `serviceAccount` or `namespace/serviceAccount` values, at `v`.
fn check_service_accounts(values: &[String], v: &mut Validator) {
    if values.len() > MAX_SERVICE_ACCOUNTS {
        v.error(format!(
            "at most {MAX_SERVICE_ACCOUNTS} service accounts may be listed"
        ));
    }
    for (index, value) in values.iter().enumerate() {
        if let Err(e) = check_service_account(value) {
            v.at_index(index, |v| v.error(e));
        }
    }
}

fn check_service_account(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.contains('*') {
        return Err(format!(
            "{value:?}: wildcards are not allowed in service accounts"
        ));
    }
    if value.len() > MAX_SERVICE_ACCOUNT_LENGTH {
        return Err(format!(
            "must be at most {MAX_SERVICE_ACCOUNT_LENGTH} characters long"
        ));
    }
    let parts: Vec<&str> = value.split('/').collect();
    if parts.len() > 2 || parts.iter().any(|p| p.is_empty()) {
        return Err(format!(
            "{value:?} must be a service account name or namespace/serviceAccount"
        ));
    }
    Ok(())
}

/// A value with at most one `*`, at its start or end (suffix, prefix or presence match).
fn check_wildcard_value(value: &str) -> Result<(), String> {
    match value.matches('*').count() {
        0 => Ok(()),
        1 if value.starts_with('*') || value.ends_with('*') => Ok(()),
        1 => Err(format!(
            "{value:?}: a wildcard may only start or end the value"
        )),
        _ => Err(format!("{value:?}: at most one wildcard is allowed")),
    }
}

fn check_trust_domain(value: &str) -> Result<(), String> {
    if value.contains('/') {
        Err(format!("{value:?}: a trust domain cannot contain '/'"))
    } else {
        Ok(())
    }
}

/// Warns about a `*` that will be compared literally (only one leading or trailing `*` is a
/// wildcard in principals, namespaces, hosts and the like).
fn warn_literal_star(value: &str, v: &mut Validator) {
    let rest = value
        .strip_prefix('*')
        .or_else(|| value.strip_suffix('*'))
        .unwrap_or(value);
    if rest.contains('*') {
        v.warn(format!(
            "{value:?}: only a single leading or trailing '*' is a wildcard; any other '*' is matched literally"
        ));
    }
}

/// Checks a path's `{*}` / `{**}` templates. Returns whether the path uses templates.
fn check_path_template(path: &str) -> Result<bool, String> {
    let templated = path.contains("{*}") || path.contains("{**}");
    let mut seen_any = false;
    for segment in path.trim_matches('/').split('/') {
        match segment {
            "{*}" | "{**}" if seen_any => {
                return Err(format!(
                    "{path:?}: {{**}} must be the last template operator in the path"
                ));
            }
            "{*}" => continue,
            "{**}" => {
                seen_any = true;
                continue;
            }
            _ => {}
        }
        if segment.contains(['{', '}']) {
            return Err(format!(
                "{path:?}: '{{' and '}}' may only appear in a whole-segment {{*}} or {{**}} template"
            ));
        }
        if templated && !is_path_literal(segment) {
            return Err(format!(
                "{path:?}: segment {segment:?} of a templated path may only hold letters, digits and -._~%!$&'()+,;:@="
            ));
        }
    }
    Ok(templated)
}

fn is_path_literal(segment: &str) -> bool {
    !segment.is_empty()
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~%!$&'()+,;:@=".contains(&b))
}
