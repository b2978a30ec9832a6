//! `ProxyConfig`: per-workload proxy settings (worker threads, environment, image flavour) that
//! override the mesh-wide defaults, for the workloads it selects (or, with no selector, for its
//! namespace or the whole mesh).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::resource::Spec;
use crate::types::WorkloadSelector;
use crate::validate::{Validate, Validator};

/// Longest environment variable value the schema accepts.
const MAX_ENV_VALUE_LEN: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    /// Worker threads; 0 means one per CPU core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<i32>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment_variables: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ProxyImage>,
}

/// The flavour of the proxy image, such as `default`, `debug` or `distroless`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyImage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_type: Option<String>,
}

impl Spec for ProxyConfig {}

impl Validate for ProxyConfig {
    fn validate(&self, v: &mut Validator) {
        if let Some(selector) = &self.selector {
            v.nested("selector", selector);
            if selector.match_labels.is_empty() {
                v.warn_at(
                    "selector",
                    "the selector has no labels, so it selects every workload in the namespace",
                );
            }
        }
        if let Some(concurrency) = self.concurrency.filter(|c| *c < 0) {
            v.error_at(
                "concurrency",
                format!(
                    "must not be negative (got {concurrency}); use 0 for one thread per CPU core"
                ),
            );
        }
        v.at("environmentVariables", |v| {
            for (name, value) in &self.environment_variables {
                if value.len() > MAX_ENV_VALUE_LEN {
                    v.error_at(
                        name,
                        format!(
                            "may be at most {MAX_ENV_VALUE_LEN} characters long (it has {})",
                            value.len()
                        ),
                    );
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::issues;
    use crate::{LoadOptions, load_text};

    const FULL: &str = "apiVersion: networking.istio.io/v1beta1
kind: ProxyConfig
metadata:
  name: full
spec:
  concurrency: 1
  selector:
    matchLabels:
      foo: bar
  image:
    imageType: distroless
  environmentVariables:
    foo: baz
";

    #[test]
    fn a_full_example_loads() {
        let load = load_text("t.yaml", FULL, &LoadOptions::default());
        assert!(load.is_clean(), "{:?}", load.rejected);
        assert!(
            load.loaded[0].warnings.is_empty(),
            "{:?}",
            load.loaded[0].warnings
        );
        let crate::Resource::ProxyConfig(object) = &load.loaded[0].resource else {
            panic!()
        };
        assert_eq!(object.spec.concurrency, Some(1));
        assert_eq!(
            object
                .spec
                .image
                .as_ref()
                .and_then(|i| i.image_type.as_deref()),
            Some("distroless")
        );
    }

    #[test]
    fn concurrency_cannot_be_negative() {
        let text = FULL.replace("concurrency: 1", "concurrency: -1");
        assert_eq!(
            issues(&text),
            vec![
                "spec.concurrency: must not be negative (got -1); use 0 for one thread per CPU core"
            ]
        );
        let text = FULL.replace("concurrency: 1", "concurrency: null");
        assert!(issues(&text).is_empty());
    }

    #[test]
    fn selector_rules() {
        let text = FULL.replace("foo: bar", "\"\": bar");
        let found = issues(&text);
        assert!(
            found
                .iter()
                .any(|i| i.starts_with("spec.selector.matchLabels[\"\"]")
                    || i.starts_with("spec.selector.matchLabels.")),
            "{found:?}"
        );
        let text = FULL.replace("foo: bar", "foo: \"b*\"");
        assert_eq!(
            issues(&text),
            vec!["spec.selector.matchLabels.foo: wildcard not allowed in label value match"]
        );
        let text = FULL.replace(
            "    matchLabels:\n      foo: bar\n",
            "    matchLabels: {}\n",
        );
        assert_eq!(
            issues(&text),
            vec![
                "warning spec.selector: the selector has no labels, so it selects every workload in the namespace"
            ]
        );
    }

    #[test]
    fn long_environment_values_are_refused() {
        let text = FULL.replace("foo: baz", &format!("foo: {}", "x".repeat(2049)));
        assert_eq!(
            issues(&text),
            vec![
                "spec.environmentVariables.foo: may be at most 2048 characters long (it has 2049)"
            ]
        );
    }
}
