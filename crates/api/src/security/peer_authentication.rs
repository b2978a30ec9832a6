//! `PeerAuthentication`: whether a workload's inbound connections must, may or must not use
//! mutual TLS, for the whole workload and per port.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::validate_attachment;
use crate::resource::Spec;
use crate::types::{Port, WorkloadSelector};
use crate::validate::{Validate, Validator};

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerAuthentication {
    /// The workloads the policy applies to; without it, the whole namespace (or the whole mesh
    /// from the root namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtls: Option<MutualTls>,
    /// Per-port overrides, keyed by the workload's port number as written.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub port_level_mtls: BTreeMap<String, MutualTls>,
}

/// Istio's `PeerAuthentication.MutualTLS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MutualTls {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<MutualTlsMode>,
}

/// Istio's `PeerAuthentication.MutualTLS.Mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MutualTlsMode {
    /// Inherit the mode of the parent policy (namespace, then mesh).
    #[default]
    Unset,
    /// Plain text only.
    Disable,
    /// Both mutual TLS and plain text.
    Permissive,
    /// Mutual TLS only.
    Strict,
}

impl PeerAuthentication {
    /// The per-port overrides whose keys are valid port numbers.
    pub fn ports(&self) -> impl Iterator<Item = (Port, &MutualTls)> {
        self.port_level_mtls
            .iter()
            .filter_map(|(key, mtls)| Some((parse_port(key).ok()?, mtls)))
    }
}

fn parse_port(key: &str) -> Result<Port, String> {
    let number: u64 = key.parse().map_err(|_| {
        format!("{key:?} is not a port number: keys of portLevelMtls are ports 1-65535")
    })?;
    Port::new(number)
}

impl Spec for PeerAuthentication {}

impl Validate for PeerAuthentication {
    fn validate(&self, v: &mut Validator) {
        validate_attachment(v, self.selector.as_ref(), None, &[]);
        let selects_workloads = self
            .selector
            .as_ref()
            .is_some_and(|s| !s.match_labels.is_empty());
        if !self.port_level_mtls.is_empty() && !selects_workloads {
            v.error_at(
                "portLevelMtls",
                "port-level mTLS needs a selector with matchLabels: namespace- and mesh-wide policies cannot set it",
            );
        }
        v.at("portLevelMtls", |v| {
            for key in self.port_level_mtls.keys() {
                if let Err(e) = parse_port(key) {
                    v.error_at(key, e);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::{LoadOptions, Resource, load_text};

    fn issues(text: &str) -> Vec<String> {
        let load = load_text("t.yaml", text, &LoadOptions::default());
        load.rejected
            .iter()
            .flat_map(|r| r.issues.iter().map(|i| i.to_string()))
            .collect()
    }

    #[test]
    fn loads_a_workload_policy_with_port_overrides() {
        let text = "apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: reviews
  namespace: bookinfo
spec:
  selector:
    matchLabels:
      app: reviews
  mtls:
    mode: STRICT
  portLevelMtls:
    8080:
      mode: PERMISSIVE
    '9090':
      mode: DISABLE
";
        let load = load_text("t.yaml", text, &LoadOptions::default());
        assert!(load.is_clean(), "{:?}", load.rejected);
        let Resource::PeerAuthentication(pa) = &load.loaded[0].resource else {
            panic!()
        };
        let ports: Vec<u16> = pa.spec.ports().map(|(p, _)| p.get()).collect();
        assert_eq!(ports, vec![8080, 9090]);
        assert_eq!(
            pa.spec.mtls.unwrap().mode,
            Some(super::MutualTlsMode::Strict)
        );
    }

    #[test]
    fn port_level_mtls_needs_a_selector_and_real_ports() {
        let text = "apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec:
  mtls: {mode: STRICT}
  portLevelMtls:
    '0': {mode: DISABLE}
    http: {mode: DISABLE}
";
        assert_eq!(
            issues(text),
            vec![
                "spec.portLevelMtls: port-level mTLS needs a selector with matchLabels: namespace- and mesh-wide policies cannot set it",
                "spec.portLevelMtls.0: port must be between 1 and 65535 (got 0)",
                "spec.portLevelMtls.http: \"http\" is not a port number: keys of portLevelMtls are ports 1-65535",
            ]
        );
    }

    #[test]
    fn modes_are_the_crd_values_and_dry_run_is_refused() {
        let text = "apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  annotations: {istio.io/dry-run: 'true'}
spec:
  mtls: {mode: strict}
";
        let found = issues(text);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("spec.mtls.mode: unknown value `strict`"),
            "{found:?}"
        );
        let fixed = text.replace("strict", "STRICT");
        assert_eq!(
            issues(&fixed),
            vec![
                "metadata.annotations[\"istio.io/dry-run\"]: dry-run is only supported on AuthorizationPolicy, not on PeerAuthentication; remove the annotation"
            ]
        );
    }

    #[test]
    fn an_empty_selector_is_a_warning() {
        let text = "apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default}
spec:
  selector: {}
  mtls: {mode: UNSET}
";
        let load = load_text("t.yaml", text, &LoadOptions::default());
        assert!(load.is_clean());
        assert_eq!(load.loaded[0].warnings[0].path.to_string(), "spec.selector");
        assert!(
            load.loaded[0].warnings[0]
                .message
                .contains("selects every workload")
        );
    }
}
