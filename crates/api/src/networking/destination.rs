//! Pieces several networking kinds share: where traffic goes (`Destination`, `PortSelector`)
//! and who may see a resource (`exportTo`).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::types::Port;
use crate::types::names::{check_namespace, check_wildcard_domain, is_dns1123_label};
use crate::validate::{Validate, Validator};

/// A service (and optionally a subset and port of it) that traffic is sent to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Destination {
    pub host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortSelector>,
}

/// A port of a service, by number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortSelector {
    pub number: Port,
}

impl Validate for Destination {
    fn validate(&self, v: &mut Validator) {
        if self.host == "*" {
            v.error_at("host", "a destination host cannot be \"*\"");
        } else if let Err(e) = check_wildcard_domain(&self.host) {
            v.error_at("host", e);
        }
        if let Some(subset) = &self.subset
            && let Err(e) = check_subset_name(subset)
        {
            v.error_at("subset", e);
        }
    }
}

/// Subset names are DNS labels.
pub fn check_subset_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        Err("subset name cannot be empty".into())
    } else if !is_dns1123_label(name) {
        Err(format!(
            "subset name {name:?} is invalid: use at most 63 lowercase letters, digits and '-'"
        ))
    } else {
        Ok(())
    }
}

/// Which resource `exportTo` rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportKind {
    VirtualService,
    /// A ServiceEntry may also be exported to no one (`~`).
    ServiceEntry,
    DestinationRule {
        with_selector: bool,
    },
}

/// Checks `exportTo` (at the validator's current path, which should be `spec`): each entry is
/// `.` (this namespace), `*` (everyone) or a namespace; no duplicates; `*` and `~` stand alone.
pub fn validate_export_to(
    namespace: &str,
    export_to: &[String],
    kind: ExportKind,
    v: &mut Validator,
) {
    if export_to.is_empty() {
        return;
    }
    let mut seen = HashSet::new();
    v.each("exportTo", export_to, |v, entry| {
        let key = if entry == "." { namespace } else { entry.as_str() };
        let valid = match entry.as_str() {
            "." | "*" => true,
            "~" => kind == ExportKind::ServiceEntry,
            other => check_namespace(other).is_ok(),
        };
        if !valid {
            v.error(format!("{entry:?} is not a valid exportTo value: use \".\", \"*\" or a namespace name"));
        } else if !seen.insert(key) {
            if key == entry {
                v.error(format!("duplicate exportTo entry {entry:?}"));
            } else {
                v.error(format!("duplicate exportTo entries: \".\" and the resource's own namespace {namespace:?}"));
            }
        }
    });
    v.at("exportTo", |v| {
        if seen.contains("*") && export_to.len() > 1 {
            v.error("\"*\" (everyone) cannot be combined with other exportTo values");
        }
        if seen.contains("~") && export_to.len() > 1 {
            v.error("\"~\" (no one) cannot be combined with other exportTo values");
        }
        if (ExportKind::DestinationRule { with_selector: true }) == kind && !seen.is_empty() {
            if !seen.contains(namespace) {
                v.error("a DestinationRule with a workloadSelector cannot be exported beyond its own namespace");
            } else if seen.len() > 1 {
                v.error("a DestinationRule with a workloadSelector can only be exported to its own namespace");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn export(ns: &str, entries: &[&str], kind: ExportKind) -> Vec<String> {
        let entries: Vec<String> = entries.iter().map(|s| s.to_string()).collect();
        let mut v = Validator::new();
        validate_export_to(ns, &entries, kind, &mut v);
        v.into_issues().into_iter().map(|i| i.to_string()).collect()
    }

    #[test]
    fn export_to_rules() {
        assert!(export("ns", &[".", "other"], ExportKind::VirtualService).is_empty());
        assert_eq!(
            export("ns", &[".", "ns"], ExportKind::VirtualService).len(),
            1
        );
        assert_eq!(
            export("ns", &["*", "other"], ExportKind::VirtualService),
            vec!["exportTo: \"*\" (everyone) cannot be combined with other exportTo values"]
        );
        assert_eq!(export("ns", &["~"], ExportKind::VirtualService).len(), 1);
        assert!(export("ns", &["~"], ExportKind::ServiceEntry).is_empty());
        assert_eq!(
            export(
                "ns",
                &["other"],
                ExportKind::DestinationRule {
                    with_selector: true
                }
            )
            .len(),
            1
        );
    }

    #[test]
    fn destinations() {
        let d: Destination = serde_json::from_str(r#"{"host": "*", "subset": "V1"}"#).unwrap();
        let mut v = Validator::new();
        d.validate(&mut v);
        let issues: Vec<String> = v.into_issues().into_iter().map(|i| i.to_string()).collect();
        assert_eq!(issues.len(), 2, "{issues:?}");
    }
}
