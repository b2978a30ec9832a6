//! Workload identity (docs/security.md): SPIFFE ids, the certificate authority that signs
//! workload certificates, the tokens that prove to it who a proxy is, and the key and signing
//! request a proxy makes for its own.

pub mod ca;
pub mod pem;
pub mod spiffe;
pub mod token;
mod workload;

pub use ca::{Ca, CaError, Issued, WORKLOAD_TTL};
pub use spiffe::{DEFAULT_TRUST_DOMAIN, SpiffeId, SpiffeIdError};
pub use token::{TokenError, TokenKey, identity_of};
pub use workload::{WorkloadKey, new_workload_key};

#[cfg(test)]
mod tests;
