//! Regular expressions in configuration, compiled once when the configuration is read.
//!
//! Istio hands regexes to Envoy's RE2 engine, which matches the whole input. The `regex` crate
//! speaks the same dialect (no backreferences, no lookaround), so a pattern that compiles here
//! is one Istio accepts, and the compiled form is anchored the same way.

use std::fmt;
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Compiled programs larger than this are refused, as Envoy refuses oversized programs.
const MAX_PROGRAM_BYTES: usize = 1 << 20;

/// A pattern and its whole-input matcher.
#[derive(Clone)]
pub struct Regex {
    pattern: String,
    matcher: regex::Regex,
    /// The same pattern, unanchored, for substitutions; compiled when first needed.
    searcher: std::sync::OnceLock<regex::Regex>,
}

impl Regex {
    pub fn new(pattern: &str) -> Result<Self, String> {
        let matcher = regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
            .size_limit(MAX_PROGRAM_BYTES)
            .build()
            .map_err(|e| match e {
                regex::Error::Syntax(detail) => {
                    format!(
                        "invalid regex {pattern:?}: {}",
                        detail.lines().last().unwrap_or("")
                    )
                }
                regex::Error::CompiledTooBig(_) => format!("regex {pattern:?} is too large"),
                other => format!("invalid regex {pattern:?}: {other}"),
            })?;
        Ok(Self {
            pattern: pattern.to_owned(),
            matcher,
            searcher: std::sync::OnceLock::new(),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether the pattern matches all of `text`.
    pub fn is_match(&self, text: &str) -> bool {
        self.matcher.is_match(text)
    }

    /// Replaces every match of the pattern in `text` with `substitution`, where `\1`..`\9`
    /// stand for capture groups (RE2's and the proxy's substitution syntax).
    pub fn replace_all(&self, text: &str, substitution: &str) -> String {
        let searcher = self.searcher.get_or_init(|| {
            regex::RegexBuilder::new(&self.pattern)
                .size_limit(MAX_PROGRAM_BYTES)
                .build()
                .expect("the anchored form of this pattern compiled, so the pattern does")
        });
        let mut replacement = String::with_capacity(substitution.len());
        let mut chars = substitution.chars().peekable();
        while let Some(c) = chars.next() {
            match (c, chars.peek()) {
                ('\\', Some(d)) if d.is_ascii_digit() => {
                    replacement.push_str(&format!("${{{d}}}"));
                    chars.next();
                }
                ('$', _) => replacement.push_str("$$"),
                (c, _) => replacement.push(c),
            }
        }
        searcher
            .replace_all(text, replacement.as_str())
            .into_owned()
    }
}

impl fmt::Debug for Regex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Regex({:?})", self.pattern)
    }
}

impl PartialEq for Regex {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern
    }
}

impl Eq for Regex {}

impl Hash for Regex {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.pattern.hash(state);
    }
}

impl Serialize for Regex {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.pattern)
    }
}

impl<'de> Deserialize<'de> for Regex {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let pattern = String::deserialize(deserializer)?;
        Self::new(&pattern).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_whole_input() {
        let re = Regex::new("/api/v[0-9]+").unwrap();
        assert!(re.is_match("/api/v1"));
        assert!(!re.is_match("/api/v1/users"));
        assert!(Regex::new("a|b").unwrap().is_match("b"));
    }

    #[test]
    fn substitutes_groups() {
        let re = Regex::new("^/service/([^/]+)(/.*)$").unwrap();
        assert_eq!(
            re.replace_all("/service/foo/v1/api", "\\2/instance/\\1"),
            "/v1/api/instance/foo"
        );
        let re = Regex::new("a").unwrap();
        assert_eq!(re.replace_all("banana", "$o"), "b$on$on$o");
    }

    #[test]
    fn refuses_what_re2_refuses() {
        assert!(Regex::new("(a").unwrap_err().contains("invalid regex"));
        assert!(Regex::new(r"(a)\1").is_err());
        assert!(Regex::new("(?=a)").is_err());
        assert!(
            Regex::new("a{1000}{1000}")
                .unwrap_err()
                .contains("too large")
        );
    }
}
