//! The validation walk: every rule of a resource reports into one [`Validator`], which knows the
//! field path it is at, so each rule only says what is wrong and the walk says where.
//!
//! Validation never stops at the first problem: a resource's every issue is collected, errors
//! and warnings alike, the way Istio's admission webhook reports them.

use std::fmt;
use std::time::Duration as StdDuration;

use crate::path::FieldPath;

/// How serious a finding is; ordered from least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "Info",
            Self::Warning => "Warning",
            Self::Error => "Error",
        }
    }

    /// Parses `Info`, `Warning` or `Error` (any case).
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "info" => Some(Self::Info),
            "warning" | "warn" => Some(Self::Warning),
            "error" => Some(Self::Error),
            _ => None,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem with one field of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldIssue {
    pub severity: Severity,
    pub path: FieldPath,
    pub message: String,
    /// The analysis code this issue is reported under, when it is more specific than a schema
    /// error or warning (an unreachable route rule is `IST0130`).
    pub code: Option<&'static str>,
}

impl fmt::Display for FieldIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// A value whose rules can be checked.
pub trait Validate {
    fn validate(&self, v: &mut Validator);
}

impl<T: Validate> Validate for Option<T> {
    fn validate(&self, v: &mut Validator) {
        if let Some(value) = self {
            value.validate(v);
        }
    }
}

impl<T: Validate> Validate for [T] {
    fn validate(&self, v: &mut Validator) {
        for (index, item) in self.iter().enumerate() {
            v.at_index(index, |v| item.validate(v));
        }
    }
}

impl<T: Validate> Validate for Vec<T> {
    fn validate(&self, v: &mut Validator) {
        self.as_slice().validate(v);
    }
}

/// Collects issues while walking a resource.
#[derive(Debug, Default)]
pub struct Validator {
    path: FieldPath,
    issues: Vec<FieldIssue>,
}

impl Validator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts the walk at `path` (for example `spec`).
    pub fn at_path(path: FieldPath) -> Self {
        Self {
            path,
            issues: Vec::new(),
        }
    }

    /// The path the walk is at.
    pub fn path(&self) -> &FieldPath {
        &self.path
    }

    pub fn issues(&self) -> &[FieldIssue] {
        &self.issues
    }

    pub fn into_issues(self) -> Vec<FieldIssue> {
        self.issues
    }

    pub fn has_errors(&self) -> bool {
        self.issues.iter().any(|i| i.severity == Severity::Error)
    }

    /// Runs `check` one key deeper.
    pub fn at<R>(&mut self, key: &str, check: impl FnOnce(&mut Self) -> R) -> R {
        self.path.push_key(key);
        let result = check(self);
        self.path.pop();
        result
    }

    /// Runs `check` one index deeper.
    pub fn at_index<R>(&mut self, index: usize, check: impl FnOnce(&mut Self) -> R) -> R {
        self.path.push_index(index);
        let result = check(self);
        self.path.pop();
        result
    }

    /// Runs `check` on every item of the list at `key`.
    pub fn each<'a, T>(
        &mut self,
        key: &str,
        items: &'a [T],
        mut check: impl FnMut(&mut Self, &'a T),
    ) {
        self.at(key, |v| {
            for (index, item) in items.iter().enumerate() {
                v.at_index(index, |v| check(v, item));
            }
        });
    }

    /// Validates a nested value at `key`.
    pub fn nested<T: Validate + ?Sized>(&mut self, key: &str, value: &T) {
        self.at(key, |v| value.validate(v));
    }

    /// Reports an error on the current field.
    pub fn error(&mut self, message: impl Into<String>) {
        self.report(Severity::Error, message.into());
    }

    /// Reports a warning on the current field.
    pub fn warn(&mut self, message: impl Into<String>) {
        self.report(Severity::Warning, message.into());
    }

    /// Reports an error on the field `key` below the current one.
    pub fn error_at(&mut self, key: &str, message: impl Into<String>) {
        let message = message.into();
        self.at(key, |v| v.error(message));
    }

    /// Reports a warning on the field `key` below the current one.
    pub fn warn_at(&mut self, key: &str, message: impl Into<String>) {
        let message = message.into();
        self.at(key, |v| v.warn(message));
    }

    /// Reports an error at `key` when `value` is absent.
    pub fn require<T>(&mut self, key: &str, value: &Option<T>) -> bool {
        if value.is_none() {
            self.error_at(key, "is required");
        }
        value.is_some()
    }

    /// Reports an error at `key` when `list` is empty.
    pub fn require_items<T>(&mut self, key: &str, list: &[T]) -> bool {
        if list.is_empty() {
            self.error_at(key, "must have at least one item");
        }
        !list.is_empty()
    }

    /// Reports an error at `key` when a duration is shorter than `min`.
    pub fn min_duration(&mut self, key: &str, value: Option<StdDuration>, min: StdDuration) {
        if let Some(value) = value.filter(|d| *d < min) {
            self.error_at(
                key,
                format!(
                    "must be at least {} (got {})",
                    crate::types::Duration::from(min),
                    crate::types::Duration::from(value)
                ),
            );
        }
    }

    /// Reports an error when more than one of the named fields is set (`set` says which are).
    pub fn at_most_one(&mut self, fields: &[(&str, bool)]) {
        let set: Vec<&str> = fields
            .iter()
            .filter(|(_, on)| *on)
            .map(|(k, _)| *k)
            .collect();
        if set.len() > 1 {
            let all: Vec<&str> = fields.iter().map(|(k, _)| *k).collect();
            self.error(format!(
                "only one of {} may be set (found {})",
                all.join(", "),
                set.join(" and ")
            ));
        }
    }

    /// Reports a warning on the current field under a specific analysis code.
    pub fn warn_coded(&mut self, code: &'static str, message: impl Into<String>) {
        self.report(Severity::Warning, message.into());
        if let Some(issue) = self.issues.last_mut() {
            issue.code = Some(code);
        }
    }

    fn report(&mut self, severity: Severity, message: String) {
        self.issues.push(FieldIssue {
            severity,
            path: self.path.clone(),
            message,
            code: None,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_at_the_current_path() {
        let mut v = Validator::at_path(FieldPath::root().key("spec"));
        v.each("http", &[1, 2], |v, n| {
            if *n == 2 {
                v.error_at("weight", "must be positive");
            }
        });
        v.warn("watch out");
        let issues = v.into_issues();
        assert_eq!(
            issues[0].to_string(),
            "spec.http[1].weight: must be positive"
        );
        assert_eq!(issues[1].path.to_string(), "spec");
        assert_eq!(issues[1].severity, Severity::Warning);
    }

    #[test]
    fn at_most_one_names_the_conflict() {
        let mut v = Validator::new();
        v.at_most_one(&[("jwks", true), ("jwksUri", true)]);
        assert_eq!(
            v.issues()[0].message,
            "only one of jwks, jwksUri may be set (found jwks and jwksUri)"
        );
    }
}
