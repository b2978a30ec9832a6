//! Workload identity (docs/security.md): SPIFFE ids, the certificate authority that signs
//! workload certificates, and the key and signing request a proxy makes for its own.

pub mod ca;
pub mod pem;
pub mod spiffe;
mod workload;

pub use ca::{Ca, CaError, Issued, WORKLOAD_TTL};
pub use spiffe::{DEFAULT_TRUST_DOMAIN, SpiffeId, SpiffeIdError};
pub use workload::{WorkloadKey, new_workload_key};

#[cfg(test)]
mod tests;
