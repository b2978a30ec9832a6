//! Istio's `StringMatch`: exact, prefix or regex, or empty to match any value.

use serde::{Deserialize, Serialize};

use super::Regex;

/// How a string (a path, a header value, an authority) is matched.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "StringMatchFields", into = "StringMatchFields")]
pub enum StringMatch {
    /// `{}`: any value, including none for headers that must merely be present.
    Any,
    Exact(String),
    Prefix(String),
    Regex(Regex),
}

impl StringMatch {
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Exact(exact) => value == exact,
            Self::Prefix(prefix) => value.starts_with(prefix.as_str()),
            Self::Regex(regex) => regex.is_match(value),
        }
    }

    /// The text the match compares against (the pattern for a regex), if any.
    pub fn text(&self) -> Option<&str> {
        match self {
            Self::Any => None,
            Self::Exact(s) | Self::Prefix(s) => Some(s),
            Self::Regex(r) => Some(r.as_str()),
        }
    }
}

/// The wire form: a protobuf oneof, so at most one field may be set.
#[derive(Serialize, Deserialize)]
struct StringMatchFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    regex: Option<Regex>,
}

impl TryFrom<StringMatchFields> for StringMatch {
    type Error = &'static str;

    fn try_from(fields: StringMatchFields) -> Result<Self, Self::Error> {
        match (fields.exact, fields.prefix, fields.regex) {
            (None, None, None) => Ok(Self::Any),
            (Some(exact), None, None) => Ok(Self::Exact(exact)),
            (None, Some(prefix), None) => Ok(Self::Prefix(prefix)),
            (None, None, Some(regex)) => Ok(Self::Regex(regex)),
            _ => Err("only one of exact, prefix or regex may be set"),
        }
    }
}

impl From<StringMatch> for StringMatchFields {
    fn from(m: StringMatch) -> Self {
        let mut fields = Self {
            exact: None,
            prefix: None,
            regex: None,
        };
        match m {
            StringMatch::Any => {}
            StringMatch::Exact(s) => fields.exact = Some(s),
            StringMatch::Prefix(s) => fields.prefix = Some(s),
            StringMatch::Regex(r) => fields.regex = Some(r),
        }
        fields
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_form() {
        let m: StringMatch = serde_json::from_str(r#"{"prefix": "/api"}"#).unwrap();
        assert!(m.matches("/api/v1"));
        let m: StringMatch = serde_json::from_str(r#"{"regex": "v[12]"}"#).unwrap();
        assert!(m.matches("v2") && !m.matches("v3"));
        let m: StringMatch = serde_json::from_str("{}").unwrap();
        assert_eq!(m, StringMatch::Any);
        assert_eq!(
            serde_json::to_string(&StringMatch::Exact("a".into())).unwrap(),
            r#"{"exact":"a"}"#
        );
    }

    #[test]
    fn refuses_two_forms_at_once() {
        let err =
            serde_json::from_str::<StringMatch>(r#"{"exact": "a", "prefix": "b"}"#).unwrap_err();
        assert!(
            err.to_string()
                .contains("only one of exact, prefix or regex"),
            "{err}"
        );
    }
}
