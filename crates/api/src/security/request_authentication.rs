//! `RequestAuthentication`: the JSON Web Tokens a workload accepts (issuers, key sets, where the
//! token is found, which claims are passed on), checked the way the mesh's admission webhook and
//! CRD rules check them.

use std::collections::HashSet;
use std::time::Duration as StdDuration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{url, validate_attachment};
use crate::resource::Spec;
use crate::types::names::check_header_token;
use crate::types::{Duration, PolicyTargetReference, WorkloadSelector};
use crate::validate::{Validate, Validator};

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestAuthentication {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<PolicyTargetReference>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_refs: Vec<PolicyTargetReference>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jwt_rules: Vec<JwtRule>,
}

/// Istio's `JWTRule`: one issuer whose tokens are verified.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JwtRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// The protobuf field name of `jwksUri`, which the CRD accepts as well.
    #[serde(rename = "jwks_uri", default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri_field_name: Option<String>,
    /// An inline JSON Web Key Set, as JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_headers: Vec<JwtHeader>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_params: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_cookies: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_payload_to_header: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_original_token: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output_claim_to_headers: Vec<ClaimToHeader>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub space_delimited_claims: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence: Option<JwtPresence>,
    /// How long fetching the key set from `jwksUri` may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
}

/// Istio's `JWTHeader`: a header the token is read from.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JwtHeader {
    pub name: String,
    /// Stripped from the header's value before the token is decoded (such as `"Bearer "`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
}

/// Istio's `ClaimToHeader`: a claim of a verified token copied into a request header.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimToHeader {
    pub header: String,
    pub claim: String,
}

/// Istio's `JWTRule.Presence`: whether a request must carry a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JwtPresence {
    Optional,
    Required,
}

impl JwtRule {
    /// The key set's address, whichever of its two spellings was used.
    pub fn jwks_address(&self) -> Option<&str> {
        self.jwks_uri
            .as_deref()
            .or(self.jwks_uri_field_name.as_deref())
    }
}

/// The longest `jwksUri` the CRD accepts.
const MAX_JWKS_URI: usize = 2048;
/// The most `spaceDelimitedClaims` the CRD accepts.
const MAX_SPACE_DELIMITED_CLAIMS: usize = 64;
/// The most `jwtRules` the CRD accepts.
const MAX_JWT_RULES: usize = 4096;

impl Spec for RequestAuthentication {}

impl Validate for RequestAuthentication {
    fn validate(&self, v: &mut Validator) {
        validate_attachment(
            v,
            self.selector.as_ref(),
            self.target_ref.as_ref(),
            &self.target_refs,
        );
        if self.jwt_rules.len() > MAX_JWT_RULES {
            v.error_at(
                "jwtRules",
                format!("at most {MAX_JWT_RULES} rules may be listed"),
            );
        }
        v.nested("jwtRules", &self.jwt_rules);
    }
}

impl Validate for JwtRule {
    fn validate(&self, v: &mut Validator) {
        match self.issuer.as_deref() {
            Some("") => v.error_at("issuer", "must not be empty"),
            None if self.jwks_address().is_none() => v.error_at(
                "issuer",
                "is required (or at least jwksUri, to accept tokens of any issuer)",
            ),
            _ => {}
        }
        each_non_empty(v, "audiences", &self.audiences);
        v.at_most_one(&[
            ("jwksUri", self.jwks_uri.is_some()),
            ("jwks_uri", self.jwks_uri_field_name.is_some()),
            ("jwks", self.jwks.is_some()),
        ]);
        for (key, address) in [
            ("jwksUri", &self.jwks_uri),
            ("jwks_uri", &self.jwks_uri_field_name),
        ] {
            if let Some(address) = address {
                v.at(key, |v| check_jwks_uri(address, v));
            }
        }
        if let Some(jwks) = self.jwks.as_deref().filter(|j| !j.is_empty()) {
            v.at("jwks", |v| check_jwks(jwks, v));
        }
        v.each("fromHeaders", &self.from_headers, |v, header| {
            if header.name.is_empty() {
                v.error_at("name", "must not be empty");
            } else if let Err(e) = check_header_token(&header.name) {
                v.error_at("name", e);
            }
        });
        each_non_empty(v, "fromParams", &self.from_params);
        each_non_empty(v, "fromCookies", &self.from_cookies);
        if let Some(header) = self
            .output_payload_to_header
            .as_deref()
            .filter(|h| !h.is_empty())
            && let Err(e) = check_header_token(header)
        {
            v.error_at("outputPayloadToHeader", e);
        }
        let mut headers = HashSet::new();
        v.each(
            "outputClaimToHeaders",
            &self.output_claim_to_headers,
            |v, copy| {
                if copy.header.is_empty() {
                    v.error_at("header", "must not be empty");
                } else if !copy
                    .header
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    v.error_at(
                        "header",
                        format!(
                            "{:?} is not allowed: use only letters, digits, '-' and '_'",
                            copy.header
                        ),
                    );
                } else if !headers.insert(copy.header.to_ascii_lowercase()) {
                    v.warn_at(
                        "header",
                        format!(
                            "header {:?} is written more than once; the last claim wins",
                            copy.header
                        ),
                    );
                }
                if copy.claim.is_empty() {
                    v.error_at("claim", "must not be empty");
                }
            },
        );
        if self.space_delimited_claims.len() > MAX_SPACE_DELIMITED_CLAIMS {
            v.error_at(
                "spaceDelimitedClaims",
                format!("at most {MAX_SPACE_DELIMITED_CLAIMS} claims may be listed"),
            );
        }
        each_non_empty(v, "spaceDelimitedClaims", &self.space_delimited_claims);
        if let Some(timeout) = self.timeout {
            let timeout = timeout.as_std();
            v.min_duration("timeout", Some(timeout), StdDuration::from_millis(1));
            if timeout >= StdDuration::from_millis(1) && timeout.subsec_nanos() % 1_000_000 != 0 {
                v.error_at("timeout", "only whole milliseconds are supported");
            }
        }
    }
}

fn each_non_empty(v: &mut Validator, key: &str, items: &[String]) {
    v.each(key, items, |v, item| {
        if item.is_empty() {
            v.error("must not be empty");
        }
    });
}

fn check_jwks_uri(address: &str, v: &mut Validator) {
    if address.is_empty() {
        return v.error("must not be empty");
    }
    if address.len() > MAX_JWKS_URI {
        v.error(format!("must be at most {MAX_JWKS_URI} characters long"));
    }
    match url::parse(address) {
        Err(e) => v.error(e),
        Ok(parsed) if !matches!(parsed.scheme.as_str(), "http" | "https") => v.error(format!(
            "the scheme must be http or https, not {:?}",
            parsed.scheme
        )),
        Ok(parsed) if parsed.host.is_empty() => v.error(format!("{address:?} has no host")),
        Ok(_) => {}
    }
}

/// Checks an inline key set: JSON with a `keys` list of well-formed public keys. Private key
/// material is a warning: it works (the public half is used) but should not be in configuration.
fn check_jwks(text: &str, v: &mut Validator) {
    let set: Value = match serde_json::from_str(text) {
        Ok(set) => set,
        Err(e) => return v.error(format!("is not valid JSON: {e}")),
    };
    let Some(keys) = set.get("keys").and_then(Value::as_array) else {
        return v.error("must be a JSON Web Key Set: a JSON object with a \"keys\" list");
    };
    if keys.is_empty() {
        v.warn("the key set has no keys, so no token can be verified");
    }
    for (index, key) in keys.iter().enumerate() {
        match check_jwk(key) {
            Err(e) => v.error(format!("key {index}: {e}")),
            Ok(true) => v.warn(format!(
                "key {index} holds private key material; only public keys are needed to verify tokens, remove the private parts"
            )),
            Ok(false) => {}
        }
    }
}

/// Checks one JSON Web Key; returns whether it holds private (or symmetric) key material.
fn check_jwk(key: &Value) -> Result<bool, String> {
    let Some(key) = key.as_object() else {
        return Err("a key must be a JSON object".into());
    };
    let Some(kty) = key.get("kty").and_then(Value::as_str) else {
        return Err("a key needs a \"kty\" (key type)".into());
    };
    let needed: &[&str] = match kty {
        "RSA" => &["n", "e"],
        "EC" => &["crv", "x", "y"],
        "OKP" => &["crv", "x"],
        "oct" => &["k"],
        other => {
            return Err(format!(
                "unsupported key type {other:?} (use RSA, EC, OKP or oct)"
            ));
        }
    };
    for field in needed {
        if !key.get(*field).is_some_and(Value::is_string) {
            return Err(format!("a {kty} key needs the {field:?} parameter"));
        }
    }
    Ok(kty == "oct" || key.contains_key("d"))
}

#[cfg(test)]
mod tests;
