//! The Kubernetes kinds the mesh reads: `Service` and `Pod` and `Namespace` (core/v1), and
//! `Deployment` (apps/v1).
//!
//! Services name the ports and selectors the mesh routes to; pods and deployments say which
//! workloads run with which labels, ports and service accounts. Only the fields the mesh uses
//! are typed. Every other field Kubernetes accepts is declared too and kept as written
//! ([`Opaque`](crate::types::Opaque)), so an unknown (misspelt) field is still an error and
//! nothing is dropped on a round trip.
//!
//! The rules checked are the API server's rules that the mesh depends on: valid port numbers
//! and names, selectors that match, containers that can be addressed.

mod deployment;
mod namespace;
mod pod;
mod service;

use serde::{Deserialize, Serialize};

pub use deployment::{DeploymentSpec, PodTemplateSpec};
pub use namespace::NamespaceSpec;
pub use pod::{Container, ContainerPort, EnvVar, PodSecurityContext, PodSpec, SecurityContext};
pub use service::{
    HEADLESS, IpFamily, IpFamilyPolicy, ServicePort, ServiceSpec, ServiceType, TargetPort,
};

/// The transport protocol of a Kubernetes port (`protocol:`); `TCP` when not written.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TransportProtocol {
    #[default]
    Tcp,
    Udp,
    Sctp,
}

impl TransportProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "TCP",
            Self::Udp => "UDP",
            Self::Sctp => "SCTP",
        }
    }
}

impl std::fmt::Display for TransportProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Checks a named port (a container port's `name`, a service's `targetPort` by name) the way
/// Kubernetes does: an IANA service name of 1-15 lowercase letters, digits and '-', with at least
/// one letter and no leading, trailing or doubled '-'.
pub(crate) fn check_port_name(name: &str) -> Result<(), String> {
    let problem = if name.is_empty() {
        "it is empty"
    } else if name.len() > 15 {
        "it is longer than 15 characters"
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        "only lowercase letters, digits and '-' are allowed"
    } else if !name.bytes().any(|b| b.is_ascii_lowercase()) {
        if name.bytes().all(|b| b.is_ascii_digit()) {
            "it has no letter (for a port number, write it without quotes)"
        } else {
            "it needs at least one letter"
        }
    } else if name.starts_with('-') || name.ends_with('-') {
        "it cannot start or end with '-'"
    } else if name.contains("--") {
        "it cannot contain \"--\""
    } else {
        return Ok(());
    };
    Err(format!(
        "{name:?} is not a valid port name: {problem}; use 1-15 lowercase letters, digits and '-', with at least one letter"
    ))
}

#[cfg(test)]
mod tests;
