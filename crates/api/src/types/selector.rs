//! Label sets and the ways resources select workloads with them: Istio's `WorkloadSelector`,
//! Gateway-API policy `targetRef`s, and Kubernetes `LabelSelector`s.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::names::{check_label_key, check_label_value};
use crate::validate::{Validate, Validator};

/// Labels, or a label-equality selector: key to value, kept sorted.
pub type Labels = BTreeMap<String, String>;

/// Whether every pair of `selector` is in `labels` (an empty selector matches everything).
pub fn labels_match(selector: &Labels, labels: &Labels) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Formats a selector as Kubernetes prints one: `app=reviews,version=v1`.
pub fn format_selector(selector: &Labels) -> String {
    selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Checks label keys and values as Kubernetes does (for `metadata.labels` and the like).
pub fn validate_labels(labels: &Labels, v: &mut Validator) {
    for (key, value) in labels {
        v.at(key, |v| {
            if let Err(e) = check_label_key(key) {
                v.error(e);
            }
            if let Err(e) = check_label_value(value) {
                v.error(e);
            }
        });
    }
}

/// Checks a selector as Istio does: label rules, and no wildcards in keys or values.
pub fn validate_selector_labels(labels: &Labels, v: &mut Validator) {
    for (key, value) in labels {
        v.at(key, |v| {
            if key.is_empty() {
                v.error("key must not be empty");
            } else if key.contains('*') {
                v.error("wildcard not allowed in label key match");
            } else if let Err(e) = check_label_key(key) {
                v.error(e);
            }
            if value.contains('*') {
                v.error("wildcard not allowed in label value match");
            } else if let Err(e) = check_label_value(value) {
                v.error(e);
            }
        });
    }
}

/// Istio's `WorkloadSelector`: the workloads (pods, workload entries) a resource applies to.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSelector {
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub match_labels: Labels,
}

impl WorkloadSelector {
    pub fn matches(&self, labels: &Labels) -> bool {
        labels_match(&self.match_labels, labels)
    }
}

impl Validate for WorkloadSelector {
    fn validate(&self, v: &mut Validator) {
        v.at("matchLabels", |v| {
            validate_selector_labels(&self.match_labels, v)
        });
    }
}

/// A Gateway-API style reference to the object a policy attaches to.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyTargetReference {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

/// The kinds a policy may target, as `group/kind` (the core group is empty).
const TARGET_KINDS: [(&str, &str); 4] = [
    ("", "Service"),
    ("networking.istio.io", "ServiceEntry"),
    ("gateway.networking.k8s.io", "Gateway"),
    ("gateway.networking.k8s.io", "GatewayClass"),
];

impl Validate for PolicyTargetReference {
    fn validate(&self, v: &mut Validator) {
        if self.kind.is_empty() {
            v.error_at("kind", "is required");
        } else if !TARGET_KINDS.contains(&(self.group.as_str(), self.kind.as_str())) {
            v.error(format!(
                "cannot target {}/{}: supported kinds are core/Service, networking.istio.io/ServiceEntry, gateway.networking.k8s.io/Gateway and gateway.networking.k8s.io/GatewayClass",
                if self.group.is_empty() { "core" } else { &self.group },
                self.kind
            ));
        }
        if self.name.is_empty() {
            v.error_at("name", "is required");
        }
        if !self.namespace.is_empty() {
            v.error_at(
                "namespace",
                "cross namespace referencing is not currently supported",
            );
        }
    }
}

/// Checks that at most one of `selector` and `targetRef(s)` is used, as Istio's policies require.
pub fn validate_policy_attachment(
    v: &mut Validator,
    selector_key: &str,
    selector: Option<&WorkloadSelector>,
    target_ref: Option<&PolicyTargetReference>,
    target_refs: &[PolicyTargetReference],
) {
    if let Some(selector) = selector {
        v.nested(selector_key, selector);
    }
    if target_ref.is_some() && !target_refs.is_empty() {
        v.error("only one of targetRef or targetRefs can be set");
    }
    if selector.is_some() && (target_ref.is_some() || !target_refs.is_empty()) {
        v.error(format!(
            "only one of targetRefs or {selector_key} can be set"
        ));
    }
    if let Some(target_ref) = target_ref {
        v.nested("targetRef", target_ref);
    }
    v.nested("targetRefs", target_refs);
}

/// A Kubernetes `LabelSelector`, as Deployments use.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub match_labels: Labels,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One `matchExpressions` entry.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelectorRequirement {
    pub key: String,
    pub operator: SelectorOperator,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SelectorOperator {
    #[default]
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

impl LabelSelector {
    pub fn matches(&self, labels: &Labels) -> bool {
        labels_match(&self.match_labels, labels)
            && self.match_expressions.iter().all(|r| {
                let value = labels.get(&r.key);
                match r.operator {
                    SelectorOperator::In => value.is_some_and(|v| r.values.contains(v)),
                    SelectorOperator::NotIn => value.is_none_or(|v| !r.values.contains(v)),
                    SelectorOperator::Exists => value.is_some(),
                    SelectorOperator::DoesNotExist => value.is_none(),
                }
            })
    }
}

impl Validate for LabelSelector {
    fn validate(&self, v: &mut Validator) {
        v.at("matchLabels", |v| validate_labels(&self.match_labels, v));
        v.each("matchExpressions", &self.match_expressions, |v, r| {
            if let Err(e) = check_label_key(&r.key) {
                v.error_at("key", e);
            }
            match r.operator {
                SelectorOperator::In | SelectorOperator::NotIn if r.values.is_empty() => {
                    v.error_at("values", "must be set for operators In and NotIn")
                }
                SelectorOperator::Exists | SelectorOperator::DoesNotExist
                    if !r.values.is_empty() =>
                {
                    v.error_at(
                        "values",
                        "must be empty for operators Exists and DoesNotExist",
                    )
                }
                _ => {}
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selectors_match_subsets() {
        let pod = labels(&[("app", "reviews"), ("version", "v1")]);
        assert!(labels_match(&labels(&[("app", "reviews")]), &pod));
        assert!(!labels_match(&labels(&[("app", "ratings")]), &pod));
        assert!(labels_match(&Labels::new(), &pod));
        assert_eq!(format_selector(&pod), "app=reviews,version=v1");
    }

    #[test]
    fn selector_wildcards_are_refused() {
        let mut v = Validator::new();
        validate_selector_labels(&labels(&[("app", "*")]), &mut v);
        assert_eq!(
            v.issues()[0].to_string(),
            "app: wildcard not allowed in label value match"
        );
    }

    #[test]
    fn kubernetes_selectors_evaluate_expressions() {
        let sel: LabelSelector = serde_json::from_str(
            r#"{"matchLabels": {"app": "a"}, "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]}"#,
        )
        .unwrap();
        assert!(sel.matches(&labels(&[("app", "a"), ("tier", "web")])));
        assert!(!sel.matches(&labels(&[("app", "a"), ("tier", "db")])));
    }
}
