//! `Deployment` (apps/v1): a template of pods, the selector that owns them, and how many to run.

use serde::{Deserialize, Serialize};

use super::PodSpec;
use crate::meta::ObjectMeta;
use crate::resource::Spec;
use crate::types::names::check_label_key;
use crate::types::{LabelSelector, Opaque, format_selector, validate_labels};
use crate::validate::{Validate, Validator};

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentSpec {
    /// How many pods to run; 1 when not written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// The pods the deployment owns; it must select the template's labels. Required: read as
    /// empty when missing, and reported by validation with the other rules.
    #[serde(default)]
    pub selector: LabelSelector,
    /// Required, like `selector`.
    #[serde(default)]
    pub template: PodTemplateSpec,

    // Fields the mesh does not read, kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ready_seconds: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline_seconds: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<Opaque>,
}

/// The pods a deployment creates: their metadata (labels, annotations) and spec.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplateSpec {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: PodSpec,
}

impl Spec for DeploymentSpec {}

impl Validate for DeploymentSpec {
    fn validate(&self, v: &mut Validator) {
        if let Some(replicas) = self.replicas.filter(|r| *r < 0) {
            v.error_at("replicas", format!("cannot be negative (got {replicas})"));
        }
        let selector = &self.selector;
        let no_selector = selector.match_labels.is_empty() && selector.match_expressions.is_empty();
        if no_selector {
            v.error_at(
                "selector",
                "is required: a deployment selects its pods with matchLabels or matchExpressions",
            );
        } else {
            v.nested("selector", selector);
        }
        v.at("template", |v| {
            let labels = &self.template.metadata.labels;
            v.at("metadata", |v| check_template_meta(&self.template.metadata, v));
            if !no_selector && !selector.matches(labels) {
                let pods = if labels.is_empty() { "no labels".to_owned() } else { format_selector(labels) };
                let message = format!(
                    "selector does not match template labels: the template's pods ({pods}) would not belong to the deployment"
                );
                v.at("metadata", |v| v.error_at("labels", message));
            }
            v.nested("spec", &self.template.spec);
            let restart = self.template.spec.restart_policy.as_ref().and_then(|p| p.as_str());
            if restart.is_some_and(|p| p != "Always") {
                v.at("spec", |v| v.error_at("restartPolicy", "a deployment's pods must use Always"));
            }
        });
    }
}

/// A template's metadata has no name of its own: only its labels and annotations are checked.
fn check_template_meta(meta: &ObjectMeta, v: &mut Validator) {
    v.at("labels", |v| validate_labels(&meta.labels, v));
    v.at("annotations", |v| {
        for key in meta.annotations.keys() {
            if let Err(e) = check_label_key(key) {
                v.error_at(key, e.replace("label key", "annotation key"));
            }
        }
    });
}
