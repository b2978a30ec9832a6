//! TLS from the proxy to a cluster's endpoints: what the DestinationRule in force says, else
//! Istio's automatic mutual TLS.
//!
//! The `tls` of the cluster's policy ([`crate::destination_rules`]: a port-level entry's over
//! the rule's, a subset's over both) decides by its `mode` (absent: `DISABLE`):
//!
//! - `DISABLE`: plaintext.
//! - `ISTIO_MUTUAL`: the mesh's mutual TLS, the peer verified against the identities of the
//!   service (below), or the rule's `subjectAltNames` when it gives some, as Istio does; SNI the
//!   rule's `sni`, else Istio's `outbound_.PORT_.SUBSET_.HOST`
//!   (`outbound_.9080_._.reviews.default.svc.cluster.local` without a subset).
//! - `SIMPLE` and `MUTUAL`: TLS origination with the rule's files (`caCertificates`, and for
//!   `MUTUAL` `clientCertificate` and `privateKey`), `subjectAltNames` (else a ServiceEntry's,
//!   as Istio does), `sni` (none when unset) and `insecureSkipVerify`. A `credentialName` names
//!   a secret, and there is no secret store
//!   to read it from: it is reported and the cluster gets no TLS. `caCrl` is reported and
//!   ignored, and so are a client certificate and key under `SIMPLE`, which presents none.
//!
//! When no policy sets `tls`, automatic mutual TLS (Istio's default): the mesh's mutual TLS
//! with `automatic` set, so the proxy uses it only towards endpoints labelled
//! `security.istio.io/tlsMode: istio` (those with a sidecar) and plaintext towards the
//! others. Not for a service outside the mesh (a ServiceEntry's `MESH_EXTERNAL`, its default,
//! or an `ExternalName` Service), nor when the PeerAuthentication of the service's namespace
//! (namespace- or mesh-wide) is `DISABLE`, which is all Istio can know of its endpoints.
//!
//! A service's identities are the SPIFFE ids `spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/ACCOUNT` of
//! its endpoints' workloads (every endpoint of the service, whatever the subset, as in Istio),
//! and a ServiceEntry's `subjectAltNames`; sorted, each once.

use trellis_api::networking::{ClientTlsMode, ClientTlsSettings};
use trellis_api::security::MutualTlsMode;
use trellis_proxy_config::{TlsOrigination, UpstreamTls};

use crate::clusters::ClusterKey;
use crate::context::Scope;
use crate::destination_rules::Sourced;
use crate::peer_authentication;
use crate::registry::Service;
use crate::warnings::Warnings;

/// The TLS of the cluster `key` of `service` (if the registry has it), under the policy's
/// `tls` setting (if any sets one).
pub(crate) fn translate(
    cx: &Scope<'_>,
    key: &ClusterKey,
    service: Option<&Service>,
    tls: Option<&Sourced<'_, ClientTlsSettings>>,
    warnings: &mut Warnings,
) -> Option<UpstreamTls> {
    let Some(tls) = tls else {
        return automatic(cx, key, service?);
    };
    let settings = tls.value;
    match settings.mode.unwrap_or(ClientTlsMode::Disable) {
        ClientTlsMode::Disable => None,
        ClientTlsMode::IstioMutual => Some(UpstreamTls::Mesh {
            identities: if settings.subject_alt_names.is_empty() {
                service.map(|s| identities(cx, s)).unwrap_or_default()
            } else {
                sorted(settings.subject_alt_names.clone())
            },
            automatic: false,
            sni: Some(non_empty(&settings.sni).unwrap_or_else(|| sni(key))),
        }),
        mode @ (ClientTlsMode::Simple | ClientTlsMode::Mutual) => {
            origination(tls, mode == ClientTlsMode::Mutual, service, warnings)
        }
    }
}

/// `SIMPLE` (`mutual` false) or `MUTUAL` TLS with the files the setting names.
fn origination(
    tls: &Sourced<'_, ClientTlsSettings>,
    mutual: bool,
    service: Option<&Service>,
    warnings: &mut Warnings,
) -> Option<UpstreamTls> {
    let settings = tls.value;
    if !settings.credential_name.is_empty() {
        warnings.field(
            "DestinationRule",
            tls.rule,
            &format!("{}.credentialName", tls.path),
            format!(
                "the secret {:?} cannot be read: there is no secret store; the cluster gets no TLS (name the files with caCertificates, clientCertificate and privateKey instead)",
                settings.credential_name
            ),
        );
        return None;
    }
    if !settings.ca_crl.is_empty() {
        tls.unsupported("caCrl", warnings);
    }
    if !mutual {
        for (field, set) in [
            ("clientCertificate", &settings.client_certificate),
            ("privateKey", &settings.private_key),
        ] {
            if !set.is_empty() {
                warnings.field(
                    "DestinationRule",
                    tls.rule,
                    &format!("{}.{field}", tls.path),
                    "SIMPLE TLS presents no client certificate; ignored (MUTUAL presents one)",
                );
            }
        }
    }
    let client = |file: &String| non_empty(file).filter(|_| mutual);
    Some(UpstreamTls::Origination(TlsOrigination {
        ca_certificates: non_empty(&settings.ca_certificates),
        client_certificate: client(&settings.client_certificate),
        private_key: client(&settings.private_key),
        subject_alt_names: if settings.subject_alt_names.is_empty() {
            service
                .map(|s| s.subject_alt_names.clone())
                .unwrap_or_default()
        } else {
            settings.subject_alt_names.clone()
        },
        sni: non_empty(&settings.sni),
        insecure_skip_verify: settings.insecure_skip_verify.unwrap_or(false),
    }))
}

/// Automatic mutual TLS, for a service in the mesh whose namespace does not disable it.
fn automatic(cx: &Scope<'_>, key: &ClusterKey, service: &Service) -> Option<UpstreamTls> {
    let disabled =
        peer_authentication::namespace_mode(&cx.index.peer_authentications, &service.namespace)
            == MutualTlsMode::Disable;
    if service.mesh_external || disabled {
        return None;
    }
    Some(UpstreamTls::Mesh {
        identities: identities(cx, service),
        automatic: true,
        sni: Some(sni(key)),
    })
}

/// The SPIFFE ids of the service's workloads, and its own subject alternative names.
fn identities(cx: &Scope<'_>, service: &Service) -> Vec<String> {
    let workloads = service.endpoints.iter().filter_map(|e| {
        Some(format!(
            "spiffe://{}/ns/{}/sa/{}",
            cx.trust_domain,
            e.namespace,
            e.service_account.as_deref()?
        ))
    });
    sorted(
        workloads
            .chain(service.subject_alt_names.iter().cloned())
            .collect(),
    )
}

/// Istio's SNI for the mesh's mutual TLS to a cluster: `outbound_.PORT_.SUBSET_.HOST`.
fn sni(key: &ClusterKey) -> String {
    format!(
        "outbound_.{}_.{}_.{}",
        key.port,
        key.subset.as_deref().unwrap_or_default(),
        key.host
    )
}

fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names.dedup();
    names
}

fn non_empty(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_owned())
}

#[cfg(test)]
mod tests;
