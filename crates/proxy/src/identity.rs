//! The proxy's own identity: a certificate from the control plane's CA, requested with the
//! bootstrap token its starter gave it, held in memory only, and renewed at half its lifetime
//! (docs/security.md).
//!
//! Each renewal makes a new key. A failed request is retried with backoff (1 s doubling to
//! 30 s) while the certificate in hand stays in use; `GET /certs` on the admin port shows the
//! one in force.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use serde::Serialize;
use tokio::sync::watch;
use trellis_identity::SpiffeId;
use trellis_proto::ca::IstioCertificateRequest;

use crate::tls::{MeshTls, TlsError};
use trellis_proto::ca::istio_certificate_service_client::IstioCertificateServiceClient;

const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Where the CA is and what proves who this proxy is.
#[derive(Debug, Clone)]
pub struct IdentityOptions {
    /// `http://host:port` (the control plane's gRPC port).
    pub address: String,
    pub token: String,
    /// Asked for; the CA gives at most its maximum. Zero: the CA's maximum.
    pub lifetime: Duration,
}

/// A certificate and its key.
#[derive(Clone, Serialize)]
pub struct Certified {
    pub identity: String,
    /// PEM, as the CA sent it: the proxy's certificate first, its chain, the trust bundle last.
    pub chain: Vec<String>,
    /// PEM (PKCS #8).
    #[serde(skip)]
    pub key: String,
    /// Seconds since the Unix epoch.
    pub not_before: i64,
    pub not_after: i64,
    /// The certificates the proxy trusts (PEM): the trust bundle that came with its chain.
    pub roots: Vec<String>,
}

impl std::fmt::Debug for Certified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certified")
            .field("identity", &self.identity)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// The certificate in force, the mesh's TLS made from it, and a signal of each new one.
#[derive(Debug, Default)]
pub struct Certificates {
    current: ArcSwapOption<Certified>,
    tls: ArcSwapOption<MeshTls>,
    renewed: watch::Sender<u64>,
}

impl Certificates {
    pub fn current(&self) -> Option<Arc<Certified>> {
        self.current.load_full()
    }

    /// Changes with each new certificate.
    pub fn renewals(&self) -> watch::Receiver<u64> {
        self.renewed.subscribe()
    }

    /// The mesh's TLS configurations for the certificate in force; none before the first.
    pub fn tls(&self) -> Option<Arc<MeshTls>> {
        self.tls.load_full()
    }

    /// Puts a certificate in force (handshakes from now on use it); refused, and the one in
    /// force kept, if TLS cannot be made of it.
    pub fn store(&self, certified: Certified) -> Result<(), TlsError> {
        let tls = MeshTls::new(&certified)?;
        self.tls.store(Some(Arc::new(tls)));
        self.current.store(Some(Arc::new(certified)));
        self.renewed.send_modify(|n| *n += 1);
        Ok(())
    }
}

/// Keeps the proxy certified until `drain` turns true.
pub async fn run(
    options: IdentityOptions,
    certificates: Arc<Certificates>,
    mut drain: watch::Receiver<bool>,
) {
    let Some(identity) = trellis_identity::identity_of(&options.token) else {
        tracing::error!("the bootstrap token is not one the control plane issues; no certificate");
        return;
    };
    let mut backoff = BACKOFF_MIN;
    loop {
        let wait = match request(&options, &identity).await {
            Ok(certified) => {
                backoff = BACKOFF_MIN;
                let wait = renew_in(certified.not_after);
                let not_after = certified.not_after;
                match certificates.store(certified) {
                    Ok(()) => {
                        tracing::info!(%identity, not_after, renew_in = ?wait, "certificate in force");
                        wait
                    }
                    Err(error) => {
                        tracing::error!(%identity, "the CA's certificate cannot be used: {error}");
                        let wait = backoff;
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                        wait
                    }
                }
            }
            Err(error) => {
                let wait = backoff;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                tracing::warn!(%identity, control = %options.address, "no certificate: {error}; retrying in {wait:?}");
                wait
            }
        };
        tokio::select! {
            () = crate::listener::draining(&mut drain) => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Half of what is left of a certificate's lifetime (counted from now rather than from its
/// start, which the CA sets a minute early for clock skew).
fn renew_in(not_after: i64) -> Duration {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    Duration::from_secs_f64(((not_after as f64 - now) / 2.0).max(0.1))
}

/// A new key, certified.
async fn request(options: &IdentityOptions, identity: &SpiffeId) -> Result<Certified, String> {
    let key = trellis_identity::new_workload_key(identity)
        .map_err(|e| format!("cannot make a key: {e}"))?;
    let mut client = IstioCertificateServiceClient::connect(options.address.clone())
        .await
        .map_err(|e| format!("cannot reach the CA: {e}"))?;
    let mut request = tonic::Request::new(IstioCertificateRequest {
        csr: key.csr.clone(),
        validity_duration: i64::try_from(options.lifetime.as_secs()).unwrap_or(0),
    });
    let bearer = format!("Bearer {}", options.token.trim())
        .parse()
        .map_err(|_| "the token is not a valid header value".to_owned())?;
    request.metadata_mut().insert("authorization", bearer);
    let chain = client
        .create_certificate(request)
        .await
        .map_err(|status| format!("the CA refused: {}", status.message()))?
        .into_inner()
        .cert_chain;
    Certified::from_chain(identity, chain, key.key.serialize_pem())
}

impl Certified {
    /// A chain as the CA answers (the certificate first, the trust bundle last) and its key;
    /// an error when the chain does not certify `identity` alone.
    pub fn from_chain(
        identity: &SpiffeId,
        chain: Vec<String>,
        key: String,
    ) -> Result<Self, String> {
        let leaf = chain.first().ok_or("the CA sent no certificate")?;
        let bundle = chain
            .last()
            .filter(|_| chain.len() > 1)
            .ok_or("the CA sent no trust bundle")?;
        let roots = trellis_identity::pem::Pem::all(bundle, "CERTIFICATE")
            .map_err(|e| format!("the CA's trust bundle {e}"))?
            .into_iter()
            .map(|root| root.text)
            .collect();
        let der = trellis_identity::pem::Pem::one(leaf, "CERTIFICATE")?;
        let info = trellis_identity::pem::certificate(&der.der)?;
        if info.uris != [identity.uri()] {
            return Err(format!("the CA certified {:?}, not {identity}", info.uris));
        }
        Ok(Self {
            identity: identity.uri(),
            roots,
            chain,
            key,
            not_before: info.not_before,
            not_after: info.not_after,
        })
    }
}
