//! `ServiceEntry`: services the mesh does not discover by itself (external APIs, VMs, databases),
//! with their hosts, ports, how their endpoints are found and, optionally, the endpoints.
//!
//! Also [`WorkloadLabelSelector`], the `workloadSelector: {labels}` form that ServiceEntry and
//! EnvoyFilter share.

use crate::analyze::messages::SERVICE_ENTRY_ADDRESSES_REQUIRED;
use std::collections::HashSet;

use serde::{Deserialize, Deserializer, Serialize};

use super::destination::{ExportKind, validate_export_to};
use super::workload_entry::{AddressRule, EntryContext, WorkloadEntry};
use crate::meta::ObjectMeta;
use crate::resource::Spec;
use crate::types::names::{
    check_fqdn, check_ip_or_cidr, check_no_partial_wildcard, check_wildcard_domain,
    is_dns1123_label,
};
use crate::types::{Labels, Port, Protocol};
use crate::validate::{Validate, Validator};

/// Label with which a ServiceEntry opts out of automatic address allocation (value `"false"`).
pub const AUTOALLOCATE_LABEL: &str = "networking.istio.io/enable-autoallocate-ip";
/// Label that sends a resource's traffic through a waypoint proxy.
pub const USE_WAYPOINT_LABEL: &str = "istio.io/use-waypoint";

/// Most `hosts`, `addresses` or `ports` a ServiceEntry may list.
const MAX_LIST: usize = 256;
/// Most inline `endpoints` a ServiceEntry may list.
const MAX_ENDPOINTS: usize = 4096;
/// Longest address (an IP or CIDR block) the schema accepts.
const MAX_ADDRESS_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceEntry {
    pub hosts: Vec<String>,
    /// Virtual IPs or CIDR blocks of the service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ServicePort>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<ServiceEntryLocation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<ServiceEntryResolution>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<WorkloadEntry>,
    /// Selects pods and WorkloadEntries as the endpoints, instead of listing `endpoints`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<WorkloadLabelSelector>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub export_to: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
}

/// A port of a ServiceEntry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    pub number: Port,
    /// Unset (or empty) lets the proxy detect the protocol.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "protocol_or_empty"
    )]
    pub protocol: Option<Protocol>,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<Port>,
}

/// Whether the service is part of the mesh (its workloads run proxies) or outside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServiceEntryLocation {
    #[default]
    MeshExternal,
    MeshInternal,
}

/// How the proxy finds the service's endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServiceEntryResolution {
    /// Traffic goes to the address the client connected to.
    #[default]
    None,
    /// The listed endpoint addresses.
    Static,
    /// The endpoints (or hosts) resolved by DNS, every address used.
    Dns,
    /// The endpoint (or host) resolved by DNS, one address used per connection.
    DnsRoundRobin,
    /// Each request's host resolved by DNS when it is made (wildcard hosts only).
    DynamicDns,
}

/// Istio's networking `WorkloadSelector`: label equality on pods and WorkloadEntries, written
/// `labels:` (unlike the `matchLabels:` of [`crate::types::WorkloadSelector`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadLabelSelector {
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
}

impl std::fmt::Display for ServiceEntryResolution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::None => "NONE",
            Self::Static => "STATIC",
            Self::Dns => "DNS",
            Self::DnsRoundRobin => "DNS_ROUND_ROBIN",
            Self::DynamicDns => "DYNAMIC_DNS",
        })
    }
}

/// Reads a port protocol, treating `""` as unset (it means "detect the protocol").
fn protocol_or_empty<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Protocol>, D::Error> {
    use serde::de::IntoDeserializer;
    match Option::<String>::deserialize(deserializer)? {
        None => Ok(None),
        Some(name) if name.is_empty() => Ok(None),
        Some(name) => Protocol::deserialize(name.as_str().into_deserializer()).map(Some),
    }
}

impl Validate for WorkloadLabelSelector {
    fn validate(&self, v: &mut Validator) {
        if self.labels.is_empty() {
            v.warn("the selector has no labels, so it selects every workload in the namespace");
        }
        v.at("labels", |v| {
            for (key, value) in &self.labels {
                v.at(key, |v| {
                    if key.is_empty() {
                        v.error("a selector label key cannot be empty");
                    }
                    if key.contains('*') || value.contains('*') {
                        v.error("wildcards are not supported in a workload selector");
                    }
                    if value.len() > 63 {
                        v.error(format!(
                            "label value may be at most 63 characters long (it has {})",
                            value.len()
                        ));
                    }
                });
            }
        });
    }
}

impl ServiceEntry {
    pub fn resolution(&self) -> ServiceEntryResolution {
        self.resolution.unwrap_or_default()
    }

    pub fn location(&self) -> ServiceEntryLocation {
        self.location.unwrap_or_default()
    }

    fn check_hosts(&self, v: &mut Validator) {
        if self.hosts.is_empty() {
            v.error_at("hosts", "a ServiceEntry needs at least one host");
        }
        check_max_items(v, "hosts", self.hosts.len(), MAX_LIST);
        let dynamic = self.resolution() == ServiceEntryResolution::DynamicDns;
        v.each("hosts", &self.hosts, |v, host| {
            if host == "*" {
                v.error("a ServiceEntry host cannot be \"*\"; name the hosts (a wildcard such as *.example.com is allowed)");
                return;
            }
            if let Err(e) = check_wildcard_domain(host) {
                v.error(e);
            }
            if !dynamic && let Err(e) = check_no_partial_wildcard(host) {
                v.warn(e);
            }
        });
    }

    fn check_addresses(&self, v: &mut Validator) {
        check_max_items(v, "addresses", self.addresses.len(), MAX_LIST);
        v.each("addresses", &self.addresses, |v, address| {
            if address.len() > MAX_ADDRESS_LEN {
                v.error(format!(
                    "an address may be at most {MAX_ADDRESS_LEN} characters long"
                ));
            } else if let Err(e) = check_ip_or_cidr(address) {
                v.error(e);
            }
        });
        let resolution = self.resolution();
        if self.addresses.iter().any(|a| a.contains('/'))
            && !matches!(
                resolution,
                ServiceEntryResolution::None | ServiceEntryResolution::Static
            )
        {
            v.error_at(
                "addresses",
                format!("CIDR blocks are only allowed with resolution NONE or STATIC (resolution is {resolution})"),
            );
        }
    }

    /// Checks the ports and returns their names.
    fn check_ports(&self, v: &mut Validator) -> Vec<&str> {
        check_max_items(v, "ports", self.ports.len(), MAX_LIST);
        let mut names = HashSet::new();
        let mut numbers = HashSet::new();
        v.each("ports", &self.ports, |v, port| {
            if !is_dns1123_label(&port.name) {
                v.error_at(
                    "name",
                    format!("port name {:?} is invalid: use at most 63 lowercase letters, digits and '-'", port.name),
                );
            } else if !names.insert(port.name.as_str()) {
                v.error_at("name", format!("port name {:?} is used by more than one port", port.name));
            }
            if !numbers.insert(port.number) {
                v.error_at("number", format!("port {} is listed more than once", port.number));
            }
        });
        self.ports.iter().map(|p| p.name.as_str()).collect()
    }

    /// The rules that depend on `resolution`.
    fn check_resolution(&self, port_names: &[&str], v: &mut Validator) {
        let resolution = self.resolution();
        match resolution {
            ServiceEntryResolution::None => {
                if !self.endpoints.is_empty() {
                    v.error_at(
                        "endpoints",
                        "endpoints cannot be listed with resolution NONE; use STATIC or DNS to send traffic to them",
                    );
                }
                if self.workload_selector.is_some() {
                    v.warn_at(
                        "workloadSelector",
                        "a workloadSelector has no effect with resolution NONE",
                    );
                }
            }
            ServiceEntryResolution::Static => {
                let cx = EntryContext {
                    addresses: AddressRule::IpOrSocket,
                    service_ports: Some(port_names),
                };
                v.each("endpoints", &self.endpoints, |v, endpoint| {
                    endpoint.check(cx, v)
                });
            }
            ServiceEntryResolution::Dns | ServiceEntryResolution::DnsRoundRobin => {
                if self.endpoints.is_empty() {
                    // Only the first host is reported, as one fix (endpoints) answers them all.
                    if let Some(index) = self
                        .hosts
                        .iter()
                        .position(|h| h != "*" && check_fqdn(h).is_err())
                    {
                        let message = format!(
                            "with resolution {resolution} and no endpoints, each host is resolved by DNS, so it must be a plain DNS name (no wildcards)"
                        );
                        v.at("hosts", |v| v.at_index(index, |v| v.error(message)));
                    }
                }
                if resolution == ServiceEntryResolution::DnsRoundRobin && self.endpoints.len() > 1 {
                    v.error_at(
                        "endpoints",
                        format!(
                            "resolution DNS_ROUND_ROBIN takes at most one endpoint (found {})",
                            self.endpoints.len()
                        ),
                    );
                }
                let cx = EntryContext {
                    addresses: AddressRule::IpOrHostname,
                    service_ports: Some(port_names),
                };
                v.each("endpoints", &self.endpoints, |v, endpoint| {
                    endpoint.check(cx, v)
                });
                if !self.addresses.is_empty()
                    && self.hosts.len() > 1
                    && self
                        .ports
                        .iter()
                        .any(|p| p.protocol.is_some_and(Protocol::is_tcp))
                {
                    v.warn_at(
                        "hosts",
                        "with addresses and a TCP port, traffic cannot be told apart by host: list one host per ServiceEntry",
                    );
                }
            }
            ServiceEntryResolution::DynamicDns => {
                v.each("hosts", &self.hosts, |v, host| {
                    if !host.starts_with('*') {
                        v.error(
                            "resolution DYNAMIC_DNS needs wildcard hosts (such as *.example.com)",
                        );
                    }
                });
                if !self.addresses.is_empty() {
                    v.error_at(
                        "addresses",
                        "addresses cannot be set with resolution DYNAMIC_DNS: each request's host is resolved as it is made",
                    );
                }
                if !self.endpoints.is_empty() {
                    v.error_at(
                        "endpoints",
                        "endpoints cannot be listed with resolution DYNAMIC_DNS: the request's host is resolved instead",
                    );
                }
                v.each("ports", &self.ports, |v, port| {
                    if !matches!(
                        port.protocol,
                        Some(Protocol::Http | Protocol::Http2 | Protocol::Grpc | Protocol::Tls)
                    ) {
                        v.error_at(
                            "protocol",
                            "resolution DYNAMIC_DNS supports only HTTP, HTTP2, GRPC and TLS ports",
                        );
                    }
                });
            }
        }
        if resolution != ServiceEntryResolution::None && self.hosts.len() > 1 {
            let mixed = self
                .ports
                .iter()
                .position(|p| !p.protocol.is_some_and(|p| p.is_http() || p.is_tls()));
            if let Some(index) = mixed {
                v.at("ports", |v| {
                    v.at_index(index, |v| {
                        v.error_at(
                            "protocol",
                            "with several hosts, every port must be HTTP or TLS so that requests can be told apart by host (or use resolution NONE)",
                        )
                    })
                });
            }
        }
    }
}

/// Reports an error at `key` when a list is longer than the schema allows.
fn check_max_items(v: &mut Validator, key: &str, len: usize, max: usize) {
    if len > max {
        v.error_at(
            key,
            format!("at most {max} items are allowed (found {len})"),
        );
    }
}

impl Validate for ServiceEntry {
    fn validate(&self, v: &mut Validator) {
        if let Some(selector) = &self.workload_selector {
            v.nested("workloadSelector", selector);
            v.at_most_one(&[
                ("workloadSelector", true),
                ("endpoints", !self.endpoints.is_empty()),
            ]);
        }
        self.check_hosts(v);
        self.check_addresses(v);
        let port_names = self.check_ports(v);
        check_max_items(v, "endpoints", self.endpoints.len(), MAX_ENDPOINTS);
        self.check_resolution(&port_names, v);
    }
}

impl Spec for ServiceEntry {
    fn validate_object(&self, meta: &ObjectMeta, v: &mut Validator) {
        v.at("spec", |v| {
            validate_export_to(&meta.namespace, &self.export_to, ExportKind::ServiceEntry, v);
            let opted_out = meta.labels.get(AUTOALLOCATE_LABEL).is_some_and(|l| l.eq_ignore_ascii_case("false"));
            let resolution = self.resolution();
            if self.addresses.is_empty() && (resolution == ServiceEntryResolution::None || opted_out) {
                let fix = if opted_out {
                    format!("set addresses, or remove the {AUTOALLOCATE_LABEL}: \"false\" label so that one is allocated")
                } else {
                    "set addresses, or use a resolution other than NONE so that one is allocated".to_owned()
                };
                v.each("ports", &self.ports, |v, port| {
                    if matches!(port.protocol, None | Some(Protocol::Tcp)) {
                        v.warn_coded(SERVICE_ENTRY_ADDRESSES_REQUIRED.id, format!(
                            "a TCP port (or one without a protocol) is matched by destination address, and this service has none: {fix}"
                        ));
                    }
                });
            }
            let waypoint = meta.labels.get(USE_WAYPOINT_LABEL).is_some_and(|w| !w.is_empty() && !w.eq_ignore_ascii_case("none"));
            if resolution == ServiceEntryResolution::DynamicDns
                && self.location() == ServiceEntryLocation::MeshInternal
                && waypoint
            {
                v.error_at(
                    "location",
                    "MESH_INTERNAL with resolution DYNAMIC_DNS is not supported behind a waypoint; use MESH_EXTERNAL",
                );
            }
        });
    }
}

#[cfg(test)]
mod tests;
