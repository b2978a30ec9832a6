//! SPIFFE ids: `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`, Istio's form of
//! a workload's identity.

use std::fmt;
use std::str::FromStr;

/// The trust domain when none is configured (Istio's default).
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";

/// A workload identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    pub trust_domain: String,
    pub namespace: String,
    pub service_account: String,
}

/// Why a text is not a SPIFFE id of the form Trellis issues.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{text:?} is not a SPIFFE id spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>: {why}"
)]
pub struct SpiffeIdError {
    text: String,
    why: &'static str,
}

impl SpiffeId {
    /// The identity of `service_account` in `namespace`, checked.
    pub fn new(
        trust_domain: &str,
        namespace: &str,
        service_account: &str,
    ) -> Result<Self, SpiffeIdError> {
        format!("spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}").parse()
    }

    /// The identity as a SAN URI.
    pub fn uri(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "spiffe://{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service_account
        )
    }
}

impl FromStr for SpiffeId {
    type Err = SpiffeIdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = |why| SpiffeIdError {
            text: text.to_owned(),
            why,
        };
        let rest = text
            .strip_prefix("spiffe://")
            .ok_or_else(|| error("it does not start with spiffe://"))?;
        let (trust_domain, path) = rest
            .split_once('/')
            .ok_or_else(|| error("it has no path"))?;
        if trust_domain.is_empty()
            || !trust_domain
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b))
        {
            return Err(error(
                "the trust domain must be lower-case letters, digits, '-', '.' and '_'",
            ));
        }
        let segments: Vec<&str> = path.split('/').collect();
        let [ns, namespace, sa, service_account] = segments[..] else {
            return Err(error(
                "the path is not /ns/<namespace>/sa/<service-account>",
            ));
        };
        if ns != "ns" || sa != "sa" {
            return Err(error(
                "the path is not /ns/<namespace>/sa/<service-account>",
            ));
        }
        let segment = |s: &str| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
        };
        if !segment(namespace) || !segment(service_account) {
            return Err(error(
                "the namespace and service account must be letters, digits, '-', '.' and '_'",
            ));
        }
        Ok(Self {
            trust_domain: trust_domain.to_owned(),
            namespace: namespace.to_owned(),
            service_account: service_account.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_istio_identities() {
        let id: SpiffeId = "spiffe://cluster.local/ns/default/sa/bookinfo-reviews"
            .parse()
            .unwrap();
        assert_eq!(id.namespace, "default");
        assert_eq!(id.service_account, "bookinfo-reviews");
        assert_eq!(
            id.uri(),
            "spiffe://cluster.local/ns/default/sa/bookinfo-reviews"
        );
        assert_eq!(
            SpiffeId::new("cluster.local", "default", "bookinfo-reviews").unwrap(),
            id
        );
    }

    #[test]
    fn refuses_other_forms_saying_why() {
        for (text, why) in [
            (
                "http://cluster.local/ns/a/sa/b",
                "does not start with spiffe://",
            ),
            ("spiffe://cluster.local", "has no path"),
            ("spiffe://Cluster.local/ns/a/sa/b", "trust domain"),
            ("spiffe://cluster.local/ns/a", "the path is not"),
            ("spiffe://cluster.local/sa/b/ns/a", "the path is not"),
            ("spiffe://cluster.local/ns/a/sa/b/c", "the path is not"),
            (
                "spiffe://cluster.local/ns//sa/b",
                "namespace and service account",
            ),
            (
                "spiffe://cluster.local/ns/../sa/b",
                "namespace and service account",
            ),
        ] {
            let error = text.parse::<SpiffeId>().unwrap_err().to_string();
            assert!(error.contains(why), "{text}: {error}");
        }
    }
}
