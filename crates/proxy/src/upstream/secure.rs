//! How a connection to an endpoint is secured, as its cluster's `tls` says: plaintext, the
//! mesh's mutual TLS (with the peer's SPIFFE id checked against the identities that may serve
//! the destination), or TLS originated with credentials from files (`SIMPLE`, `MUTUAL`).
//!
//! With automatic mutual TLS the choice is per endpoint: TLS to the endpoints whose workload
//! runs with a sidecar (labelled `security.istio.io/tlsMode: istio`), plaintext to the others.
//! File credentials are read when the cluster is compiled; a cluster whose files cannot be
//! read refuses its connections with the reason, and the rest of the configuration works.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use trellis_identity::pem::Pem;
use trellis_proxy_config::{Cluster, Endpoint, MESH_TLS_LABEL, TlsOrigination, UpstreamTls};

use crate::identity::Certificates;
use crate::telemetry::DestinationEdges;
use crate::tls::{
    Alpn, ChainVerifier, ClientConfigs, IdentityError, check_identity, check_uris, provider,
};
use crate::transport::Io;

/// Where `SIMPLE` TLS finds the roots it trusts when the DestinationRule names none (Debian's
/// bundle of the system's certificate authorities).
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// How connections to one endpoint are secured.
#[derive(Clone)]
pub enum Security {
    Plain,
    Mesh {
        certificates: Arc<Certificates>,
        /// The SPIFFE ids that may serve the destination; empty: any of the mesh.
        identities: Arc<[String]>,
        sni: Option<ServerName<'static>>,
        /// Where requests are counted once the endpoint has shown its principal.
        destinations: DestinationEdges,
    },
    Origination(Arc<Origination>),
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Plain => f.write_str("Plain"),
            Self::Mesh { identities, .. } => f.debug_tuple("Mesh").field(identities).finish(),
            Self::Origination(origination) => {
                f.debug_tuple("Origination").field(origination).finish()
            }
        }
    }
}

/// TLS with file credentials, ready to connect; or why it cannot be.
#[derive(Debug)]
pub struct Origination {
    configs: Result<ClientConfigs, String>,
    name: ServerName<'static>,
    /// URI names the server's certificate must carry (DNS and IP names are checked in the
    /// handshake).
    uris: Vec<String>,
}

/// Why a secured connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SecureError {
    #[error("the proxy has no mesh certificate yet")]
    NoCertificate,
    #[error("TLS to the endpoint is not usable: {0}")]
    Unusable(String),
    #[error("the TLS handshake failed")]
    Handshake(#[source] std::io::Error),
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

impl SecureError {
    /// Whether the failure is the proxy's own (no certificate yet, credentials it cannot
    /// read), which says nothing of the endpoint: outlier detection must not count it.
    pub fn is_local(&self) -> bool {
        matches!(self, Self::NoCertificate | Self::Unusable(_))
    }
}

impl Security {
    /// How a cluster's connections to `endpoint` are secured.
    pub fn of(
        cluster: &Cluster,
        endpoint: &Endpoint,
        certificates: &Arc<Certificates>,
        origination: Option<&Arc<Origination>>,
        destinations: &DestinationEdges,
    ) -> Self {
        match &cluster.tls {
            None => Self::Plain,
            Some(UpstreamTls::Mesh {
                automatic: true, ..
            }) if endpoint.labels.get(MESH_TLS_LABEL).map(String::as_str) != Some("istio") => {
                Self::Plain
            }
            Some(UpstreamTls::Mesh {
                identities, sni, ..
            }) => Self::Mesh {
                certificates: certificates.clone(),
                identities: identities.clone().into(),
                sni: sni
                    .as_deref()
                    .and_then(|s| ServerName::try_from(s.to_owned()).ok()),
                destinations: destinations.clone(),
            },
            // Never plaintext where TLS was asked for: without its files read, it is made here.
            Some(UpstreamTls::Origination(tls)) => Self::Origination(
                origination
                    .cloned()
                    .unwrap_or_else(|| Origination::new(tls, &cluster.name)),
            ),
        }
    }

    /// Secures a new connection that will speak `alpn`; the peer's SPIFFE id for the mesh's
    /// TLS.
    pub async fn connect(
        &self,
        stream: TcpStream,
        alpn: Alpn,
    ) -> Result<(Io, Option<Arc<str>>), SecureError> {
        match self {
            Self::Plain => Ok((Io::Plain(stream), None)),
            Self::Mesh {
                certificates,
                identities,
                sni,
                ..
            } => {
                let mesh = certificates.tls().ok_or(SecureError::NoCertificate)?;
                let name = sni.clone().unwrap_or_else(|| peer_name(&stream));
                let connector = tokio_rustls::TlsConnector::from(mesh.client(alpn).clone());
                let tls = connector
                    .connect(name, stream)
                    .await
                    .map_err(SecureError::Handshake)?;
                let identity = check_identity(tls.get_ref().1.peer_certificates(), identities)?;
                Ok((Io::Tls(Box::new(tls.into())), Some(Arc::from(identity))))
            }
            Self::Origination(origination) => {
                let configs = origination
                    .configs
                    .as_ref()
                    .map_err(|e| SecureError::Unusable(e.clone()))?;
                let connector = tokio_rustls::TlsConnector::from(configs.get(alpn).clone());
                let tls = connector
                    .connect(origination.name.clone(), stream)
                    .await
                    .map_err(SecureError::Handshake)?;
                if !origination.uris.is_empty() {
                    check_uris(tls.get_ref().1.peer_certificates(), &origination.uris)?;
                }
                Ok((Io::Tls(Box::new(tls.into())), None))
            }
        }
    }
}

/// The name a connection without SNI is made under: the peer's address, which TLS does not
/// send as SNI.
fn peer_name(stream: &TcpStream) -> ServerName<'static> {
    let ip = stream
        .peer_addr()
        .map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |a| a.ip());
    ServerName::IpAddress(ip.into())
}

impl Origination {
    /// Reads the files `tls` names (once per cluster update).
    pub fn new(tls: &TlsOrigination, cluster: &str) -> Arc<Self> {
        let (dns, uris): (Vec<_>, Vec<_>) = tls
            .subject_alt_names
            .iter()
            .cloned()
            .partition(|name| !is_uri(name));
        let sni = tls.sni.clone().and_then(|s| ServerName::try_from(s).ok());
        // Without names of its own, the server must carry the name it is asked for (SNI).
        let names: Result<Vec<ServerName<'static>>, String> = if dns.is_empty() && uris.is_empty() {
            Ok(sni.iter().cloned().collect())
        } else {
            dns.into_iter()
                .map(|n| {
                    ServerName::try_from(n.clone()).map_err(|_| {
                        format!(
                            "subjectAltNames: {n:?} is neither a DNS name, an IP address nor a URI"
                        )
                    })
                })
                .collect()
        };
        let name = sni
            .or_else(|| names.as_ref().ok().and_then(|n| n.first().cloned()))
            .unwrap_or_else(|| ServerName::IpAddress(std::net::Ipv4Addr::UNSPECIFIED.into()));
        let configs = names
            .and_then(|names| client_configs(tls, names))
            .map_err(|error| {
                tracing::warn!(%cluster, "TLS origination is not usable: {error}");
                format!("cluster {cluster}: {error}")
            });
        Arc::new(Self {
            configs,
            name,
            uris,
        })
    }
}

/// Whether a subject alternative name is a URI (`spiffe://...`, `urn:...`): a scheme and a
/// colon, and not an IP address (IPv6 addresses have colons too).
fn is_uri(name: &str) -> bool {
    if name.parse::<std::net::IpAddr>().is_ok() {
        return false;
    }
    name.split_once(':').is_some_and(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    })
}

fn client_configs(
    tls: &TlsOrigination,
    names: Vec<ServerName<'static>>,
) -> Result<ClientConfigs, String> {
    let read =
        |path: &str| std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"));
    let mut roots = RootCertStore::empty();
    let bundle_path = tls.ca_certificates.as_deref().unwrap_or(SYSTEM_ROOTS);
    for pem in
        Pem::all(&read(bundle_path)?, "CERTIFICATE").map_err(|e| format!("{bundle_path}: {e}"))?
    {
        // A bundle may hold certificates webpki cannot use as anchors; the others still serve.
        let _ = roots.add(CertificateDer::from(pem.der));
    }
    if roots.is_empty() {
        return Err(format!("{bundle_path} holds no usable certificate"));
    }
    let provider = provider();
    let verifier = Arc::new(ChainVerifier {
        roots: Arc::new(roots),
        algorithms: provider.signature_verification_algorithms,
        names,
        skip: tls.insecure_skip_verify,
    });
    let client_auth = match (&tls.client_certificate, &tls.private_key) {
        (Some(certificate), Some(key)) => {
            let chain = Pem::all(&read(certificate)?, "CERTIFICATE")
                .map_err(|e| format!("{certificate}: {e}"))?
                .into_iter()
                .map(|p| CertificateDer::from(p.der))
                .collect::<Vec<_>>();
            let key_pem = read(key)?;
            let key = Pem::one(&key_pem, "PRIVATE KEY")
                .map(|p| PrivateKeyDer::Pkcs8(p.der.into()))
                .or_else(|_| {
                    Pem::one(&key_pem, "EC PRIVATE KEY").map(|p| PrivateKeyDer::Sec1(p.der.into()))
                })
                .or_else(|_| {
                    Pem::one(&key_pem, "RSA PRIVATE KEY")
                        .map(|p| PrivateKeyDer::Pkcs1(p.der.into()))
                })
                .map_err(|e| format!("{key}: {e}"))?;
            Some((chain, key))
        }
        _ => None,
    };
    let config = |alpn: &[&[u8]]| -> Result<Arc<ClientConfig>, String> {
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone());
        let mut config = match &client_auth {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain.clone(), key.clone_key())
                .map_err(|e| format!("the client certificate and key do not go together: {e}"))?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    };
    ClientConfigs::build(config)
}
