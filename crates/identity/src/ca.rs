//! The certificate authority: signs workload certificates for SPIFFE identities.
//!
//! Its signing certificate and key live in a directory laid out as Istio's `cacerts`:
//!
//! | File | Holds |
//! |---|---|
//! | `ca-cert.pem` | the certificate the CA signs with |
//! | `ca-key.pem` | its private key (PKCS #8), mode 0600 |
//! | `root-cert.pem` | the roots workloads trust (the trust bundle): the root of `cert-chain.pem`, and during a root rotation the other one too |
//! | `cert-chain.pem` | `ca-cert.pem`'s chain up to and including its root |
//!
//! An operator may plug in their own (an intermediate under a corporate root): the CA signs
//! with it and hands out its chain. When the directory holds none of these files, the CA makes
//! a self-signed root on first start (ECDSA P-256, ten years) and writes it there, so that
//! restarting keeps the identities issued before valid.
//!
//! A signed chain ends, as Istio's CA answers, with the whole trust bundle (the text of
//! `root-cert.pem`, one certificate or several): that is how workloads learn every root they
//! must trust while the mesh moves from one root to another.
//!
//! Workload certificates: the CSR's key, the SPIFFE id as the only subject alternative name
//! (a URI, critical, with an empty subject, as Istio issues them), client and server use, valid
//! from a minute ago (clock skew) for the lifetime asked. A CSR that names another identity is
//! refused.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use time::OffsetDateTime;

use crate::SpiffeId;
use crate::pem::{self, Pem};

/// How long a workload certificate lives unless asked otherwise.
pub const WORKLOAD_TTL: Duration = Duration::from_secs(24 * 3600);

/// How long a self-signed root lives.
const ROOT_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Why the CA could not start, or would not sign.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("the certificate signing request is not valid: {0}")]
    BadRequest(String),
    #[error("the request asks for {asked}, but the caller is {caller}")]
    NotYours { asked: String, caller: SpiffeId },
    #[error("signing failed: {0}")]
    Signing(#[from] rcgen::Error),
}

/// A signed workload certificate.
#[derive(Debug, Clone)]
pub struct Issued {
    /// PEM: the workload's certificate first, then the CA's chain up to (not including) its
    /// root, and last the trust bundle (every root to trust, one PEM block or several).
    pub chain: Vec<String>,
    pub not_after: SystemTime,
}

/// The certificate authority.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// `cert-chain.pem`'s certificates, in order (its root last).
    chain: Vec<String>,
    /// `root-cert.pem`: the trust bundle, as written.
    bundle: String,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("chain", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl Ca {
    /// A new self-signed root kept in memory only (tests, tools).
    pub fn ephemeral() -> Result<Self, CaError> {
        Self::self_signed()
    }

    /// The CA of `dir`: the certificates there, or a new self-signed root written there.
    pub fn load_or_create(dir: &Path) -> Result<Self, CaError> {
        let file = |name: &str| dir.join(name);
        let present: Vec<&str> = FILES
            .iter()
            .copied()
            .filter(|name| file(name).exists())
            .collect();
        if present.is_empty() {
            let ca = Self::self_signed()?;
            ca.write(dir)?;
            tracing::info!(dir = %dir.display(), "made a self-signed root CA");
            return Ok(ca);
        }
        if let Some(missing) = FILES.iter().find(|name| !present.contains(name)) {
            return Err(CaError::File {
                path: file(missing),
                message: format!(
                    "is missing; a CA directory holds all of {}",
                    FILES.join(", ")
                ),
            });
        }
        let read = |name: &str| -> Result<(PathBuf, String), CaError> {
            let path = file(name);
            let text = std::fs::read_to_string(&path).map_err(|e| CaError::File {
                path: path.clone(),
                message: e.to_string(),
            })?;
            Ok((path, text))
        };
        let (cert_path, cert) = read("ca-cert.pem")?;
        let (key_path, key) = read("ca-key.pem")?;
        let (root_path, root) = read("root-cert.pem")?;
        let (chain_path, chain) = read("cert-chain.pem")?;
        let invalid = |path: &Path, message: String| CaError::File {
            path: path.to_owned(),
            message,
        };
        let key = KeyPair::from_pem(&key).map_err(|e| {
            invalid(
                &key_path,
                format!(
                    "not a PKCS #8 private key ({e}); convert one with \
                     `openssl pkcs8 -topk8 -nocrypt -in ca-key.pem -out ca-key.pem`"
                ),
            )
        })?;
        let signing = Pem::one(&cert, "CERTIFICATE").map_err(|m| invalid(&cert_path, m))?;
        let parsed = pem::certificate(&signing.der).map_err(|m| invalid(&cert_path, m))?;
        if !parsed.is_ca {
            return Err(invalid(
                &cert_path,
                "is not a CA certificate (basic constraints)".into(),
            ));
        }
        if parsed.public_key != key.public_key_raw() {
            return Err(invalid(&key_path, "is not the key of ca-cert.pem".into()));
        }
        let chain = Pem::all(&chain, "CERTIFICATE").map_err(|m| invalid(&chain_path, m))?;
        let roots = Pem::all(&root, "CERTIFICATE").map_err(|m| invalid(&root_path, m))?;
        if chain.first().map(|c| &c.der) != Some(&signing.der) {
            return Err(invalid(
                &chain_path,
                "does not start with ca-cert.pem".into(),
            ));
        }
        if !chain
            .last()
            .is_some_and(|last| roots.iter().any(|root| root.der == last.der))
        {
            return Err(invalid(
                &chain_path,
                "does not end with a certificate of root-cert.pem".into(),
            ));
        }
        let issuer = Issuer::from_ca_cert_der(&signing.der.clone().into(), key)
            .map_err(|e| invalid(&cert_path, e.to_string()))?;
        Ok(Self {
            issuer,
            chain: chain.into_iter().map(|c| c.text).collect(),
            bundle: roots.into_iter().map(|r| r.text).collect(),
        })
    }

    fn self_signed() -> Result<Self, CaError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::OrganizationName, "Trellis");
        name.push(DnType::CommonName, "Trellis root CA");
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(1);
        params.not_after = now + ROOT_TTL;
        params.serial_number = Some(serial());
        let certificate = params.self_signed(&key)?;
        let pem = certificate.pem();
        Ok(Self {
            issuer: Issuer::new(params, key),
            chain: vec![pem.clone()],
            bundle: pem,
        })
    }

    /// Writes a new self-signed CA's files (the key readable by its owner only).
    fn write(&self, dir: &Path) -> Result<(), CaError> {
        let failed = |path: &Path, e: std::io::Error| CaError::File {
            path: path.to_owned(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| failed(dir, e))?;
        let files = [
            ("ca-key.pem", self.issuer.key().serialize_pem(), 0o600),
            ("ca-cert.pem", self.bundle.clone(), 0o644),
            ("root-cert.pem", self.bundle.clone(), 0o644),
            ("cert-chain.pem", self.bundle.clone(), 0o644),
        ];
        for (name, text, mode) in files {
            let path = dir.join(name);
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&path)
                .map_err(|e| failed(&path, e))?;
            file.write_all(text.as_bytes())
                .map_err(|e| failed(&path, e))?;
        }
        Ok(())
    }

    /// The trust bundle (PEM): the roots workloads trust, this CA's among them.
    pub fn root_pem(&self) -> &str {
        &self.bundle
    }

    /// Signs `csr` (PEM) for `caller`, valid for `ttl`.
    pub fn sign(&self, csr: &str, caller: &SpiffeId, ttl: Duration) -> Result<Issued, CaError> {
        let request = CertificateSigningRequestParams::from_pem(csr)
            .map_err(|e| CaError::BadRequest(e.to_string()))?;
        for san in &request.params.subject_alt_names {
            let asked = match san {
                SanType::URI(uri) => uri.as_str().to_owned(),
                other => format!("{other:?}"),
            };
            if asked != caller.uri() {
                return Err(CaError::NotYours {
                    asked,
                    caller: caller.clone(),
                });
            }
        }
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        let uri = caller
            .uri()
            .try_into()
            .map_err(|e: rcgen::Error| CaError::BadRequest(e.to_string()))?;
        params.subject_alt_names = vec![SanType::URI(uri)];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::now_utc();
        let not_after = now + ttl;
        params.not_before = now - time::Duration::minutes(1);
        params.not_after = not_after;
        params.serial_number = Some(serial());
        let signed = CertificateSigningRequestParams {
            params,
            public_key: request.public_key,
        }
        .signed_by(&self.issuer)?;
        let mut chain = vec![signed.pem()];
        chain.extend(self.chain[..self.chain.len() - 1].iter().cloned());
        chain.push(self.bundle.clone());
        Ok(Issued {
            chain,
            not_after: SystemTime::from(not_after),
        })
    }
}

const FILES: [&str; 4] = [
    "ca-cert.pem",
    "ca-key.pem",
    "root-cert.pem",
    "cert-chain.pem",
];

/// A random positive 128-bit serial number.
fn serial() -> SerialNumber {
    let mut bytes: [u8; 16] = random();
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}

/// Bytes from the system's secure random source.
pub(crate) fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .expect("the system's random source works");
    bytes
}
