//! Bootstrap tokens: what a proxy shows the CA to be certified as its workload's identity.
//!
//! Whoever starts a proxy (the local runner, an operator with `trellis token`) asks the control
//! plane for a token bound to the workload's identity and hands it to the proxy
//! (`--token-file`, `TRELLIS_TOKEN`). A token is `trellis1.<payload>.<mac>`: the payload is the
//! SPIFFE id and the expiry (Unix seconds), the MAC an HMAC-SHA256 of it under the control
//! plane's token key; both hex. Only the control plane holds the key, so only it makes and
//! checks tokens.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use ring::hmac;

use crate::SpiffeId;

const PREFIX: &str = "trellis1";

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not of the form trellis1.<payload>.<mac>")]
    Malformed,
    #[error("the token was not issued by this control plane")]
    Forged,
    #[error("the token for {0} has expired")]
    Expired(SpiffeId),
}

/// The key tokens are signed with.
pub struct TokenKey {
    bytes: [u8; 32],
    key: hmac::Key,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKey").finish_non_exhaustive()
    }
}

impl TokenKey {
    /// A new random key, kept in memory only.
    pub fn ephemeral() -> Self {
        Self::from_bytes(crate::ca::random())
    }

    fn from_bytes(bytes: [u8; 32]) -> Self {
        Self {
            bytes,
            key: hmac::Key::new(hmac::HMAC_SHA256, &bytes),
        }
    }

    /// The key in `path` (hex), or a new one written there (mode 0600).
    pub fn load_or_create(path: &Path) -> Result<Self, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let bytes = unhex(text.trim())
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or_else(|| format!("{}: not a 32-byte hex key", path.display()))?;
                Ok(Self::from_bytes(bytes))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::ephemeral();
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                file.write_all(hex(&key.bytes).as_bytes())
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                Ok(key)
            }
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// A token for `id`, valid for `ttl`.
    pub fn issue(&self, id: &SpiffeId, ttl: Duration) -> String {
        let expiry = (SystemTime::now() + ttl)
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let payload = hex(format!("{id}|{expiry}").as_bytes());
        let mac = hmac::sign(&self.key, payload.as_bytes());
        format!("{PREFIX}.{payload}.{}", hex(mac.as_ref()))
    }

    /// The identity `token` was issued for, if this key issued it and it has not expired.
    pub fn verify(&self, token: &str) -> Result<SpiffeId, TokenError> {
        let mut parts = token.trim().split('.');
        let (Some(PREFIX), Some(payload), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let mac = unhex(mac).ok_or(TokenError::Malformed)?;
        hmac::verify(&self.key, payload.as_bytes(), &mac).map_err(|_| TokenError::Forged)?;
        let text = unhex(payload)
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or(TokenError::Malformed)?;
        let (id, expiry) = text.rsplit_once('|').ok_or(TokenError::Malformed)?;
        let id: SpiffeId = id.parse().map_err(|_| TokenError::Malformed)?;
        let expiry: u64 = expiry.parse().map_err(|_| TokenError::Malformed)?;
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if now >= expiry {
            return Err(TokenError::Expired(id));
        }
        Ok(id)
    }
}

/// The identity a token names, read without checking it (the holder learns what it is; only
/// the control plane can tell whether to believe it).
pub fn identity_of(token: &str) -> Option<SpiffeId> {
    let payload = token.trim().split('.').nth(1)?;
    let text = String::from_utf8(unhex(payload)?).ok()?;
    text.rsplit_once('|')?.0.parse().ok()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_identity_until_it_expires_and_cannot_be_forged() {
        let key = TokenKey::ephemeral();
        let id: SpiffeId = "spiffe://cluster.local/ns/default/sa/reviews"
            .parse()
            .unwrap();
        let token = key.issue(&id, Duration::from_secs(60));
        assert_eq!(key.verify(&token), Ok(id.clone()));
        assert_eq!(identity_of(&token), Some(id.clone()));
        assert_eq!(
            TokenKey::ephemeral().verify(&token),
            Err(TokenError::Forged),
            "another control plane's key"
        );
        // Another identity in the payload, with the same MAC.
        let other: SpiffeId = "spiffe://cluster.local/ns/default/sa/ratings"
            .parse()
            .unwrap();
        let forged_payload = key.issue(&other, Duration::from_secs(60));
        let mac = token.rsplit('.').next().unwrap();
        let payload = forged_payload.split('.').nth(1).unwrap();
        assert_eq!(
            key.verify(&format!("trellis1.{payload}.{mac}")),
            Err(TokenError::Forged)
        );
        assert_eq!(key.verify("Bearer x"), Err(TokenError::Malformed));
        let expired = key.issue(&id, Duration::ZERO);
        assert_eq!(key.verify(&expired), Err(TokenError::Expired(id)));
    }

    #[test]
    fn the_key_is_kept_owner_only() {
        let path = std::env::temp_dir().join(format!("trellis-token-key-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let key = TokenKey::load_or_create(&path).unwrap();
        let id: SpiffeId = "spiffe://cluster.local/ns/a/sa/b".parse().unwrap();
        let token = key.issue(&id, Duration::from_secs(60));
        let again = TokenKey::load_or_create(&path).unwrap();
        assert_eq!(again.verify(&token), Ok(id));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let _ = std::fs::remove_file(&path);
    }
}
