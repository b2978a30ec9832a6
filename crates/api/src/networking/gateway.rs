//! `Gateway`: the servers (ports, hosts, TLS) a gateway workload exposes at the mesh's edge.

use serde::{Deserialize, Serialize};

use crate::meta::ObjectMeta;
use crate::resource::Spec;
use crate::types::names::{check_namespaced_host, is_dns1123_label};
use crate::types::{Labels, Port, Protocol, validate_selector_labels};
use crate::validate::{Validate, Validator};

/// Prefix of a `bind` address that names a Unix domain socket.
pub const UNIX_ADDRESS_PREFIX: &str = "unix://";

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Gateway {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<Server>,
    /// Labels of the gateway workloads this configuration applies to.
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub selector: Labels,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Server {
    pub port: ServerPort,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    pub hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServerTlsSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Istio's `Port` message as gateways use it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerPort {
    pub number: u32,
    pub protocol: Protocol,
    pub name: String,
    /// Deprecated, and without effect on gateways.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerTlsSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https_redirect: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ServerTlsMode>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub server_certificate: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub private_key: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ca_certificates: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ca_crl: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub credential_name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credential_names: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ca_cert_credential_name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tls_certificates: Vec<TlsCertificate>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify_certificate_spki: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify_certificate_hash: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_protocol_version: Option<TlsProtocolVersion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_protocol_version: Option<TlsProtocolVersion>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cipher_suites: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ecdh_curves: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsCertificate {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub server_certificate: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub private_key: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ca_certificates: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServerTlsMode {
    Passthrough,
    Simple,
    Mutual,
    AutoPassthrough,
    IstioMutual,
    OptionalMutual,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TlsProtocolVersion {
    #[serde(rename = "TLS_AUTO")]
    Auto,
    #[serde(rename = "TLSV1_0")]
    V1_0,
    #[serde(rename = "TLSV1_1")]
    V1_1,
    #[serde(rename = "TLSV1_2")]
    V1_2,
    #[serde(rename = "TLSV1_3")]
    V1_3,
}

impl Spec for Gateway {
    fn validate_object(&self, meta: &ObjectMeta, v: &mut Validator) {
        if !meta.name.is_empty() && !is_dns1123_label(&meta.name) {
            v.error_at(
                "metadata",
                format!("gateway name {:?} must be a DNS label (no dots)", meta.name),
            );
        }
    }
}

impl Validate for Gateway {
    fn validate(&self, v: &mut Validator) {
        if self.servers.is_empty() {
            v.error_at("servers", "a gateway must have at least one server");
        }
        v.nested("servers", &self.servers);
        let mut port_names = std::collections::HashSet::new();
        v.each("servers", &self.servers, |v, server| {
            if !port_names.insert(server.port.name.as_str()) {
                v.error_at(
                    "port",
                    format!(
                        "port names of servers must be unique: {:?} is used twice",
                        server.port.name
                    ),
                );
            }
        });
        v.at("selector", |v| validate_selector_labels(&self.selector, v));
    }
}

impl Validate for Server {
    fn validate(&self, v: &mut Validator) {
        if self.hosts.is_empty() {
            v.error_at("hosts", "a server must list at least one host");
        }
        v.each("hosts", &self.hosts, |v, host| {
            for problem in check_namespaced_host(host, true) {
                v.error(problem);
            }
        });
        let bind = self.bind.as_deref().unwrap_or_default();
        v.at("port", |v| self.port.check(bind, v));
        if let Some(socket) = bind.strip_prefix(UNIX_ADDRESS_PREFIX) {
            if !socket.starts_with('/') && !socket.starts_with('@') {
                v.error_at(
                    "bind",
                    "a unix domain socket must be an absolute path or start with @",
                );
            }
            if self.port.number != 0 {
                v.error_at(
                    "port",
                    "the port number must be 0 when binding a unix domain socket",
                );
            }
        } else if !bind.is_empty() && bind.parse::<std::net::IpAddr>().is_err() {
            v.error_at(
                "bind",
                format!("{bind:?} is not an IP address or unix:// socket"),
            );
        }
        let protocol = self.port.protocol;
        match &self.tls {
            None if protocol.is_tls() => {
                v.error_at("tls", format!("a {protocol} server needs TLS settings"))
            }
            Some(tls) => {
                v.nested("tls", tls);
                if protocol.is_tls() {
                } else if !protocol.is_http() {
                    v.error_at(
                        "tls",
                        format!("a {protocol} server cannot have TLS settings"),
                    );
                } else if !matches!(
                    tls.mode,
                    None | Some(ServerTlsMode::Passthrough | ServerTlsMode::AutoPassthrough)
                ) || !tls.server_certificate.is_empty()
                    || !tls.private_key.is_empty()
                    || !tls.ca_certificates.is_empty()
                {
                    v.error_at(
                        "tls",
                        "a plain-text HTTP server can only set tls.httpsRedirect",
                    );
                }
                if tls.https_redirect == Some(true) && !protocol.is_http() {
                    v.warn_at(
                        "tls",
                        "tls.httpsRedirect only has an effect on HTTP servers",
                    );
                }
            }
            None => {}
        }
    }
}

impl ServerPort {
    fn check(&self, bind: &str, v: &mut Validator) {
        if (self.number != 0 || !bind.starts_with(UNIX_ADDRESS_PREFIX))
            && Port::new(self.number.into()).is_err()
        {
            v.error_at(
                "number",
                format!("port must be between 1 and 65535 (got {})", self.number),
            );
        }
        if self.name.is_empty() {
            v.error_at("name", "a server's port must have a name");
        }
        if self.target_port.is_some_and(|p| p > 0) {
            v.error_at(
                "targetPort",
                "targetPort has no effect on gateways; remove it",
            );
        }
    }
}

impl Validate for ServerTlsSettings {
    fn validate(&self, v: &mut Validator) {
        let mode = self.mode.unwrap_or(ServerTlsMode::Passthrough);
        if matches!(
            self.min_protocol_version,
            Some(TlsProtocolVersion::V1_0 | TlsProtocolVersion::V1_1)
        ) && self.cipher_suites.is_empty()
        {
            v.warn_at("minProtocolVersion", "TLS versions below 1.2 need cipherSuites set: the default suites do not support them");
        }
        let mut seen = std::collections::HashSet::new();
        v.each("cipherSuites", &self.cipher_suites, |v, suite| {
            if !seen.insert(suite) {
                v.warn(format!("duplicate cipher suite {suite} is ignored"));
            }
        });
        v.at_most_one(&[
            ("credentialName", !self.credential_name.is_empty()),
            ("credentialNames", !self.credential_names.is_empty()),
            (
                "serverCertificate/privateKey",
                !self.server_certificate.is_empty() && !self.private_key.is_empty(),
            ),
            ("tlsCertificates", !self.tls_certificates.is_empty()),
        ]);
        if self.credential_names.len() > 2 {
            v.error_at(
                "credentialNames",
                "at most 2 credentials may be listed (one RSA, one ECDSA)",
            );
        }
        if self.tls_certificates.len() > 2 {
            v.error_at(
                "tlsCertificates",
                "at most 2 certificates may be listed (one RSA, one ECDSA)",
            );
        }
        match mode {
            ServerTlsMode::IstioMutual => {
                for (field, set) in [
                    ("serverCertificate", !self.server_certificate.is_empty()),
                    ("privateKey", !self.private_key.is_empty()),
                    ("caCertificates", !self.ca_certificates.is_empty()),
                    ("tlsCertificates", !self.tls_certificates.is_empty()),
                    ("credentialName", !self.credential_name.is_empty()),
                    ("credentialNames", !self.credential_names.is_empty()),
                ] {
                    if set {
                        v.error_at(
                            field,
                            "ISTIO_MUTUAL uses the mesh's certificates; this field cannot be set",
                        );
                    }
                }
                return;
            }
            ServerTlsMode::Passthrough | ServerTlsMode::AutoPassthrough => {
                if self.has_certificates() && self.https_redirect != Some(true) {
                    v.warn_at(
                        "mode",
                        "passthrough modes do not terminate TLS; the certificates are ignored",
                    );
                }
            }
            ServerTlsMode::Simple | ServerTlsMode::Mutual | ServerTlsMode::OptionalMutual => {
                let from_credential =
                    !self.credential_name.is_empty() || !self.credential_names.is_empty();
                if !from_credential {
                    let label = if mode == ServerTlsMode::Simple {
                        "SIMPLE"
                    } else {
                        "MUTUAL"
                    };
                    if mode != ServerTlsMode::Simple && self.ca_certificates.is_empty() {
                        v.error_at(
                            "caCertificates",
                            format!("{label} TLS needs a client CA bundle (or a credentialName)"),
                        );
                    }
                    if self.tls_certificates.is_empty() {
                        if self.server_certificate.is_empty() {
                            v.error_at(
                                "serverCertificate",
                                format!(
                                    "{label} TLS needs a server certificate (or a credentialName)"
                                ),
                            );
                        }
                        if self.private_key.is_empty() {
                            v.error_at(
                                "privateKey",
                                format!("{label} TLS needs a private key (or a credentialName)"),
                            );
                        }
                    }
                    v.each("tlsCertificates", &self.tls_certificates, |v, cert| {
                        if cert.server_certificate.is_empty() {
                            v.error_at(
                                "serverCertificate",
                                format!("{label} TLS needs a server certificate"),
                            );
                        }
                        if cert.private_key.is_empty() {
                            v.error_at("privateKey", format!("{label} TLS needs a private key"));
                        }
                    });
                }
            }
        }
        if !self.ca_crl.is_empty() {
            if !self.credential_name.is_empty() {
                v.error_at(
                    "caCrl",
                    "a CRL cannot be combined with credentialName; put it in the credential",
                );
            }
            if mode == ServerTlsMode::Simple {
                v.error_at(
                    "caCrl",
                    "a CRL has no use with SIMPLE TLS (clients present no certificate)",
                );
            }
        }
    }
}

impl ServerTlsSettings {
    fn has_certificates(&self) -> bool {
        !(self.ca_crl.is_empty()
            && self.server_certificate.is_empty()
            && self.private_key.is_empty()
            && self.ca_certificates.is_empty()
            && self.tls_certificates.is_empty()
            && self.credential_name.is_empty()
            && self.credential_names.is_empty())
    }
}
