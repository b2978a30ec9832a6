//! `extensions.istio.io`: `WasmPlugin`, a WebAssembly module the proxies of selected workloads
//! load as a filter: where it is fetched from, how it is verified, where in the filter chain it
//! runs and what configuration it is given.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::resource::Spec;
use crate::security::{url, validate_attachment};
use crate::types::{Opaque, PolicyTargetReference, Port, WorkloadSelector};
use crate::validate::{Validate, Validator};

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WasmPlugin {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<PolicyTargetReference>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_refs: Vec<PolicyTargetReference>,
    /// Where the module is: `oci://`, `https://`, `http://`, `file://`, or an image reference
    /// without a scheme (read as OCI).
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,
    /// A Secret (in the plugin's namespace) holding registry credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_key: Option<String>,
    /// Handed to the plugin as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin_config: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<PluginPhase>,
    /// Order among plugins of the same phase: higher runs first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_strategy: Option<FailStrategy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_config: Option<VmConfig>,
    #[serde(rename = "match", default, skip_serializing_if = "Vec::is_empty")]
    pub match_: Vec<TrafficSelector>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<PluginType>,
}

/// Istio's `PullPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PullPolicy {
    #[serde(rename = "UNSPECIFIED_POLICY")]
    Unspecified,
    IfNotPresent,
    Always,
}

/// Istio's `PluginPhase`: where in the filter chain the plugin runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PluginPhase {
    /// At the end of the chain, before the router.
    #[serde(rename = "UNSPECIFIED_PHASE")]
    Unspecified,
    #[serde(rename = "AUTHN")]
    Authn,
    #[serde(rename = "AUTHZ")]
    Authz,
    #[serde(rename = "STATS")]
    Stats,
}

/// Istio's `FailStrategy`: what happens when the plugin cannot be loaded or fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FailStrategy {
    FailClose,
    FailOpen,
    FailReload,
}

/// Istio's `PluginType`: an HTTP or a network (TCP) filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PluginType {
    #[serde(rename = "UNSPECIFIED_PLUGIN_TYPE")]
    Unspecified,
    #[serde(rename = "HTTP")]
    Http,
    #[serde(rename = "NETWORK")]
    Network,
}

/// Istio's `VmConfig`: the plugin's virtual machine.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VmConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
}

/// Istio's `EnvVar`: an environment variable the plugin sees.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    pub name: String,
    /// INLINE when not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<EnvValueSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// Istio's `EnvValueSource`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EnvValueSource {
    /// The value is given in `value`.
    #[default]
    Inline,
    /// The value is the proxy's own environment variable of that name.
    Host,
}

/// Istio's `WasmPlugin.TrafficSelector`: which traffic the plugin sees.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<WorkloadMode>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortSelector>,
}

/// Istio's `type.v1beta1.PortSelector`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortSelector {
    pub number: Port,
}

/// Istio's `type.v1beta1.WorkloadMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WorkloadMode {
    /// Both sides.
    #[default]
    Undefined,
    Client,
    Server,
    ClientAndServer,
}

/// Schemes a module may be fetched with.
const URL_SCHEMES: [&str; 4] = ["http", "https", "file", "oci"];
/// Limits from the CRD.
const MAX_PULL_SECRET: usize = 253;
const MAX_PLUGIN_NAME: usize = 256;
const MAX_ENV: usize = 256;
const MAX_ENV_NAME: usize = 256;
const MAX_ENV_VALUE: usize = 2048;

impl Spec for WasmPlugin {}

impl Validate for WasmPlugin {
    fn validate(&self, v: &mut Validator) {
        validate_attachment(
            v,
            self.selector.as_ref(),
            self.target_ref.as_ref(),
            &self.target_refs,
        );
        v.at("url", |v| check_url(&self.url, v));
        if let Some(sha) = self.sha256.as_deref().filter(|s| !s.is_empty())
            && (sha.len() != 64
                || !sha
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        {
            v.error_at(
                "sha256",
                "must be 64 lowercase hexadecimal characters (a SHA-256 digest)",
            );
        }
        check_length(
            v,
            "imagePullSecret",
            self.image_pull_secret.as_deref(),
            MAX_PULL_SECRET,
        );
        check_length(
            v,
            "pluginName",
            self.plugin_name.as_deref(),
            MAX_PLUGIN_NAME,
        );
        if self
            .plugin_config
            .as_ref()
            .is_some_and(|c| !c.is_object() && !c.is_null())
        {
            v.error_at(
                "pluginConfig",
                "must be a mapping; it is handed to the plugin as JSON",
            );
        }
        v.nested("vmConfig", &self.vm_config);
    }
}

fn check_url(text: &str, v: &mut Validator) {
    if text.is_empty() {
        return v.error("must not be empty");
    }
    // Without a scheme the URL is an image reference (`ghcr.io/org/plugin:1.0`), fetched with OCI.
    let with_scheme = if url::has_scheme(text) {
        text.to_owned()
    } else {
        format!("oci://{text}")
    };
    match url::parse(&with_scheme) {
        Err(_) if !url::has_scheme(text) => v.error(format!("{text:?} is not a valid URL or image reference")),
        Err(e) => v.error(e),
        Ok(parsed) if !URL_SCHEMES.contains(&parsed.scheme.as_str()) => v.error(format!(
            "unsupported scheme {:?}: use oci://, https://, http:// or file:// (or an image reference without a scheme)",
            parsed.scheme
        )),
        Ok(parsed) if parsed.scheme != "file" && parsed.host.is_empty() => v.error(format!("{text:?} has no host")),
        Ok(_) => {}
    }
}

fn check_length(v: &mut Validator, key: &str, value: Option<&str>, max: usize) {
    match value {
        Some("") => v.error_at(key, "must not be empty"),
        Some(value) if value.len() > max => {
            v.error_at(key, format!("must be at most {max} characters long"))
        }
        _ => {}
    }
}

impl Validate for VmConfig {
    fn validate(&self, v: &mut Validator) {
        if self.env.len() > MAX_ENV {
            v.error_at("env", format!("at most {MAX_ENV} variables may be listed"));
        }
        let mut names = HashSet::new();
        v.each("env", &self.env, |v, env| {
            if env.name.is_empty() {
                v.error_at("name", "must not be empty");
            } else if env.name.len() > MAX_ENV_NAME {
                v.error_at("name", format!("must be at most {MAX_ENV_NAME} characters long"));
            } else if !names.insert(env.name.as_str()) {
                v.error_at("name", format!("{:?} is set more than once", env.name));
            }
            if let Some(value) = &env.value {
                if env.value_from == Some(EnvValueSource::Host) {
                    v.error_at("value", "may only be set when valueFrom is INLINE (a HOST variable takes the proxy's value)");
                } else if value.len() > MAX_ENV_VALUE {
                    v.error_at("value", format!("must be at most {MAX_ENV_VALUE} characters long"));
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::{EnvValueSource, PluginPhase};
    use crate::{LoadOptions, Resource, load_text};

    fn plugin(spec: &str) -> String {
        format!(
            "apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata: {{name: p, namespace: istio-system}}\nspec:\n{spec}"
        )
    }

    fn issues(text: &str) -> Vec<String> {
        let load = load_text("t.yaml", text, &LoadOptions::default());
        let rejected = load.rejected.iter().flat_map(|r| r.issues.iter());
        let warnings = load.loaded.iter().flat_map(|l| l.warnings.iter());
        rejected.chain(warnings).map(|i| i.to_string()).collect()
    }

    #[test]
    fn loads_a_full_plugin() {
        let text = plugin(
            "  selector:
    matchLabels: {istio: ingressgateway}
  url: oci://ghcr.io/istio-ecosystem/wasm-extensions/basic_auth:1.12.0
  sha256: 9e6a5b9b8d6f4c0f4d1b0e8d4a4c5e7b2f8a1d3c6e9b0a7f5d2c8e1b4a6f3d09
  imagePullPolicy: IfNotPresent
  imagePullSecret: registry-creds
  verificationKey: key
  phase: AUTHN
  priority: -10
  failStrategy: FAIL_OPEN
  type: HTTP
  pluginName: basic_auth
  pluginConfig:
    basic_auth_rules:
    - prefix: /productpage
      request_methods: [GET, POST]
      credentials: ['ok:test']
  vmConfig:
    env:
    - name: POD_NAME
      valueFrom: HOST
    - name: TRUST_DOMAIN
      value: cluster.local
  match:
  - mode: SERVER
    ports: [{number: 8080}]
",
        );
        assert_eq!(issues(&text), Vec::<String>::new());
        let load = load_text("t.yaml", &text, &LoadOptions::default());
        let Resource::WasmPlugin(p) = &load.loaded[0].resource else {
            panic!()
        };
        assert_eq!(p.spec.phase, Some(PluginPhase::Authn));
        assert_eq!(p.spec.priority, Some(-10));
        assert_eq!(
            p.spec.vm_config.as_ref().unwrap().env[0].value_from,
            Some(EnvValueSource::Host)
        );
        assert!(p.spec.plugin_config.as_ref().unwrap()["basic_auth_rules"].is_array());
    }

    #[test]
    fn urls_take_the_supported_schemes_or_an_image_reference() {
        for ok in [
            "oci://ghcr.io/x/y:1",
            "https://example.com/p.wasm",
            "http://example.com/p.wasm",
            "file:///opt/p.wasm",
            "ghcr.io/x/y:1.0",
            "localhost:5000/plugin",
        ] {
            assert_eq!(
                issues(&plugin(&format!("  url: '{ok}'\n"))),
                Vec::<String>::new(),
                "{ok}"
            );
        }
        assert_eq!(
            issues(&plugin("  url: ftp://example.com/p.wasm\n")),
            vec![
                "spec.url: unsupported scheme \"ftp\": use oci://, https://, http:// or file:// (or an image reference without a scheme)"
            ]
        );
        assert_eq!(
            issues(&plugin("  url: 'registry:abc/plugin'\n")),
            vec!["spec.url: \"registry:abc/plugin\" is not a valid URL or image reference"]
        );
        assert_eq!(
            issues(&plugin("  url: ''\n")),
            vec!["spec.url: must not be empty"]
        );
        assert_eq!(
            issues(&plugin("  sha256: abc\n")),
            vec!["spec.url: is required"]
        );
    }

    #[test]
    fn digests_names_and_config_are_checked() {
        let text = plugin(&format!(
            "  url: oci://ghcr.io/x:1\n  sha256: {}\n  imagePullSecret: ''\n  pluginName: {}\n  pluginConfig: [1]\n",
            "A".repeat(64),
            "n".repeat(257)
        ));
        assert_eq!(
            issues(&text),
            vec![
                "spec.sha256: must be 64 lowercase hexadecimal characters (a SHA-256 digest)",
                "spec.imagePullSecret: must not be empty",
                "spec.pluginName: must be at most 256 characters long",
                "spec.pluginConfig: must be a mapping; it is handed to the plugin as JSON",
            ]
        );
    }

    #[test]
    fn env_values_only_inline_and_names_unique() {
        let text = plugin(
            "  url: oci://ghcr.io/x:1
  vmConfig:
    env:
    - {name: A, valueFrom: HOST, value: x}
    - {name: A, value: y}
    - {name: ''}
",
        );
        assert_eq!(
            issues(&text),
            vec![
                "spec.vmConfig.env[0].value: may only be set when valueFrom is INLINE (a HOST variable takes the proxy's value)",
                "spec.vmConfig.env[1].name: \"A\" is set more than once",
                "spec.vmConfig.env[2].name: must not be empty",
            ]
        );
    }

    #[test]
    fn ports_and_enums_are_refused_when_read() {
        let text =
            plugin("  url: oci://ghcr.io/x:1\n  phase: AUTH\n  match: [{ports: [{number: 0}]}]\n");
        let found = issues(&text);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0].starts_with("spec.match[0].ports[0].number: port must be between 1 and 65535"),
            "{found:?}"
        );
        assert!(
            found[1].starts_with("spec.phase: unknown value `AUTH`"),
            "{found:?}"
        );
    }

    #[test]
    fn selector_and_target_refs_exclude_each_other() {
        let text = plugin(
            "  url: oci://ghcr.io/x:1\n  selector: {matchLabels: {app: a}}\n  targetRef: {kind: Gateway, group: gateway.networking.k8s.io, name: gw}\n",
        );
        assert_eq!(
            issues(&text),
            vec!["spec: only one of targetRefs or selector can be set"]
        );
    }
}
