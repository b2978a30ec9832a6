//! `Service` (core/v1): the ports a set of pods is reached on, and the labels that select them.

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{TransportProtocol, check_port_name};
use crate::resource::Spec;
use crate::types::names::{check_label_key, is_dns1123_label, is_dns1123_subdomain};
use crate::types::{Labels, Opaque, Port, Protocol, validate_labels};
use crate::validate::{Validate, Validator};

/// The `clusterIP` of a headless service: no virtual IP, DNS answers with the pods' addresses.
pub const HEADLESS: &str = "None";

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ServicePort>,
    /// Labels of the pods behind the service; none means the endpoints are managed by hand.
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub selector: Labels,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<ServiceType>,
    #[serde(rename = "clusterIP", default, skip_serializing_if = "Option::is_none")]
    pub cluster_ip: Option<String>,
    #[serde(rename = "clusterIPs", default, skip_serializing_if = "Vec::is_empty")]
    pub cluster_ips: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_families: Vec<IpFamily>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_family_policy: Option<IpFamilyPolicy>,

    // Fields the mesh does not read, kept as written.
    #[serde(
        rename = "externalIPs",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub external_ips: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity_config: Option<Opaque>,
    #[serde(
        rename = "loadBalancerIP",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub load_balancer_ip: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_source_ranges: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_class: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocate_load_balancer_node_ports: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_traffic_policy: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_traffic_policy: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_node_port: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_not_ready_addresses: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_distribution: Option<Opaque>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    /// Required (a DNS label) when the service has more than one port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<TransportProtocol>,
    /// The application protocol (`http`, `kubernetes.io/h2c`, ...), which the mesh prefers
    /// over the port name's prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
    pub port: Port,
    /// The pods' port: a number, or the name of a container port. Defaults to `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<TargetPort>,
    /// The port on every node (NodePort and LoadBalancer services); 0 lets Kubernetes choose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_port: Option<u32>,
}

/// Kubernetes' int-or-string `targetPort`: a port number, or the name of a container port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TargetPort {
    Number(Port),
    Name(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum ServiceType {
    #[default]
    ClusterIP,
    NodePort,
    LoadBalancer,
    ExternalName,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum IpFamily {
    #[serde(rename = "IPv4")]
    V4,
    #[serde(rename = "IPv6")]
    V6,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum IpFamilyPolicy {
    SingleStack,
    PreferDualStack,
    RequireDualStack,
}

impl ServiceSpec {
    /// The service's type, `ClusterIP` when not written.
    pub fn service_type(&self) -> ServiceType {
        self.type_.unwrap_or_default()
    }

    /// Whether the service has no cluster IP (`clusterIP: None`).
    pub fn is_headless(&self) -> bool {
        self.cluster_ip.as_deref() == Some(HEADLESS)
            || self.cluster_ips.first().map(String::as_str) == Some(HEADLESS)
    }

    /// The port named `name`, if any.
    pub fn port_named(&self, name: &str) -> Option<&ServicePort> {
        self.ports.iter().find(|p| p.name.as_deref() == Some(name))
    }
}

impl ServicePort {
    /// The port's protocol, `TCP` when not written.
    pub fn protocol(&self) -> TransportProtocol {
        self.protocol.unwrap_or_default()
    }

    /// The application protocol the port declares: UDP for UDP ports; else `appProtocol`
    /// (with Kubernetes' `kubernetes.io/h2c`, `ws` and `wss`), else the name's prefix
    /// (`http-web` is HTTP, `grpc-web*` is gRPC-Web). `None` when neither names a protocol
    /// the mesh knows.
    pub fn declared_protocol(&self) -> Option<Protocol> {
        if self.protocol() == TransportProtocol::Udp {
            return Some(Protocol::Udp);
        }
        let name = match self.app_protocol.as_deref() {
            Some("kubernetes.io/h2c") => return Some(Protocol::Http2),
            Some("kubernetes.io/ws") => return Some(Protocol::Http),
            Some("kubernetes.io/wss") => return Some(Protocol::Https),
            Some(app_protocol) => app_protocol,
            None => self.name.as_deref().unwrap_or_default(),
        };
        if name
            .get(..8)
            .is_some_and(|p| p.eq_ignore_ascii_case("grpc-web"))
        {
            return Some(Protocol::GrpcWeb);
        }
        Protocol::parse(name.split('-').next().unwrap_or(name))
    }

    /// The pods' port: `targetPort`, or `port` when that is not written.
    pub fn target(&self) -> TargetPort {
        self.target_port
            .clone()
            .unwrap_or(TargetPort::Number(self.port))
    }
}

impl fmt::Display for TargetPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(port) => port.fmt(f),
            Self::Name(name) => f.write_str(name),
        }
    }
}

impl Serialize for TargetPort {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Number(port) => port.serialize(serializer),
            Self::Name(name) => serializer.serialize_str(name),
        }
    }
}

impl<'de> Deserialize<'de> for TargetPort {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl serde::de::Visitor<'_> for Visitor {
            type Value = TargetPort;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port number or a port name")
            }

            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<TargetPort, E> {
                Port::new(n).map(TargetPort::Number).map_err(E::custom)
            }

            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<TargetPort, E> {
                let port = u64::try_from(n).map_err(|_| {
                    E::custom(format!("port must be between 1 and 65535 (got {n})"))
                })?;
                self.visit_u64(port)
            }

            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<TargetPort, E> {
                Ok(TargetPort::Name(name.to_owned()))
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}

impl Spec for ServiceSpec {}

impl Validate for ServiceSpec {
    fn validate(&self, v: &mut Validator) {
        let kind = self.service_type();
        if kind == ServiceType::ExternalName {
            self.check_external_name(v);
        } else if self.external_name.as_deref().is_some_and(|n| !n.is_empty()) {
            v.warn_at("externalName", "has no effect unless type is ExternalName");
        }
        if self.ports.is_empty() && kind != ServiceType::ExternalName && !self.is_headless() {
            v.error_at(
                "ports",
                "a service needs at least one port (only ExternalName and headless services may have none)",
            );
        }
        self.check_ports(kind, v);
        v.at("selector", |v| validate_labels(&self.selector, v));
        self.check_cluster_ips(v);
        self.check_ip_families(v);
    }
}

impl ServiceSpec {
    fn check_external_name(&self, v: &mut Validator) {
        match self.external_name.as_deref().unwrap_or_default() {
            "" => v.error_at(
                "externalName",
                "an ExternalName service needs externalName: the DNS name it stands for",
            ),
            name => {
                let bare = name.strip_suffix('.').unwrap_or(name);
                if !is_dns1123_subdomain(bare) {
                    v.error_at(
                        "externalName",
                        format!("{name:?} is not a valid DNS name: use lowercase letters, digits, '-' and '.'"),
                    );
                }
            }
        }
        if self.cluster_ip.as_deref().is_some_and(|ip| !ip.is_empty()) {
            v.error_at(
                "clusterIP",
                "an ExternalName service has no cluster IP; remove clusterIP",
            );
        }
    }

    fn check_ports(&self, kind: ServiceType, v: &mut Validator) {
        let many = self.ports.len() > 1;
        let mut names = HashSet::new();
        let mut numbers = HashSet::new();
        v.each("ports", &self.ports, |v, port| {
            match port.name.as_deref().unwrap_or_default() {
                "" if many => v.error_at("name", "is required when a service has more than one port"),
                "" => {}
                name => {
                    if !is_dns1123_label(name) {
                        v.error_at(
                            "name",
                            format!(
                                "{name:?} is not a valid port name: use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit"
                            ),
                        );
                    }
                    if !names.insert(name) {
                        v.error_at("name", format!("port name {name:?} is used twice; port names must be unique"));
                    }
                }
            }
            if !numbers.insert((port.port, port.protocol())) {
                v.error(format!("port {}/{} is listed twice", port.port, port.protocol()));
            }
            if let Some(TargetPort::Name(name)) = &port.target_port
                && let Err(e) = check_port_name(name)
            {
                v.error_at("targetPort", e);
            }
            if let Some(app_protocol) = port.app_protocol.as_deref()
                && let Err(e) = check_label_key(app_protocol)
            {
                v.error_at("appProtocol", e.replace("label key", "appProtocol"));
            }
            match port.node_port {
                Some(n) if n > 65535 => {
                    v.error_at("nodePort", format!("port must be between 1 and 65535 (got {n})"));
                }
                Some(n) if n > 0 && kind == ServiceType::ClusterIP => {
                    v.error_at("nodePort", "can only be set when type is NodePort or LoadBalancer");
                }
                _ => {}
            }
        });
    }

    fn check_cluster_ips(&self, v: &mut Validator) {
        let check = |v: &mut Validator, ip: &str| {
            if ip != HEADLESS && ip.parse::<IpAddr>().is_err() {
                v.error(format!("{ip:?} is not an IP address; use an IP address or \"None\" for a headless service"));
            }
        };
        if let Some(ip) = self.cluster_ip.as_deref().filter(|ip| !ip.is_empty()) {
            v.at("clusterIP", |v| check(v, ip));
        }
        v.each("clusterIPs", &self.cluster_ips, |v, ip| check(v, ip));
        if self.cluster_ips.len() > 2 {
            v.error_at(
                "clusterIPs",
                "at most two addresses may be listed (one IPv4, one IPv6)",
            );
        } else if self.cluster_ips.len() == 2 && self.cluster_ips.iter().any(|ip| ip == HEADLESS) {
            v.error_at(
                "clusterIPs",
                "\"None\" must be the only entry of a headless service",
            );
        }
        if let (Some(ip), Some(first)) = (self.cluster_ip.as_deref(), self.cluster_ips.first())
            && !ip.is_empty()
            && ip != first
        {
            v.error_at(
                "clusterIPs",
                format!("the first entry must be the same as clusterIP ({ip:?}, got {first:?})"),
            );
        }
    }

    fn check_ip_families(&self, v: &mut Validator) {
        if self.ip_families.len() > 2 {
            v.error_at(
                "ipFamilies",
                "at most two families may be listed (IPv4 and IPv6)",
            );
        } else if self.ip_families.len() == 2 && self.ip_families[0] == self.ip_families[1] {
            v.error_at("ipFamilies", "a family may be listed only once");
        } else if self.ip_families.len() == 2
            && self.ip_family_policy == Some(IpFamilyPolicy::SingleStack)
        {
            v.error_at(
                "ipFamilyPolicy",
                "SingleStack cannot have two ipFamilies; use PreferDualStack or RequireDualStack",
            );
        }
    }
}
