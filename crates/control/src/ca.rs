//! The CA service on the xDS port: Istio's `IstioCertificateService/CreateCertificate`.
//!
//! The caller shows a bootstrap token (`authorization: Bearer <token>`, docs/security.md); the
//! certificate is for the identity the token was issued for, and a CSR that names another is
//! refused (`PERMISSION_DENIED`) and logged. The lifetime is the one asked for, within 1 s and
//! the control plane's maximum (24 h unless `--max-cert-ttl` says otherwise); 0 asks for the
//! maximum.

use std::os::unix::fs::DirBuilderExt;
use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status};
use trellis_identity::{Ca, CaError, TokenKey};
use trellis_proto::ca::istio_certificate_service_server::IstioCertificateService;
use trellis_proto::ca::{IstioCertificateRequest, IstioCertificateResponse};

/// The identity services: the CA and the key tokens are checked with.
#[derive(Debug)]
pub struct Identity {
    pub ca: Ca,
    pub tokens: TokenKey,
    /// The longest certificate lifetime handed out.
    pub max_ttl: Duration,
}

impl Identity {
    /// The CA and token key of `options.state_dir`, made there on first start; new ones in
    /// memory without a state directory.
    pub fn open(options: &crate::Options) -> std::io::Result<Self> {
        let invalid =
            |message: String| std::io::Error::new(std::io::ErrorKind::InvalidData, message);
        let (ca, tokens) = match &options.state_dir {
            Some(dir) => {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)?;
                let ca = Ca::load_or_create(&dir.join("ca")).map_err(|e| invalid(e.to_string()))?;
                let tokens = TokenKey::load_or_create(&dir.join("token-key")).map_err(invalid)?;
                (ca, tokens)
            }
            None => (
                Ca::ephemeral().map_err(|e| invalid(e.to_string()))?,
                TokenKey::ephemeral(),
            ),
        };
        Ok(Self {
            ca,
            tokens,
            max_ttl: options.max_cert_ttl,
        })
    }
}

/// The gRPC service.
#[derive(Debug, Clone)]
pub struct CaService(pub Arc<Identity>);

#[tonic::async_trait]
impl IstioCertificateService for CaService {
    async fn create_certificate(
        &self,
        request: Request<IstioCertificateRequest>,
    ) -> Result<Response<IstioCertificateResponse>, Status> {
        let peer = request.remote_addr();
        let token = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                tracing::warn!(?peer, "certificate request without a bearer token refused");
                Status::unauthenticated("a bearer token is required (authorization: Bearer ...)")
            })?;
        let caller = self.0.tokens.verify(token).map_err(|e| {
            tracing::warn!(?peer, "certificate request refused: {e}");
            Status::unauthenticated(e.to_string())
        })?;
        let request = request.into_inner();
        let asked = u64::try_from(request.validity_duration).unwrap_or(0);
        let ttl = match asked {
            0 => self.0.max_ttl,
            seconds => Duration::from_secs(seconds).min(self.0.max_ttl),
        };
        let identity = self.0.clone();
        let csr = request.csr;
        let who = caller.clone();
        // Signing is CPU work: off the runtime's threads.
        let signed = tokio::task::spawn_blocking(move || identity.ca.sign(&csr, &who, ttl))
            .await
            .map_err(|_| Status::internal("signing failed"))?;
        match signed {
            Ok(issued) => {
                tracing::info!(identity = %caller, ?peer, ttl = ?ttl, "certificate issued");
                Ok(Response::new(IstioCertificateResponse {
                    cert_chain: issued.chain,
                }))
            }
            Err(error @ CaError::NotYours { .. }) => {
                tracing::warn!(identity = %caller, ?peer, "certificate request refused: {error}");
                Err(Status::permission_denied(error.to_string()))
            }
            Err(error) => {
                tracing::warn!(identity = %caller, ?peer, "certificate request refused: {error}");
                Err(Status::invalid_argument(error.to_string()))
            }
        }
    }
}
