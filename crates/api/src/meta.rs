//! Kubernetes object metadata (`metadata:`), shared by every kind.

use serde::{Deserialize, Serialize};

use crate::types::names::{check_label_key, check_namespace, check_resource_name};
use crate::types::{Labels, Opaque, validate_labels};
use crate::validate::{Validate, Validator};

/// The namespace a namespaced resource lands in when its file names none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The mesh's root namespace: mesh-wide policies and defaults live here, as in Istio.
pub const ROOT_NAMESPACE: &str = "istio-system";

/// Annotation that runs an AuthorizationPolicy in shadow mode (decisions logged, not enforced);
/// no other kind takes it.
pub const DRY_RUN_ANNOTATION: &str = "istio.io/dry-run";

/// Annotations the mesh sets on configuration it generates itself; a user's configuration may
/// not carry them (they would let it claim another resource's privileges).
pub const RESERVED_ANNOTATIONS: [&str; 3] = [
    "internal.istio.io/webhook-always-reject",
    "internal.istio.io/parents",
    "internal.istio.io/parent-namespace",
];

/// `metadata`: the fields the mesh reads are typed; the ones the API server manages are kept
/// as written.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub annotations: Labels,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_grace_period_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_references: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finalizers: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_fields: Option<Opaque>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_link: Option<String>,
}

impl ObjectMeta {
    /// `namespace/name`, as Istio prints a resource's full name.
    pub fn full_name(&self) -> String {
        if self.namespace.is_empty() {
            self.name.clone()
        } else {
            format!("{}/{}", self.namespace, self.name)
        }
    }
}

impl ObjectMeta {
    /// The annotation rules of Istio's kinds (`kind` is the object's kind name).
    pub fn validate_istio_annotations(&self, kind: &str, v: &mut Validator) {
        v.at("annotations", |v| {
            if kind != "AuthorizationPolicy" && self.annotations.contains_key(DRY_RUN_ANNOTATION) {
                v.error_at(
                    DRY_RUN_ANNOTATION,
                    format!("dry-run is only supported on AuthorizationPolicy, not on {kind}; remove the annotation"),
                );
            }
            for reserved in RESERVED_ANNOTATIONS {
                if self.annotations.contains_key(reserved) {
                    v.error_at(reserved, "this annotation is set by the mesh itself and cannot be used in configuration");
                }
            }
        });
    }
}

impl Validate for ObjectMeta {
    fn validate(&self, v: &mut Validator) {
        if let Err(e) = check_resource_name(&self.name) {
            v.error_at("name", e);
        }
        if !self.namespace.is_empty()
            && let Err(e) = check_namespace(&self.namespace)
        {
            v.error_at("namespace", e);
        }
        v.at("labels", |v| validate_labels(&self.labels, v));
        v.at("annotations", |v| {
            for key in self.annotations.keys() {
                if let Err(e) = check_label_key(key) {
                    v.error_at(key, e.replace("label key", "annotation key"));
                }
            }
        });
    }
}
