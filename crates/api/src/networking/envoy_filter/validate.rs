//! The rules of an `EnvoyFilter`: each patch names what it applies to and how, its match fits
//! the kind of object patched, and its value is a mapping. The Envoy configuration inside a
//! value is not read, except to refuse types from Envoy's retired v2 API.

use serde_json::Value;

use super::{
    ApplyTo, EnvoyConfigObjectMatch, EnvoyConfigObjectPatch, EnvoyFilter, ListenerMatch,
    PatchContext, PatchOperation,
};
use crate::resource::Spec;
use crate::types::PolicyTargetReference;
use crate::types::names::is_dns1123_subdomain;
use crate::validate::{Severity, Validate, Validator};

/// The network filter that runs HTTP filters; sub-filter matches only apply inside it.
const HTTP_CONNECTION_MANAGER: &str = "envoy.filters.network.http_connection_manager";
/// Its old name, which the mesh still recognises.
const HTTP_CONNECTION_MANAGER_OLD: &str = "envoy.http_connection_manager";

/// Longest `proxyVersion` expression that is compiled; longer ones are ignored.
const MAX_PROXY_VERSION_LEN: usize = 1024;
/// Most `targetRefs` the schema accepts.
const MAX_TARGET_REFS: usize = 16;

/// Old Envoy filter names, and the names that replaced them.
const RENAMED_FILTERS: &[(&str, &str)] = &[
    ("envoy.buffer", "envoy.filters.http.buffer"),
    ("envoy.cors", "envoy.filters.http.cors"),
    ("envoy.csrf", "envoy.filters.http.csrf"),
    ("envoy.http_dynamo_filter", "envoy.filters.http.dynamo"),
    (
        "envoy.ext_authz",
        "envoy.filters.http.ext_authz (or envoy.filters.network.ext_authz)",
    ),
    ("envoy.fault", "envoy.filters.http.fault"),
    (
        "envoy.grpc_http1_bridge",
        "envoy.filters.http.grpc_http1_bridge",
    ),
    (
        "envoy.grpc_json_transcoder",
        "envoy.filters.http.grpc_json_transcoder",
    ),
    ("envoy.grpc_web", "envoy.filters.http.grpc_web"),
    ("envoy.gzip", "envoy.filters.http.gzip"),
    ("envoy.health_check", "envoy.filters.http.health_check"),
    ("envoy.ip_tagging", "envoy.filters.http.ip_tagging"),
    ("envoy.lua", "envoy.filters.http.lua"),
    ("envoy.rate_limit", "envoy.filters.http.ratelimit"),
    ("envoy.router", "envoy.filters.http.router"),
    ("envoy.squash", "envoy.filters.http.squash"),
    (
        "envoy.listener.http_inspector",
        "envoy.filters.listener.http_inspector",
    ),
    (
        "envoy.listener.original_dst",
        "envoy.filters.listener.original_dst",
    ),
    (
        "envoy.listener.original_src",
        "envoy.filters.listener.original_src",
    ),
    (
        "envoy.listener.proxy_protocol",
        "envoy.filters.listener.proxy_protocol",
    ),
    (
        "envoy.listener.tls_inspector",
        "envoy.filters.listener.tls_inspector",
    ),
    (
        "envoy.client_ssl_auth",
        "envoy.filters.network.client_ssl_auth",
    ),
    (HTTP_CONNECTION_MANAGER_OLD, HTTP_CONNECTION_MANAGER),
    ("envoy.mongo_proxy", "envoy.filters.network.mongo_proxy"),
    ("envoy.ratelimit", "envoy.filters.network.ratelimit"),
    ("envoy.redis_proxy", "envoy.filters.network.redis_proxy"),
    ("envoy.tcp_proxy", "envoy.filters.network.tcp_proxy"),
];

/// The kinds a targetRef may name, as `group/kind` (the core group is empty).
const TARGET_KINDS: [(&str, &str); 4] = [
    ("", "Service"),
    ("networking.istio.io", "ServiceEntry"),
    ("gateway.networking.k8s.io", "Gateway"),
    ("gateway.networking.k8s.io", "GatewayClass"),
];

/// Which of the match's object kinds is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ObjectMatch {
    Listener,
    RouteConfiguration,
    Cluster,
    Waypoint,
}

impl ObjectMatch {
    fn of(m: &EnvoyConfigObjectMatch) -> Option<Self> {
        if m.listener.is_some() {
            Some(Self::Listener)
        } else if m.route_configuration.is_some() {
            Some(Self::RouteConfiguration)
        } else if m.cluster.is_some() {
            Some(Self::Cluster)
        } else if m.waypoint.is_some() {
            Some(Self::Waypoint)
        } else {
            None
        }
    }

    fn field(self) -> &'static str {
        match self {
            Self::Listener => "listener",
            Self::RouteConfiguration => "routeConfiguration",
            Self::Cluster => "cluster",
            Self::Waypoint => "waypoint",
        }
    }
}

impl ApplyTo {
    /// The object match a patch of this kind may use.
    fn object_match(self) -> Option<ObjectMatch> {
        match self {
            Self::Listener | Self::FilterChain | Self::NetworkFilter | Self::HttpFilter => {
                Some(ObjectMatch::Listener)
            }
            Self::RouteConfiguration | Self::VirtualHost | Self::HttpRoute => {
                Some(ObjectMatch::RouteConfiguration)
            }
            Self::Cluster => Some(ObjectMatch::Cluster),
            Self::Invalid | Self::ExtensionConfig | Self::Bootstrap | Self::ListenerFilter => None,
        }
    }

    /// The operations that do something to objects of this kind (`MERGE_AND_REPLACE_LIST`
    /// counts as a `MERGE`).
    fn operations(self) -> &'static [PatchOperation] {
        use PatchOperation::*;
        const FILTERS: &[PatchOperation] = &[
            Merge,
            Add,
            Remove,
            InsertBefore,
            InsertAfter,
            InsertFirst,
            Replace,
        ];
        match self {
            Self::Listener | Self::FilterChain | Self::Cluster => &[Merge, Add, Remove],
            Self::NetworkFilter | Self::HttpFilter | Self::ListenerFilter => FILTERS,
            Self::VirtualHost => &[Merge, Add, Remove, Replace],
            Self::HttpRoute => &[Merge, Add, Remove, InsertBefore, InsertAfter, InsertFirst],
            Self::RouteConfiguration | Self::Bootstrap => &[Merge],
            Self::ExtensionConfig => &[Add],
            Self::Invalid => &[],
        }
    }
}

impl Spec for EnvoyFilter {}

impl Validate for EnvoyFilter {
    fn validate(&self, v: &mut Validator) {
        v.warn(
            "an EnvoyFilter patches the proxy's generated configuration, whose details can change in any release: prefer a higher-level API where one exists, and re-test it on every upgrade",
        );
        if let Some(selector) = &self.workload_selector {
            v.nested("workloadSelector", selector);
        }
        v.at_most_one(&[
            ("workloadSelector", self.workload_selector.is_some()),
            ("targetRefs", !self.target_refs.is_empty()),
        ]);
        if self.target_refs.len() > MAX_TARGET_REFS {
            v.error_at(
                "targetRefs",
                format!(
                    "at most {MAX_TARGET_REFS} items are allowed (found {})",
                    self.target_refs.len()
                ),
            );
        }
        v.each("targetRefs", &self.target_refs, check_target_ref);
        v.nested("configPatches", &self.config_patches);
    }
}

/// The schema's rules for a targetRef; kinds the mesh does not attach EnvoyFilters to are
/// accepted, with a warning, because they are ignored rather than refused.
fn check_target_ref(v: &mut Validator, target: &PolicyTargetReference) {
    let valid_kind = |k: &str| {
        k.len() <= 63
            && k.starts_with(|c: char| c.is_ascii_alphabetic())
            && !k.ends_with('-')
            && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if target.kind.is_empty() {
        v.error_at("kind", "is required");
    } else if !valid_kind(&target.kind) {
        v.error_at(
            "kind",
            format!("{:?} is not a valid kind name", target.kind),
        );
    }
    if target.name.is_empty() {
        v.error_at("name", "is required");
    } else if target.name.len() > 253 {
        v.error_at("name", "may be at most 253 characters long");
    }
    if !target.group.is_empty() && !is_dns1123_subdomain(&target.group) {
        v.error_at(
            "group",
            format!("{:?} is not a valid API group", target.group),
        );
    }
    if !target.namespace.is_empty() {
        v.error_at(
            "namespace",
            "cross-namespace references are not supported; leave namespace unset",
        );
    }
    let group = if target.group == "core" {
        ""
    } else {
        target.group.as_str()
    };
    if !target.kind.is_empty() && !TARGET_KINDS.contains(&(group, target.kind.as_str())) {
        v.warn(format!(
            "an EnvoyFilter cannot attach to a {}: it applies only through a Service, ServiceEntry, Gateway or GatewayClass, so this reference is ignored",
            target.kind
        ));
    }
}

impl Validate for EnvoyConfigObjectMatch {
    fn validate(&self, v: &mut Validator) {
        v.at_most_one(&[
            ("listener", self.listener.is_some()),
            ("routeConfiguration", self.route_configuration.is_some()),
            ("cluster", self.cluster.is_some()),
            ("waypoint", self.waypoint.is_some()),
        ]);
        let waypoint_context = self.context == Some(PatchContext::Waypoint);
        if self.waypoint.is_some() && !waypoint_context {
            v.error_at("waypoint", "a waypoint match needs context WAYPOINT");
        } else if waypoint_context && self.waypoint.is_none() {
            v.error_at(
                "context",
                "context WAYPOINT needs a waypoint match (and no other object match)",
            );
        }
    }
}

impl Validate for EnvoyConfigObjectPatch {
    fn validate(&self, v: &mut Validator) {
        let errors = error_count(v);
        v.nested("match", &self.r#match);
        let mut match_fits = error_count(v) == errors;
        let context = self
            .r#match
            .as_ref()
            .and_then(|m| m.context)
            .unwrap_or_default();
        if context == PatchContext::Waypoint {
            // The mesh checks waypoint patches for their shape only.
            return;
        }
        let apply_to = self.apply_to.filter(|a| *a != ApplyTo::Invalid);
        if apply_to.is_none() {
            v.error_at(
                "applyTo",
                "applyTo is required: name the kind of object to patch (LISTENER, CLUSTER, HTTP_FILTER, ...)",
            );
        }
        let operation = match &self.patch {
            None => {
                v.error_at("patch", "a patch is required: set its operation (and value)");
                None
            }
            Some(patch) => v.at("patch", |v| {
                let operation = patch.operation.filter(|o| *o != PatchOperation::Invalid);
                match (operation, &patch.value) {
                    (None, _) => v.error_at(
                        "operation",
                        "an operation is required (MERGE, ADD, REMOVE, INSERT_BEFORE, INSERT_AFTER, INSERT_FIRST, REPLACE or MERGE_AND_REPLACE_LIST)",
                    ),
                    (Some(PatchOperation::Remove), Some(_)) => {
                        v.warn_at("value", "REMOVE takes no value; it is ignored")
                    }
                    (Some(PatchOperation::Remove), None) => {}
                    (Some(op), None) => v.error_at("value", format!("{op} needs a value to apply")),
                    (Some(_), Some(value)) => v.at("value", |v| check_value(value, v)),
                }
                operation
            }),
        };
        if let Some(m) = &self.r#match {
            v.at("match", |v| check_proxy_version(m, v));
        }
        let Some(apply_to) = apply_to else { return };
        let errors = error_count(v);
        self.check_match_fits(apply_to, v);
        match_fits &= error_count(v) == errors;
        if let Some(operation) = operation {
            self.check_operation_fits(apply_to, operation, match_fits, v);
        }
    }
}

impl EnvoyConfigObjectPatch {
    /// The object match must be of the kind `applyTo` patches, and filter matches must make sense.
    fn check_match_fits(&self, apply_to: ApplyTo, v: &mut Validator) {
        let Some(m) = &self.r#match else { return };
        let (Some(expected), Some(found)) = (apply_to.object_match(), ObjectMatch::of(m)) else {
            return;
        };
        if found == ObjectMatch::Waypoint {
            return; // already reported: a waypoint match needs context WAYPOINT
        }
        if found != expected {
            v.error_at(
                "match",
                format!(
                    "applyTo {apply_to} patches {} objects, so it can only use a {} match (found {})",
                    expected.field(),
                    expected.field(),
                    found.field()
                ),
            );
            return;
        }
        if let Some(listener) = &m.listener {
            v.at("match", |v| {
                v.at("listener", |v| check_filter_match(apply_to, listener, v))
            });
        }
    }

    /// Warns about operations that do nothing to the objects `applyTo` names (or, when the
    /// match is sound, to no object it names).
    fn check_operation_fits(
        &self,
        apply_to: ApplyTo,
        operation: PatchOperation,
        match_fits: bool,
        v: &mut Validator,
    ) {
        let effective = if operation == PatchOperation::MergeAndReplaceList {
            PatchOperation::Merge
        } else {
            operation
        };
        let supported = apply_to.operations();
        if !supported.contains(&effective) {
            let names: Vec<&str> = supported.iter().map(|o| o.as_str()).collect();
            v.at("patch", |v| {
                v.warn_at(
                    "operation",
                    format!(
                        "{operation} has no effect with applyTo {apply_to}; it supports {}",
                        names.join(", ")
                    ),
                )
            });
            return;
        }
        let filter = self
            .r#match
            .as_ref()
            .and_then(|m| m.listener.as_ref())
            .and_then(|l| l.filter_chain.as_ref())
            .and_then(|c| c.filter.as_ref());
        let named = |name: Option<&String>| name.is_some_and(|n| !n.is_empty());
        let needs_name = match_fits
            && match apply_to {
                ApplyTo::HttpFilter => {
                    matches!(
                        effective,
                        PatchOperation::Merge | PatchOperation::Replace | PatchOperation::Remove
                    ) && !named(
                        filter
                            .and_then(|f| f.sub_filter.as_ref())
                            .and_then(|s| s.name.as_ref()),
                    )
                }
                ApplyTo::NetworkFilter => {
                    matches!(effective, PatchOperation::Replace | PatchOperation::Remove)
                        && !named(filter.and_then(|f| f.name.as_ref()))
                }
                _ => false,
            };
        if needs_name {
            let field = if apply_to == ApplyTo::HttpFilter {
                "match.listener.filterChain.filter.subFilter.name"
            } else {
                "match.listener.filterChain.filter.name"
            };
            v.at("patch", |v| {
                v.warn_at(
                    "operation",
                    format!("{operation} acts on the filter named in {field}; without a name the patch has no effect"),
                )
            });
        }
    }
}

/// The filter and sub-filter a listener match names must fit `applyTo`.
fn check_filter_match(apply_to: ApplyTo, listener: &ListenerMatch, v: &mut Validator) {
    let Some(filter) = listener
        .filter_chain
        .as_ref()
        .and_then(|c| c.filter.as_ref())
    else {
        return;
    };
    v.at("filterChain", |v| {
        v.at("filter", |v| {
            if matches!(apply_to, ApplyTo::Listener | ApplyTo::FilterChain) {
                v.warn(format!("a filter match has no effect with applyTo {apply_to}"));
            }
            let name = filter.name.as_deref().unwrap_or_default();
            if name.is_empty() {
                v.error_at("name", "a filter match needs the name of the filter to match");
                return;
            }
            warn_renamed(name, "name", v);
            let Some(sub_filter) = &filter.sub_filter else { return };
            if apply_to != ApplyTo::HttpFilter {
                v.error_at("subFilter", "a subFilter match can only be used with applyTo HTTP_FILTER");
            } else if name != HTTP_CONNECTION_MANAGER && name != HTTP_CONNECTION_MANAGER_OLD {
                v.error_at(
                    "name",
                    format!("a subFilter match needs the filter to be {HTTP_CONNECTION_MANAGER}, which runs the HTTP filters"),
                );
            } else {
                match sub_filter.name.as_deref().unwrap_or_default() {
                    "" => v.error_at(
                        "subFilter",
                        "a subFilter match needs the name of the HTTP filter to match",
                    ),
                    sub_name => v.at("subFilter", |v| warn_renamed(sub_name, "name", v)),
                }
            }
        })
    });
}

fn error_count(v: &Validator) -> usize {
    v.issues()
        .iter()
        .filter(|i| i.severity == Severity::Error)
        .count()
}

fn warn_renamed(name: &str, key: &str, v: &mut Validator) {
    if let Some((_, new)) = RENAMED_FILTERS.iter().find(|(old, _)| *old == name) {
        v.warn_at(
            key,
            format!("filter name {name:?} is deprecated; use {new}"),
        );
    }
}

/// `proxy.proxyVersion` is a regular expression; an overlong one is ignored.
fn check_proxy_version(m: &EnvoyConfigObjectMatch, v: &mut Validator) {
    let Some(version) = m.proxy.as_ref().and_then(|p| p.proxy_version.as_deref()) else {
        return;
    };
    v.at("proxy", |v| {
        if version.len() > MAX_PROXY_VERSION_LEN {
            v.warn_at(
                "proxyVersion",
                format!("a proxyVersion longer than {MAX_PROXY_VERSION_LEN} characters is ignored"),
            );
        } else if let Err(e) = regex::Regex::new(version) {
            let detail = match e {
                regex::Error::Syntax(detail) => {
                    detail.lines().last().unwrap_or_default().to_owned()
                }
                other => other.to_string(),
            };
            v.error_at(
                "proxyVersion",
                format!("invalid regular expression {version:?}: {detail}"),
            );
        }
    });
}

/// A patch value is a mapping of Envoy configuration; `@type`s from Envoy's v2 API, which
/// proxies no longer understand, are refused.
fn check_value(value: &Value, v: &mut Validator) {
    if !value.is_object() {
        v.error("the value must be a mapping (Envoy configuration in its JSON form)");
        return;
    }
    let mut retired = Vec::new();
    find_v2_types(value, &mut retired);
    for type_url in retired {
        v.error(format!(
            "{type_url:?} is a type of Envoy's retired v2 API, which proxies no longer understand; use its v3 equivalent"
        ));
    }
}

fn find_v2_types<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                if let (true, Some(type_url)) = (key == "@type", item.as_str()) {
                    let name = type_url.rsplit('/').next().unwrap_or(type_url);
                    if name.starts_with("envoy.")
                        && name.split('.').any(|part| part.starts_with("v2"))
                    {
                        found.push(type_url);
                    }
                }
                find_v2_types(item, found);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| find_v2_types(item, found)),
        _ => {}
    }
}
