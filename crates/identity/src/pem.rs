//! PEM blocks and what the CA reads from certificates.

use x509_parser::prelude::FromDer;

/// One PEM block: its text (kept as written, to hand on) and its DER contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pem {
    pub text: String,
    pub der: Vec<u8>,
}

impl Pem {
    /// Every block labelled `label` in `text`, in order; an error when there is none or one is
    /// broken.
    pub fn all(text: &str, label: &str) -> Result<Vec<Self>, String> {
        let begin = format!("-----BEGIN {label}-----");
        let end = format!("-----END {label}-----");
        let mut blocks = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find(&begin) {
            let after = &rest[start..];
            let stop = after
                .find(&end)
                .ok_or_else(|| format!("a {label} block has no end line"))?;
            let block = &after[..stop + end.len()];
            let (_, pem) = x509_parser::pem::parse_x509_pem(block.as_bytes())
                .map_err(|e| format!("a {label} block is not valid PEM: {e}"))?;
            blocks.push(Self {
                text: format!("{block}\n"),
                der: pem.contents,
            });
            rest = &after[stop + end.len()..];
        }
        if blocks.is_empty() {
            return Err(format!("holds no {label} block"));
        }
        Ok(blocks)
    }

    /// The one block labelled `label` in `text`.
    pub fn one(text: &str, label: &str) -> Result<Self, String> {
        let mut all = Self::all(text, label)?;
        if all.len() > 1 {
            return Err(format!("holds {} {label} blocks, not one", all.len()));
        }
        Ok(all.remove(0))
    }
}

/// What the CA and proxies need of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    pub is_ca: bool,
    /// The subject public key's bits.
    pub public_key: Vec<u8>,
    /// URI subject alternative names.
    pub uris: Vec<String>,
    /// Seconds since the Unix epoch.
    pub not_before: i64,
    pub not_after: i64,
}

/// Reads a DER certificate.
pub fn certificate(der: &[u8]) -> Result<CertificateInfo, String> {
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der)
        .map_err(|e| format!("not a valid certificate: {e}"))?;
    let uris = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                x509_parser::extensions::GeneralName::URI(uri) => Some((*uri).to_owned()),
                _ => None,
            })
            .collect(),
        Ok(None) => Vec::new(),
        Err(e) => return Err(format!("its subject alternative names are not valid: {e}")),
    };
    Ok(CertificateInfo {
        is_ca: cert.is_ca(),
        public_key: cert.public_key().subject_public_key.data.to_vec(),
        uris,
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
    })
}
