//! `Namespace` (core/v1): the mesh reads its labels (injection, ambient mode) and its name.

use serde::{Deserialize, Serialize};

use crate::meta::ObjectMeta;
use crate::resource::Spec;
use crate::types::names::{check_label_key, check_resource_name, is_dns1123_label};
use crate::validate::{Validate, Validator};

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceSpec {
    /// What must be cleaned up before the namespace can be deleted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
}

impl Validate for NamespaceSpec {
    fn validate(&self, v: &mut Validator) {
        v.each("finalizers", &self.finalizers, |v, finalizer| {
            if let Err(e) = check_label_key(finalizer) {
                v.error(e.replace("label key", "finalizer"));
            }
        });
    }
}

impl Spec for NamespaceSpec {
    fn validate_object(&self, meta: &ObjectMeta, v: &mut Validator) {
        // Names that are not even valid object names are reported with `metadata`.
        if check_resource_name(&meta.name).is_ok() && !is_dns1123_label(&meta.name) {
            v.at("metadata", |v| {
                v.error_at(
                    "name",
                    format!(
                        "{:?} is not a valid namespace name: use at most 63 lowercase letters, digits and '-' (no dots)",
                        meta.name
                    ),
                )
            });
        }
    }
}
