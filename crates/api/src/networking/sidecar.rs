//! `Sidecar`: narrows what a workload's proxy listens on and can reach — inbound listeners
//! (ports, TLS, default endpoints, connection limits), outbound listeners with the hosts each
//! may reach, and the policy for traffic to hosts outside the registry.

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Deserializer, Serialize};

use super::destination::{Destination, check_subset_name};
use super::destination_rule::ConnectionPoolSettings;
use super::gateway::{ServerTlsMode, ServerTlsSettings, UNIX_ADDRESS_PREFIX};
use super::service_entry::WorkloadLabelSelector;
use crate::meta::ObjectMeta;
use crate::resource::Spec;
use crate::types::Protocol;
use crate::types::names::{check_fqdn, check_namespaced_host, is_dns1123_label};
use crate::validate::{Validate, Validator};

/// Hosts a listener's `defaultEndpoint` may forward to.
const DEFAULT_ENDPOINT_HOSTS: [&str; 5] = ["", "127.0.0.1", "0.0.0.0", "::1", "::"];

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sidecar {
    /// The workloads (in the Sidecar's namespace) this configuration applies to; absent means all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<WorkloadLabelSelector>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<IstioIngressListener>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<IstioEgressListener>,
    /// Connection limits for every inbound port without its own `connectionPool`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbound_connection_pool: Option<ConnectionPoolSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_traffic_policy: Option<OutboundTrafficPolicy>,
}

/// A port the workload receives traffic on, and how it is delivered to the application.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IstioIngressListener {
    pub port: SidecarPort,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_mode: Option<CaptureMode>,
    /// Where traffic goes: `127.0.0.1:PORT`, `0.0.0.0:PORT`, `[::1]:PORT` or `unix:///path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServerTlsSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<ConnectionPoolSettings>,
}

/// Outbound traffic the workload may send: on a port (or all of them), to the listed hosts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IstioEgressListener {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<SidecarPort>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_mode: Option<CaptureMode>,
    /// `namespace/dnsName` entries: `./*`, `istio-system/*`, `*/foo.example.com`, `~/*`.
    pub hosts: Vec<String>,
}

/// A listener's port. Number 0 means a Unix domain socket (egress only).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SidecarPort {
    #[serde(default)]
    pub number: u32,
    /// Absent (or empty) means the protocol is detected from the traffic.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "protocol_or_detect"
    )]
    pub protocol: Option<Protocol>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Deprecated, and without effect on sidecars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<u32>,
}

/// An empty protocol name asks for detection, like an absent one.
fn protocol_or_detect<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Protocol>, D::Error> {
    let name = Option::<String>::deserialize(deserializer)?.unwrap_or_default();
    if name.is_empty() {
        return Ok(None);
    }
    Protocol::deserialize(serde::de::value::StringDeserializer::new(name)).map(Some)
}

/// How traffic reaches a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CaptureMode {
    Default,
    Iptables,
    None,
}

/// What happens to traffic for hosts the registry does not know.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboundTrafficPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<OutboundTrafficPolicyMode>,
    /// A proxy that unknown traffic is sent to (only with `ALLOW_ANY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_proxy: Option<Destination>,
}

/// Istio's `OutboundTrafficPolicy.Mode`; absent means `REGISTRY_ONLY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OutboundTrafficPolicyMode {
    RegistryOnly,
    AllowAny,
}

impl Spec for Sidecar {
    fn validate_object(&self, meta: &ObjectMeta, v: &mut Validator) {
        v.at("spec", |v| {
            warn_duplicate_egress_hosts(&meta.namespace, &self.egress, v)
        });
    }
}

impl Validate for Sidecar {
    fn validate(&self, v: &mut Validator) {
        v.nested("workloadSelector", &self.workload_selector);
        if self.ingress.is_empty()
            && self.egress.is_empty()
            && self.outbound_traffic_policy.is_none()
            && self.inbound_connection_pool.is_none()
        {
            v.error("a Sidecar must set at least one of ingress, egress, outboundTrafficPolicy or inboundConnectionPool");
        }
        let mut ports = HashSet::new();
        v.each("ingress", &self.ingress, |v, listener| {
            listener.validate(v);
            if !ports.insert(listener.port.number) {
                v.error_at(
                    "port",
                    format!(
                        "port {} is used by an earlier ingress listener",
                        listener.port.number
                    ),
                );
            }
        });
        v.nested("inboundConnectionPool", &self.inbound_connection_pool);
        self.validate_egress(v);
        v.nested("outboundTrafficPolicy", &self.outbound_traffic_policy);
    }
}

impl Sidecar {
    fn validate_egress(&self, v: &mut Validator) {
        let mut catch_all_seen = false;
        let mut ports = HashSet::new();
        let mut sockets = HashSet::new();
        v.at("egress", |v| {
            for (index, listener) in self.egress.iter().enumerate() {
                v.at_index(index, |v| {
                    listener.validate(v);
                    let Some(port) = &listener.port else {
                        if catch_all_seen {
                            v.error("only one egress listener may leave out the port");
                        } else if index + 1 != self.egress.len() {
                            v.error("the egress listener without a port catches all other traffic; it must be the last listener");
                        }
                        catch_all_seen = true;
                        return;
                    };
                    let bind = listener.bind.as_deref().unwrap_or_default();
                    let (fresh, what) = if port.number == 0 {
                        (sockets.insert(bind), format!("unix domain socket {bind:?}"))
                    } else {
                        (ports.insert(port.number), format!("port {}", port.number))
                    };
                    if !fresh {
                        v.error_at("port", format!("{what} is used by an earlier egress listener"));
                    }
                });
            }
        });
    }
}

impl SidecarPort {
    fn check_common(&self, v: &mut Validator) {
        if !self.name.is_empty() && !is_dns1123_label(&self.name) {
            v.error_at(
                "name",
                format!(
                    "port name {:?} must be a DNS label (lowercase letters, digits, '-')",
                    self.name
                ),
            );
        }
        if self.target_port.is_some_and(|p| p > 0) {
            v.error_at(
                "targetPort",
                "targetPort has no effect on sidecars; remove it",
            );
        }
    }

    fn check_number(&self, v: &mut Validator) {
        if !(1..=65535).contains(&self.number) {
            v.error_at(
                "number",
                format!("port must be between 1 and 65535 (got {})", self.number),
            );
        }
    }
}

fn check_ip_bind(bind: Option<&str>, v: &mut Validator) {
    if let Some(bind) = bind.filter(|b| !b.is_empty())
        && bind.parse::<std::net::IpAddr>().is_err()
    {
        v.error_at("bind", format!("{bind:?} is not an IP address"));
    }
}

/// A Unix domain socket path: absolute (not a directory), or abstract (`@name`).
fn check_unix_address(path: &str) -> Result<(), String> {
    if path.is_empty() {
        Err("the unix domain socket path is empty".into())
    } else if path.starts_with('@') || (path.starts_with('/') && !path.ends_with('/')) {
        Ok(())
    } else {
        Err(format!(
            "{path:?} is not an absolute path to a socket file (or an abstract @name)"
        ))
    }
}

impl Validate for IstioIngressListener {
    fn validate(&self, v: &mut Validator) {
        v.at("port", |v| {
            self.port.check_common(v);
            self.port.check_number(v);
        });
        check_ip_bind(self.bind.as_deref(), v);
        if let Some(endpoint) = self.default_endpoint.as_deref().filter(|e| !e.is_empty())
            && let Err(e) = check_default_endpoint(endpoint)
        {
            v.error_at("defaultEndpoint", e);
        }
        if let Some(tls) = &self.tls {
            v.at("tls", |v| check_ingress_tls(tls, v));
            if !self.port.protocol.is_some_and(Protocol::is_tls) {
                v.error_at(
                    "tls",
                    "TLS settings need the port's protocol to be HTTPS or TLS",
                );
            }
        }
        v.nested("connectionPool", &self.connection_pool);
        let pool_has_http = self
            .connection_pool
            .as_ref()
            .is_some_and(|p| p.http.is_some());
        if let Some(protocol) = self.port.protocol.filter(|p| pool_has_http && !p.is_http()) {
            v.warn_at(
                "connectionPool",
                format!(
                    "http settings have no effect on a {protocol} port; only the tcp settings apply"
                ),
            );
        }
    }
}

/// `defaultEndpoint`: a loopback or any-address `host:port`, or `unix://path`.
fn check_default_endpoint(endpoint: &str) -> Result<(), String> {
    if let Some(path) = endpoint.strip_prefix(UNIX_ADDRESS_PREFIX) {
        return check_unix_address(path);
    }
    let form = "use 127.0.0.1:PORT, 0.0.0.0:PORT, [::1]:PORT, [::]:PORT or unix:///path";
    let (host, port) = match endpoint.strip_prefix('[') {
        Some(rest) => rest
            .split_once("]:")
            .ok_or_else(|| format!("{endpoint:?} is not host:port; {form}"))?,
        None => match endpoint.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => (host, port),
            _ => return Err(format!("{endpoint:?} is not host:port; {form}")),
        },
    };
    if !DEFAULT_ENDPOINT_HOSTS.contains(&host) {
        return Err(format!(
            "{host:?} cannot be a default endpoint host; {form}"
        ));
    }
    match port.parse::<u32>() {
        Ok(n) if (1..=65535).contains(&n) => Ok(()),
        Ok(n) => Err(format!("port must be between 1 and 65535 (got {n})")),
        Err(_) => Err(format!("port {port:?} is not a number")),
    }
}

/// Sidecar ingress TLS: certificates come from files in the proxy, never from credentials.
fn check_ingress_tls(tls: &ServerTlsSettings, v: &mut Validator) {
    let unsupported = [
        ("subjectAltNames", !tls.subject_alt_names.is_empty()),
        ("httpsRedirect", tls.https_redirect == Some(true)),
        ("credentialName", !tls.credential_name.is_empty()),
        ("credentialNames", !tls.credential_names.is_empty()),
        ("tlsCertificates", !tls.tls_certificates.is_empty()),
    ];
    for (field, _) in unsupported.iter().filter(|(_, set)| *set) {
        v.error_at(field, "is not supported on sidecar ingress listeners; use serverCertificate and privateKey files");
    }
    match tls.mode {
        Some(ServerTlsMode::IstioMutual) => v.error_at(
            "mode",
            "ISTIO_MUTUAL cannot be used on a sidecar ingress listener",
        ),
        Some(ServerTlsMode::AutoPassthrough) => v.error_at(
            "mode",
            "AUTO_PASSTHROUGH cannot be used on a sidecar ingress listener",
        ),
        _ => {}
    }
    tls.validate(v);
}

impl Validate for IstioEgressListener {
    fn validate(&self, v: &mut Validator) {
        let bind = self.bind.as_deref().unwrap_or_default();
        if let Some(port) = &self.port {
            v.at("port", |v| port.check_common(v));
            if port.number == 0 {
                match bind.strip_prefix(UNIX_ADDRESS_PREFIX) {
                    None => v.error_at("bind", "port 0 means a unix domain socket: bind must be unix:///path or unix://@name"),
                    Some(path) => {
                        if let Err(e) = check_unix_address(path) {
                            v.error_at("bind", e);
                        }
                    }
                }
                if self.capture_mode == Some(CaptureMode::Iptables) {
                    v.error_at("captureMode", "a unix domain socket listener cannot use IPTABLES capture; use DEFAULT or NONE");
                }
            } else {
                v.at("port", |v| port.check_number(v));
                check_ip_bind(self.bind.as_deref(), v);
            }
        }
        if self.hosts.is_empty() {
            v.error_at("hosts", "an egress listener must list at least one host");
        }
        v.each("hosts", &self.hosts, |v, host| {
            for problem in check_namespaced_host(host, false) {
                v.error(problem);
            }
        });
    }
}

/// Warns about egress hosts another entry of the same listener already covers.
fn warn_duplicate_egress_hosts(namespace: &str, egress: &[IstioEgressListener], v: &mut Validator) {
    v.each("egress", egress, |v, listener| {
        // namespace -> hosts listed for it in this listener
        let mut listed: BTreeMap<&str, HashSet<&str>> = BTreeMap::new();
        v.each("hosts", &listener.hosts, |v, host| {
            let Some((ns, name)) = host.split_once('/') else {
                return;
            };
            if ns.starts_with('~') {
                return;
            }
            let ns = if ns == "." { namespace } else { ns };
            let names = listed.entry(ns).or_default();
            let covered = if name == "*" {
                !names.is_empty()
            } else {
                names.contains(name) || names.contains("*")
            };
            if covered {
                v.warn(format!(
                    "{host:?} is already covered by another host of this listener"
                ));
            }
            names.insert(name);
        });
        if listed.get("*").is_some_and(|names| names.contains("*")) && listed.len() > 1 {
            v.warn_at(
                "hosts",
                "\"*/*\" already selects every host; the other entries are redundant",
            );
        }
    });
}

impl Validate for OutboundTrafficPolicy {
    fn validate(&self, v: &mut Validator) {
        let Some(proxy) = &self.egress_proxy else {
            return;
        };
        v.at("egressProxy", |v| {
            if self.mode != Some(OutboundTrafficPolicyMode::AllowAny) {
                v.error("egressProxy is only used with mode: ALLOW_ANY");
            }
            if let Err(e) = check_fqdn(&proxy.host) {
                v.error_at("host", e);
            }
            if proxy.port.is_none() {
                v.error_at("port", "the egress proxy's port is required");
            }
            if let Some(Err(e)) = proxy.subset.as_deref().map(check_subset_name) {
                v.error_at("subset", e);
            }
        });
    }
}
