//! `WorkloadEntry` and `WorkloadGroup`: workloads outside Kubernetes (VMs, bare metal) as the
//! mesh sees them, one at a time or as a template plus a readiness probe.
//!
//! A `WorkloadEntry` is also the shape of a ServiceEntry's inline `endpoints`, so the address
//! and port rules both uses share live here (`EntryContext` says which use is being checked).

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::gateway::UNIX_ADDRESS_PREFIX;
use crate::resource::Spec;
use crate::types::names::{check_fqdn, is_dns1123_label};
use crate::types::{Labels, Port, validate_labels};
use crate::validate::{Validate, Validator};

/// Longest `address` the schema accepts.
const MAX_ADDRESS_LEN: usize = 256;
/// Longest `network` or `locality` the schema accepts.
const MAX_NETWORK_LEN: usize = 2048;
/// Longest `serviceAccount` the schema accepts.
const MAX_SERVICE_ACCOUNT_LEN: usize = 253;

/// One workload: where it is, which ports it serves on, and its identity.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadEntry {
    /// An IP address, a host name, or `unix:///path` / `unix://@abstract` for a local socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Port name (as the service names it) to the port the workload listens on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ports: BTreeMap<String, Port>,
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
}

/// A template for the WorkloadEntries of workloads that register themselves.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadGroup {
    /// Labels and annotations copied onto each generated WorkloadEntry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<WorkloadGroupMetadata>,
    /// The generated entries' fields; the address is filled in when a workload registers.
    pub template: WorkloadEntry,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<ReadinessProbe>,
}

/// Istio's `WorkloadGroup.ObjectMeta`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadGroupMetadata {
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// How the agent on a registered workload decides that it is ready. Exactly one of `httpGet`,
/// `tcpSocket` and `exec` is set.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadinessProbe {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_delay_seconds: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_seconds: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_threshold: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_threshold: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_get: Option<HttpHealthCheckConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_socket: Option<TcpHealthCheckConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecHealthCheckConfig>,
    /// In the schema, but no agent runs it: refused by validation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<GrpcHealthCheckConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpHealthCheckConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub port: Port,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// `HTTP` or `HTTPS` (empty means HTTP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http_headers: Vec<HttpHeader>,
}

/// A header the HTTP probe sends.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpHeader {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TcpHealthCheckConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub port: Port,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecHealthCheckConfig {
    pub command: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrpcHealthCheckConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<Port>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

/// The addresses an entry may have, by where it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AddressRule {
    /// A WorkloadEntry resource: an IP address, a host name or a unix socket.
    Any,
    /// An endpoint of a STATIC ServiceEntry: an IP address or a unix socket.
    IpOrSocket,
    /// An endpoint of a DNS ServiceEntry: an IP address or a host name to resolve.
    IpOrHostname,
}

/// Where a [`WorkloadEntry`] is being checked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EntryContext<'a> {
    pub(crate) addresses: AddressRule,
    /// The port names of the ServiceEntry this entry is an endpoint of.
    pub(crate) service_ports: Option<&'a [&'a str]>,
}

impl EntryContext<'static> {
    /// A WorkloadEntry resource on its own.
    pub(crate) const STANDALONE: Self = Self {
        addresses: AddressRule::Any,
        service_ports: None,
    };
}

impl WorkloadEntry {
    /// The address as written, empty when unset.
    pub fn address(&self) -> &str {
        self.address.as_deref().unwrap_or_default()
    }

    /// The socket path when the address is `unix://...`.
    pub fn unix_socket(&self) -> Option<&str> {
        self.address().strip_prefix(UNIX_ADDRESS_PREFIX)
    }

    /// Every rule for an entry used as `cx` says: a WorkloadEntry resource or an endpoint.
    pub(crate) fn check(&self, cx: EntryContext<'_>, v: &mut Validator) {
        let address = self.address();
        let network = self.network.as_deref().unwrap_or_default();
        if address.is_empty() {
            if cx.addresses == AddressRule::IpOrHostname {
                v.error_at("address", "an endpoint resolved by DNS needs an address");
            } else if network.is_empty() {
                v.error_at(
                    "address",
                    "an address is required (or a network, when the workload is reached through that network's gateway)",
                );
            } else {
                v.warn_at(
                    "address",
                    format!("no address is set: the workload is only reachable through the gateway of network {network:?}"),
                );
            }
        }
        if let Some(path) = self.unix_socket() {
            if cx.addresses == AddressRule::IpOrHostname {
                v.error_at(
                    "address",
                    "a unix domain socket cannot be resolved by DNS: use an IP address or host name, or resolution STATIC",
                );
            } else {
                if let Err(e) = check_socket_path(path) {
                    v.error_at("address", e);
                }
                if !self.ports.is_empty() {
                    v.error_at(
                        "ports",
                        "an entry on a unix domain socket cannot list ports",
                    );
                }
                if let Some(ports) = cx.service_ports.filter(|p| p.len() != 1) {
                    v.error_at(
                        "address",
                        format!(
                            "a unix domain socket endpoint needs the ServiceEntry to have exactly one port (it has {})",
                            ports.len()
                        ),
                    );
                }
            }
        } else if !address.is_empty() && address.parse::<IpAddr>().is_err() {
            if cx.addresses == AddressRule::IpOrSocket {
                v.error_at(
                    "address",
                    format!(
                        "{address:?} is not an IP address: endpoints of a STATIC ServiceEntry need IP addresses or unix:// sockets (use resolution DNS for host names)"
                    ),
                );
            } else if check_fqdn(address).is_err() {
                v.error_at(
                    "address",
                    format!("{address:?} is neither an IP address nor a valid host name"),
                );
            }
        }
        v.at("ports", |v| {
            for name in self.ports.keys() {
                v.at(name, |v| {
                    if !is_dns1123_label(name) || !is_port_name(name) {
                        v.error(format!(
                            "port name {name:?} is invalid: use at most 62 lowercase letters, digits and '-', starting and ending with a letter or digit"
                        ));
                    }
                    if let Some(ports) = cx.service_ports.filter(|p| !p.contains(&name.as_str())) {
                        v.error(format!(
                            "{name:?} is not a port of the ServiceEntry (its ports are {})",
                            quoted_list(ports)
                        ));
                    }
                });
            }
        });
        v.at("labels", |v| validate_labels(&self.labels, v));
        self.check_lengths(v);
    }

    /// The schema's rules for a WorkloadGroup's template: the address is filled in when a
    /// workload registers, so only its form is checked.
    fn check_template(&self, v: &mut Validator) {
        if let Some(path) = self.unix_socket() {
            if let Err(e) = check_socket_path(path) {
                v.error_at("address", e);
            }
            if !self.ports.is_empty() {
                v.error_at(
                    "ports",
                    "an entry on a unix domain socket cannot list ports",
                );
            }
        }
        v.at("ports", |v| {
            for name in self.ports.keys() {
                if !is_port_name(name) {
                    v.error_at(
                        name,
                        format!(
                            "port name {name:?} is invalid: use at most 62 letters, digits and '-', starting and ending with a letter or digit"
                        ),
                    );
                }
            }
        });
        self.check_lengths(v);
    }

    fn check_lengths(&self, v: &mut Validator) {
        for (key, value, max) in [
            ("address", &self.address, MAX_ADDRESS_LEN),
            ("network", &self.network, MAX_NETWORK_LEN),
            ("locality", &self.locality, MAX_NETWORK_LEN),
            (
                "serviceAccount",
                &self.service_account,
                MAX_SERVICE_ACCOUNT_LEN,
            ),
        ] {
            if let Some(value) = value.as_deref().filter(|s| s.len() > max) {
                v.error_at(
                    key,
                    format!(
                        "may be at most {max} characters long (it has {})",
                        value.len()
                    ),
                );
            }
        }
    }
}

/// A unix socket path: absolute, or `@name` for an abstract socket; never a directory.
fn check_socket_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        Err("the unix domain socket path is empty".into())
    } else if path.starts_with('@') {
        Ok(())
    } else if !path.starts_with('/') {
        Err(format!(
            "unix domain socket {path:?} must be an absolute path, or start with @ for an abstract socket"
        ))
    } else if path.ends_with('/') {
        Err(format!(
            "unix domain socket {path:?} names a directory; name the socket file"
        ))
    } else {
        Ok(())
    }
}

/// The schema's port-name rule: 1-62 letters, digits and '-', alphanumeric at both ends.
fn is_port_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !name.is_empty()
        && name.len() < 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

/// `"a", "b"` for messages.
pub(crate) fn quoted_list(items: &[&str]) -> String {
    if items.is_empty() {
        return "none".into();
    }
    items
        .iter()
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Spec for WorkloadEntry {}

impl Validate for WorkloadEntry {
    fn validate(&self, v: &mut Validator) {
        self.check(EntryContext::STANDALONE, v);
    }
}

impl Spec for WorkloadGroup {}

impl Validate for WorkloadGroup {
    fn validate(&self, v: &mut Validator) {
        if let Some(metadata) = &self.metadata {
            v.at("metadata", |v| {
                v.at("labels", |v| validate_labels(&metadata.labels, v))
            });
        }
        v.at("template", |v| self.template.check_template(v));
        v.nested("probe", &self.probe);
    }
}

impl Validate for ReadinessProbe {
    fn validate(&self, v: &mut Validator) {
        for (key, value) in [
            ("initialDelaySeconds", self.initial_delay_seconds),
            ("timeoutSeconds", self.timeout_seconds),
            ("periodSeconds", self.period_seconds),
            ("successThreshold", self.success_threshold),
            ("failureThreshold", self.failure_threshold),
        ] {
            if let Some(value) = value.filter(|n| *n < 0) {
                v.error_at(key, format!("must not be negative (got {value})"));
            }
        }
        let methods = [
            ("httpGet", self.http_get.is_some()),
            ("tcpSocket", self.tcp_socket.is_some()),
            ("exec", self.exec.is_some()),
            ("grpc", self.grpc.is_some()),
        ];
        if methods.iter().all(|(_, set)| !set) {
            v.error("a probe needs one of httpGet, tcpSocket or exec");
        }
        v.at_most_one(&methods);
        if self.grpc.is_some() {
            v.error_at(
                "grpc",
                "gRPC probes are not supported for workload groups; use httpGet, tcpSocket or exec",
            );
        }
        v.nested("httpGet", &self.http_get);
        if let Some(exec) = &self.exec {
            v.at("exec", |v| {
                if exec.command.is_empty() {
                    v.error_at("command", "the command to run is required");
                }
                v.each("command", &exec.command, |v, arg| {
                    if arg.is_empty() {
                        v.error("command arguments cannot be empty");
                    }
                });
            });
        }
    }
}

impl Validate for HttpHealthCheckConfig {
    fn validate(&self, v: &mut Validator) {
        if let Some(scheme) = self.scheme.as_deref()
            && !matches!(scheme, "" | "HTTP" | "HTTPS")
        {
            v.error_at(
                "scheme",
                format!("scheme must be HTTP or HTTPS (got {scheme:?})"),
            );
        }
        v.each("httpHeaders", &self.http_headers, |v, header| {
            let name = header.name.as_str();
            if name.is_empty() {
                v.error_at("name", "a probe header needs a name");
            } else if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                v.error_at(
                    "name",
                    format!("header name {name:?} may only contain letters, digits and '-'"),
                );
            }
        });
    }
}

#[cfg(test)]
mod tests;
