//! A workload's side: a fresh private key, kept in memory, and the signing request for its
//! identity.

use rcgen::{CertificateParams, DistinguishedName, KeyPair, SanType};

use crate::SpiffeId;

/// A workload's private key and the request to certify it.
pub struct WorkloadKey {
    pub key: KeyPair,
    /// The certificate signing request, PEM.
    pub csr: String,
}

impl std::fmt::Debug for WorkloadKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkloadKey").finish_non_exhaustive()
    }
}

/// A new ECDSA P-256 key and a CSR for `id`.
pub fn new_workload_key(id: &SpiffeId) -> Result<WorkloadKey, rcgen::Error> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = vec![SanType::URI(id.uri().try_into()?)];
    let csr = params.serialize_request(&key)?.pem()?;
    Ok(WorkloadKey { key, csr })
}
