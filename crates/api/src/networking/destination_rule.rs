//! `DestinationRule`: what happens to traffic after routing has picked a service — subsets of
//! its endpoints, and the traffic policy (load balancing, connection pools, outlier detection,
//! client TLS, tunnelling) applied to them, for the whole service or per port.
//!
//! The load-balancer and connection-pool messages live in submodules (the connection pool is
//! also used by `Sidecar`); this file owns the rule itself, subsets, traffic policies, outlier
//! detection and client TLS.

mod connection_pool;
mod load_balancer;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::time::Duration as StdDuration;

use serde::{Deserialize, Serialize};

pub use connection_pool::*;
pub use load_balancer::*;

use super::destination::{ExportKind, PortSelector, check_subset_name, validate_export_to};
use crate::meta::ObjectMeta;
use crate::resource::Spec;
use crate::types::names::{check_fqdn, check_wildcard_domain};
use crate::types::{Duration, Labels, Percentage, WorkloadSelector, validate_labels};
use crate::validate::{Validate, Validator};

/// The most `portLevelSettings` one traffic policy may list.
pub const MAX_PORT_LEVEL_SETTINGS: usize = 4096;

/// The prefix of a `credentialName` that names a Kubernetes ConfigMap holding a CA bundle.
pub const CONFIGMAP_CREDENTIAL_PREFIX: &str = "configmap://";

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationRule {
    /// The service the rule applies to: a registry name, possibly with a leading wildcard.
    pub host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_policy: Option<TrafficPolicy>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subsets: Vec<Subset>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub export_to: Vec<String>,
    /// When set, the rule applies only to these client workloads (in its own namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<WorkloadSelector>,
}

/// A named group of a service's endpoints, picked by labels.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subset {
    pub name: String,
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
    /// Overrides the rule's traffic policy for this subset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_policy: Option<TrafficPolicy>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<ConnectionPoolSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClientTlsSettings>,
    /// Per-port overrides; the first entry for a port wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_level_settings: Vec<PortTrafficPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<TunnelSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<ProxyProtocol>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_budget: Option<RetryBudget>,
}

/// Istio's `TrafficPolicy.PortTrafficPolicy`: settings for one port of the service.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortTrafficPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<ConnectionPoolSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClientTlsSettings>,
}

/// Istio's `TrafficPolicy.TunnelSettings`: tunnel TCP to the service through an HTTP proxy.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TunnelSettings {
    /// `CONNECT` (the default) or `POST`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    pub target_host: String,
    pub target_port: u32,
}

/// Istio's `TrafficPolicy.ProxyProtocol`: send a PROXY protocol header upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyProtocol {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<ProxyProtocolVersion>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProxyProtocolVersion {
    V1,
    V2,
}

/// Istio's `TrafficPolicy.RetryBudget`: concurrent retries allowed, relative to active requests.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryBudget {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<Percentage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_retry_concurrency: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_interval: Option<Duration>,
}

/// Ejecting endpoints that keep failing from the load-balancing pool.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutlierDetection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_external_local_origin_errors: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_local_origin_failures: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_gateway_errors: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_5xx_errors: Option<u32>,
    /// Deprecated: use `consecutiveGatewayErrors` or `consecutive5xxErrors`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_errors: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_ejection_time: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ejection_percent: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_health_percent: Option<i32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outlier_detection_http_error_codes: Vec<u32>,
}

/// Istio's `ClientTLSSettings`: TLS the sidecar originates towards the service.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientTlsSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ClientTlsMode>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub client_certificate: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub private_key: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ca_certificates: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub credential_name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sni: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ca_crl: String,
}

/// Istio's `ClientTLSSettings.TLSmode`; absent means `DISABLE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClientTlsMode {
    Disable,
    Simple,
    Mutual,
    IstioMutual,
}

impl ClientTlsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "DISABLE",
            Self::Simple => "SIMPLE",
            Self::Mutual => "MUTUAL",
            Self::IstioMutual => "ISTIO_MUTUAL",
        }
    }
}

/// Durations the proxy is configured with: at least 1ms, in whole milliseconds.
fn check_proxy_duration(v: &mut Validator, key: &str, value: Option<&Duration>) {
    let Some(value) = value else { return };
    let std = value.as_std();
    if std < StdDuration::from_millis(1) {
        v.min_duration(key, Some(std), StdDuration::from_millis(1));
    } else if std.subsec_nanos() % 1_000_000 != 0 {
        v.error_at(
            key,
            format!("must be a whole number of milliseconds (got {value})"),
        );
    }
}

impl Spec for DestinationRule {
    fn validate_object(&self, meta: &ObjectMeta, v: &mut Validator) {
        v.at("spec", |v| {
            let kind = ExportKind::DestinationRule {
                with_selector: self.workload_selector.is_some(),
            };
            validate_export_to(&meta.namespace, &self.export_to, kind, v);
            if let Some(policy) = &self.traffic_policy {
                v.at("trafficPolicy", |v| {
                    policy.check_credential_namespace(&meta.namespace, v)
                });
            }
            v.each("subsets", &self.subsets, |v, subset| {
                if let Some(policy) = &subset.traffic_policy {
                    v.at("trafficPolicy", |v| {
                        policy.check_credential_namespace(&meta.namespace, v)
                    });
                }
            });
        });
    }
}

impl Validate for DestinationRule {
    fn validate(&self, v: &mut Validator) {
        if let Err(e) = check_wildcard_domain(&self.host) {
            v.error_at("host", e);
        }
        v.nested("trafficPolicy", &self.traffic_policy);
        let mut names = HashSet::new();
        v.each("subsets", &self.subsets, |v, subset| {
            if !subset.name.is_empty() && !names.insert(subset.name.as_str()) {
                v.error_at(
                    "name",
                    format!(
                        "subset name {:?} is used twice; subset names must be unique",
                        subset.name
                    ),
                );
            }
            subset.validate(v);
        });
        if let Some(selector) = &self.workload_selector {
            v.nested("workloadSelector", selector);
            if selector.match_labels.is_empty() {
                v.warn_at(
                    "workloadSelector",
                    "no matchLabels given: the rule applies to every workload in the namespace",
                );
            }
        }
    }
}

impl Validate for Subset {
    fn validate(&self, v: &mut Validator) {
        if let Err(e) = check_subset_name(&self.name) {
            v.error_at("name", e);
        }
        v.at("labels", |v| validate_labels(&self.labels, v));
        v.nested("trafficPolicy", &self.traffic_policy);
    }
}

impl TrafficPolicy {
    fn is_empty(&self) -> bool {
        self.load_balancer.is_none()
            && self.connection_pool.is_none()
            && self.outlier_detection.is_none()
            && self.tls.is_none()
            && self.port_level_settings.is_empty()
            && self.tunnel.is_none()
            && self.proxy_protocol.is_none()
            && self.retry_budget.is_none()
    }

    /// `configmap://` credentials must live in the rule's own namespace.
    fn check_credential_namespace(&self, namespace: &str, v: &mut Validator) {
        if let Some(tls) = &self.tls {
            v.at("tls", |v| tls.check_credential_namespace(namespace, v));
        }
        v.each("portLevelSettings", &self.port_level_settings, |v, port| {
            if let Some(tls) = &port.tls {
                v.at("tls", |v| tls.check_credential_namespace(namespace, v));
            }
        });
    }
}

/// The settings a traffic policy and its port-level overrides have in common.
fn validate_policy_settings(
    v: &mut Validator,
    load_balancer: &Option<LoadBalancerSettings>,
    connection_pool: &Option<ConnectionPoolSettings>,
    outlier_detection: &Option<OutlierDetection>,
    tls: &Option<ClientTlsSettings>,
) {
    v.nested("outlierDetection", outlier_detection);
    v.nested("connectionPool", connection_pool);
    if let Some(load_balancer) = load_balancer {
        v.at("loadBalancer", |v| {
            load_balancer.check(outlier_detection.is_some(), v)
        });
    }
    v.nested("tls", tls);
}

impl Validate for TrafficPolicy {
    fn validate(&self, v: &mut Validator) {
        if self.is_empty() {
            v.error("a traffic policy must set at least one field; remove it if it is not needed");
            return;
        }
        if self.tunnel.is_some() && self.proxy_protocol.is_some() {
            v.error("tunnel and proxyProtocol cannot be set together");
        }
        validate_policy_settings(
            v,
            &self.load_balancer,
            &self.connection_pool,
            &self.outlier_detection,
            &self.tls,
        );
        if self.port_level_settings.len() > MAX_PORT_LEVEL_SETTINGS {
            v.error_at(
                "portLevelSettings",
                format!("at most {MAX_PORT_LEVEL_SETTINGS} port-level settings are allowed"),
            );
        }
        let mut ports = HashSet::new();
        v.each("portLevelSettings", &self.port_level_settings, |v, setting| {
            setting.validate(v);
            if let Some(port) = setting.port
                && !ports.insert(port.number)
            {
                let number = port.number;
                v.warn_at(
                    "port",
                    format!("port {number} is already configured by an earlier entry; this one is ignored"),
                );
            }
        });
        v.nested("tunnel", &self.tunnel);
    }
}

impl Validate for PortTrafficPolicy {
    fn validate(&self, v: &mut Validator) {
        if self.port.is_none() {
            v.error_at("port", "a port-level setting must name its port");
        }
        if self.load_balancer.is_none()
            && self.connection_pool.is_none()
            && self.outlier_detection.is_none()
            && self.tls.is_none()
        {
            v.error("a port-level setting must set at least one of loadBalancer, connectionPool, outlierDetection or tls");
            return;
        }
        validate_policy_settings(
            v,
            &self.load_balancer,
            &self.connection_pool,
            &self.outlier_detection,
            &self.tls,
        );
    }
}

impl Validate for TunnelSettings {
    fn validate(&self, v: &mut Validator) {
        if let Some(protocol) = self.protocol.as_deref()
            && !matches!(protocol, "" | "CONNECT" | "POST")
        {
            v.error_at(
                "protocol",
                format!("unknown tunnel protocol {protocol:?}: use CONNECT or POST"),
            );
        }
        if check_fqdn(&self.target_host).is_err()
            && self.target_host.parse::<std::net::IpAddr>().is_err()
        {
            v.error_at(
                "targetHost",
                format!(
                    "{:?} is neither a valid DNS name nor an IP address",
                    self.target_host
                ),
            );
        }
        if !(1..=65535).contains(&self.target_port) {
            v.error_at(
                "targetPort",
                format!(
                    "port must be between 1 and 65535 (got {})",
                    self.target_port
                ),
            );
        }
    }
}

impl Validate for OutlierDetection {
    fn validate(&self, v: &mut Validator) {
        check_proxy_duration(v, "baseEjectionTime", self.base_ejection_time.as_ref());
        check_proxy_duration(v, "interval", self.interval.as_ref());
        if self.consecutive_errors.is_some_and(|n| n != 0) {
            v.warn_at("consecutiveErrors", "consecutiveErrors is deprecated: use consecutiveGatewayErrors or consecutive5xxErrors");
        }
        if self
            .consecutive_local_origin_failures
            .is_some_and(|n| n > 0)
            && self.split_external_local_origin_errors != Some(true)
        {
            v.error_at(
                "consecutiveLocalOriginFailures",
                "local-origin failures are only counted separately when splitExternalLocalOriginErrors is true",
            );
        }
        for (key, value) in [
            ("maxEjectionPercent", self.max_ejection_percent),
            ("minHealthPercent", self.min_health_percent),
        ] {
            if let Some(value) = value.filter(|p| !(0..=100).contains(p)) {
                v.error_at(
                    key,
                    format!("must be a percentage between 0 and 100 (got {value})"),
                );
            }
        }
        v.each(
            "outlierDetectionHttpErrorCodes",
            &self.outlier_detection_http_error_codes,
            |v, code| {
                if !(100..=599).contains(code) {
                    v.error(format!("{code} is not an HTTP status code (100 to 599)"));
                }
            },
        );
    }
}

impl Validate for ClientTlsSettings {
    fn validate(&self, v: &mut Validator) {
        let mode = self.mode.unwrap_or(ClientTlsMode::Disable);
        if self.insecure_skip_verify == Some(true) {
            let verification: &[(&str, bool)] = match mode {
                ClientTlsMode::Simple => &[
                    ("caCertificates", !self.ca_certificates.is_empty()),
                    ("credentialName", !self.credential_name.is_empty()),
                    ("subjectAltNames", !self.subject_alt_names.is_empty()),
                ],
                ClientTlsMode::Mutual => &[
                    ("caCertificates", !self.ca_certificates.is_empty()),
                    ("subjectAltNames", !self.subject_alt_names.is_empty()),
                ],
                _ => &[],
            };
            for (field, _) in verification.iter().filter(|(_, set)| *set) {
                v.error_at(field, "cannot be combined with insecureSkipVerify: true, which turns server verification off");
            }
        }
        let files = [
            ("clientCertificate", !self.client_certificate.is_empty()),
            ("privateKey", !self.private_key.is_empty()),
            ("caCertificates", !self.ca_certificates.is_empty()),
            ("caCrl", !self.ca_crl.is_empty()),
        ];
        match mode {
            ClientTlsMode::Simple | ClientTlsMode::Mutual if !self.credential_name.is_empty() => {
                for (field, _) in files.iter().filter(|(_, set)| *set) {
                    v.error_at(field, "cannot be set together with credentialName: the credential supplies the certificates");
                }
            }
            ClientTlsMode::Mutual => {
                if self.client_certificate.is_empty() {
                    v.error_at(
                        "clientCertificate",
                        "MUTUAL TLS needs a client certificate (or a credentialName)",
                    );
                }
                if self.private_key.is_empty() {
                    v.error_at(
                        "privateKey",
                        "MUTUAL TLS needs a private key (or a credentialName)",
                    );
                }
            }
            ClientTlsMode::IstioMutual => {
                let credential = [("credentialName", !self.credential_name.is_empty())];
                for (field, _) in files.iter().chain(&credential).filter(|(_, set)| *set) {
                    v.warn_at(
                        field,
                        "ISTIO_MUTUAL uses the mesh's own certificates; this field is ignored",
                    );
                }
            }
            _ => {}
        }
    }
}

impl ClientTlsSettings {
    /// A `configmap://namespace/name` credential must be in the resource's own namespace.
    fn check_credential_namespace(&self, namespace: &str, v: &mut Validator) {
        let Some(reference) = self
            .credential_name
            .strip_prefix(CONFIGMAP_CREDENTIAL_PREFIX)
        else {
            return;
        };
        match reference.split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() => {
                if ns != namespace || namespace.is_empty() {
                    v.error_at(
                        "credentialName",
                        format!("the ConfigMap must be in this resource's own namespace {namespace:?} (got {ns:?})"),
                    );
                }
            }
            _ => v.error_at(
                "credentialName",
                format!(
                    "{:?} must have the form configmap://<namespace>/<name>",
                    self.credential_name
                ),
            ),
        }
    }
}
