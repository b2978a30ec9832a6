//! The mesh's mutual TLS, built from the proxy's workload certificate: the server side that
//! inbound listeners terminate with, the client side that connections to mesh endpoints
//! originate with, and the SPIFFE identities each side learns of its peer (docs/security.md).
//!
//! Both sides present the workload certificate and accept only a peer whose chain leads to one
//! of the mesh's roots (any of them: during a root rotation the bundle holds the old root and
//! the new). Mesh certificates name no DNS host, only a SPIFFE id, so the client checks the
//! chain here and the identity against what the destination may be, once the handshake is done
//! and before any byte of the request is sent ([`check_identity`]).
//!
//! The configurations are rebuilt at each renewal ([`MeshTls::new`]) and swapped in: a
//! handshake uses the certificate in force when it starts, and connections already open keep
//! theirs, so a rotation drops nothing.

use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use tokio::net::TcpStream;
use trellis_identity::pem::Pem;
use trellis_proxy_config::PeerMtls;

use crate::Proxy;
use crate::identity::Certified;
use crate::transport::Io;

/// The application protocols an inbound listener offers, in its order of preference.
const SERVER_ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// What a connection to an endpoint will speak inside TLS, announced by ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alpn {
    Http1,
    Http2,
    /// Bytes of the application's own protocol (the TCP proxy).
    Opaque,
}

/// Why TLS configuration could not be built from a certificate.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("the certificate chain cannot be read: {0}")]
    Chain(String),
    #[error("the private key cannot be read: {0}")]
    Key(String),
    #[error("no trusted root can be read: {0}")]
    Roots(String),
    #[error(transparent)]
    Rustls(#[from] rustls::Error),
    #[error("the client certificate verifier cannot be built: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// The process's one cryptography provider: ring, the provider the whole workspace builds
/// with (aws-lc would add a C toolchain build; its post-quantum key exchange is what ring's
/// provider is deprecated for lacking). Key exchange offers X25519, then P-256, as Envoy does:
/// ring's own default puts P-384 first, which made each handshake several times slower.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: std::sync::OnceLock<Arc<CryptoProvider>> = std::sync::OnceLock::new();
    let make = || {
        #[allow(deprecated)]
        let mut provider = rustls::crypto::ring::default_provider();
        provider.kx_groups = vec![
            rustls::crypto::ring::kx_group::X25519,
            rustls::crypto::ring::kx_group::SECP256R1,
        ];
        Arc::new(provider)
    };
    PROVIDER.get_or_init(make).clone()
}

/// Server and client configurations for the mesh's mutual TLS, from one certificate.
#[derive(Debug)]
pub struct MeshTls {
    pub server: Arc<ServerConfig>,
    clients: ClientConfigs,
    /// The proxy's own SPIFFE id.
    pub identity: String,
}

impl MeshTls {
    pub fn new(certified: &Certified) -> Result<Self, TlsError> {
        // The chain as the CA sent it ends with the trust bundle, which need not travel: the
        // peer has it.
        let sent = match certified.chain.split_last() {
            Some((_, sent)) if !sent.is_empty() => sent,
            _ => &certified.chain[..],
        };
        let mut chain = Vec::new();
        for pem in sent {
            let der = Pem::one(pem, "CERTIFICATE").map_err(TlsError::Chain)?;
            chain.push(CertificateDer::from(der.der));
        }
        let key = Pem::one(&certified.key, "PRIVATE KEY").map_err(TlsError::Key)?;
        let key = PrivateKeyDer::Pkcs8(key.der.into());
        let mut roots = RootCertStore::empty();
        for pem in &certified.roots {
            let der = Pem::one(pem, "CERTIFICATE").map_err(TlsError::Roots)?;
            roots
                .add(CertificateDer::from(der.der))
                .map_err(|e| TlsError::Roots(e.to_string()))?;
        }
        let roots = Arc::new(roots);
        let provider = provider();

        let verifier =
            WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone()).build()?;
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())?;
        server.alpn_protocols = SERVER_ALPN.iter().map(|p| p.to_vec()).collect();

        let client = |alpn: &[&[u8]]| -> Result<Arc<ClientConfig>, TlsError> {
            let mut config = ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainVerifier {
                    roots: roots.clone(),
                    algorithms: provider.signature_verification_algorithms,
                    names: Vec::new(),
                    skip: false,
                }))
                .with_client_auth_cert(chain.clone(), key.clone_key())?;
            config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            Ok(Arc::new(config))
        };
        Ok(Self {
            server: Arc::new(server),
            clients: ClientConfigs::build(client)?,
            identity: certified.identity.clone(),
        })
    }

    /// The client configuration for a connection that will speak `alpn`.
    pub fn client(&self, alpn: Alpn) -> &Arc<ClientConfig> {
        self.clients.get(alpn)
    }
}

/// One client configuration per protocol a connection announces by ALPN (rustls sets ALPN
/// per configuration).
#[derive(Debug)]
pub(crate) struct ClientConfigs {
    http1: Arc<ClientConfig>,
    http2: Arc<ClientConfig>,
    opaque: Arc<ClientConfig>,
}

impl ClientConfigs {
    /// The three, each made by `make` from its ALPN protocol list.
    pub(crate) fn build<E>(
        mut make: impl FnMut(&[&[u8]]) -> Result<Arc<ClientConfig>, E>,
    ) -> Result<Self, E> {
        Ok(Self {
            http1: make(&[b"http/1.1"])?,
            http2: make(&[b"h2"])?,
            opaque: make(&[])?,
        })
    }

    pub(crate) fn get(&self, alpn: Alpn) -> &Arc<ClientConfig> {
        match alpn {
            Alpn::Http1 => &self.http1,
            Alpn::Http2 => &self.http2,
            Alpn::Opaque => &self.opaque,
        }
    }
}

/// Checks a server's chain against `roots` and, when `names` are given, that the certificate
/// carries one of them (DNS or IP names); or nothing at all when `skip` says so
/// (`insecureSkipVerify`). Mesh certificates carry only a SPIFFE id: for them `names` is empty
/// and [`check_identity`] compares the id after the handshake.
#[derive(Debug)]
pub(crate) struct ChainVerifier {
    pub roots: Arc<RootCertStore>,
    pub algorithms: WebPkiSupportedAlgorithms,
    pub names: Vec<ServerName<'static>>,
    pub skip: bool,
}

impl ServerCertVerifier for ChainVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.skip {
            return Ok(ServerCertVerified::assertion());
        }
        let parsed = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &self.roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        let mut refused = None;
        for name in &self.names {
            match rustls::client::verify_server_name(&parsed, name) {
                Ok(()) => return Ok(ServerCertVerified::assertion()),
                Err(error) => refused = Some(error),
            }
        }
        refused.map_or(Ok(ServerCertVerified::assertion()), Err)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The SPIFFE id a verified peer certificate names (its first `spiffe://` URI SAN).
pub fn peer_identity(certificates: Option<&[CertificateDer<'_>]>) -> Option<String> {
    let leaf = certificates?.first()?;
    let info = trellis_identity::pem::certificate(leaf).ok()?;
    info.uris.into_iter().find(|u| u.starts_with("spiffe://"))
}

/// A server that is not one the destination may be.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("the peer's certificate names no SPIFFE identity")]
    Anonymous,
    #[error("the peer is {shown}, which may not serve this destination (expected one of {})", .expected.join(", "))]
    NotAllowed {
        shown: String,
        expected: Vec<String>,
    },
    #[error("the server's certificate names none of {} among its URIs", .expected.join(", "))]
    NoUri { expected: Vec<String> },
}

/// The peer's identity if it is one of `allowed` (any, when `allowed` is empty).
pub fn check_identity(
    certificates: Option<&[CertificateDer<'_>]>,
    allowed: &[String],
) -> Result<String, IdentityError> {
    let identity = peer_identity(certificates).ok_or(IdentityError::Anonymous)?;
    if allowed.is_empty() || allowed.contains(&identity) {
        Ok(identity)
    } else {
        Err(IdentityError::NotAllowed {
            shown: identity,
            expected: allowed.to_vec(),
        })
    }
}

/// Whether the server's certificate carries one of the URI names `expected` (any scheme).
pub fn check_uris(
    certificates: Option<&[CertificateDer<'_>]>,
    expected: &[String],
) -> Result<(), IdentityError> {
    let shown = certificates
        .and_then(|c| c.first())
        .and_then(|leaf| trellis_identity::pem::certificate(leaf).ok())
        .map(|info| info.uris)
        .unwrap_or_default();
    if shown.iter().any(|uri| expected.contains(uri)) {
        Ok(())
    } else {
        Err(IdentityError::NoUri {
            expected: expected.to_vec(),
        })
    }
}

/// An accepted connection after the listener's TLS, if it has any.
#[derive(Debug)]
pub struct Secured {
    pub io: Io,
    /// The client's SPIFFE id, when it came over the mesh's mutual TLS.
    pub peer_identity: Option<Arc<str>>,
}

impl Secured {
    pub fn plain(stream: TcpStream) -> Self {
        Self {
            io: Io::Plain(stream),
            peer_identity: None,
        }
    }
}

/// Why an inbound connection was refused.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    #[error("mutual TLS is required and the proxy has no certificate yet")]
    NoCertificate,
    #[error("mutual TLS is required and the client sent something else")]
    Plaintext,
    #[error("the TLS handshake failed")]
    Handshake(#[source] std::io::Error),
    #[error("the client sent nothing within {0:?}")]
    Timeout(Duration),
    #[error("the client closed the connection")]
    Closed,
}

/// Applies an inbound listener's mutual TLS to an accepted connection. `Strict` takes only a
/// TLS handshake with a certificate from the mesh's roots, all within `timeout`; `Permissive`
/// looks at the first byte, and takes a TLS record as `Strict` does and anything else as
/// plaintext. A client that sends nothing within `detection` is taken as plaintext too under
/// `Permissive` (server-first protocols, such as MySQL's, wait for the server to speak).
pub async fn accept(
    proxy: &Proxy,
    stream: TcpStream,
    mode: PeerMtls,
    detection: Duration,
    timeout: Duration,
) -> Result<Secured, AcceptError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let waiting = match mode {
        PeerMtls::Strict => timeout,
        PeerMtls::Permissive => detection.min(timeout),
    };
    let mut first = [0u8; 1];
    let peeked = tokio::time::timeout(waiting, stream.peek(&mut first)).await;
    let tls = match peeked {
        Ok(Ok(0)) => return Err(AcceptError::Closed),
        Ok(Err(error)) => return Err(AcceptError::Handshake(error)),
        Ok(Ok(_)) => first[0] == TLS_HANDSHAKE_RECORD,
        Err(_) if mode == PeerMtls::Strict => return Err(AcceptError::Timeout(timeout)),
        Err(_) => false,
    };
    if !tls {
        return match mode {
            PeerMtls::Strict => Err(AcceptError::Plaintext),
            PeerMtls::Permissive => Ok(Secured::plain(stream)),
        };
    }
    let mesh = proxy.certificates.tls().ok_or(AcceptError::NoCertificate)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(mesh.server.clone());
    let tls = tokio::time::timeout_at(deadline, acceptor.accept(stream))
        .await
        .map_err(|_| AcceptError::Timeout(timeout))?
        .map_err(AcceptError::Handshake)?;
    let peer_identity = peer_identity(tls.get_ref().1.peer_certificates()).map(Arc::from);
    Ok(Secured {
        io: Io::Tls(Box::new(tokio_rustls::TlsStream::Server(tls))),
        peer_identity,
    })
}

/// The first byte of a TLS connection (a handshake record carrying the ClientHello).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;
