//! Field paths such as `spec.http[0].route[1].weight`.
//!
//! Every diagnostic names the field it is about with one of these, so an operator can go
//! straight to the offending line. The same type indexes the source positions of a document
//! (see [`crate::yaml`]), which is how a validation issue found on typed values gets its line.

use std::fmt;

/// One step of a [`FieldPath`]: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// A path from the document root to one field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldPath {
    segments: Vec<Segment>,
}

impl FieldPath {
    /// The path of the document itself.
    pub fn root() -> Self {
        Self::default()
    }

    /// Parses the display form back into a path (used by tests and fixtures).
    pub fn parse(text: &str) -> Self {
        let mut path = Self::root();
        let mut rest = text;
        while !rest.is_empty() {
            if let Some(inner) = rest.strip_prefix('[') {
                let (segment, after) = match inner.strip_prefix('"') {
                    Some(quoted) => {
                        let end = quoted.find("\"]").unwrap_or(quoted.len());
                        (
                            Segment::Key(quoted[..end].to_owned()),
                            quoted.get(end + 2..).unwrap_or(""),
                        )
                    }
                    None => {
                        let end = inner.find(']').unwrap_or(inner.len());
                        let segment = match inner[..end].parse() {
                            Ok(index) => Segment::Index(index),
                            Err(_) => Segment::Key(inner[..end].to_owned()),
                        };
                        (segment, inner.get(end + 1..).unwrap_or(""))
                    }
                };
                path.segments.push(segment);
                rest = after;
            } else {
                let body = rest.strip_prefix('.').unwrap_or(rest);
                let end = body.find(['.', '[']).unwrap_or(body.len());
                if end > 0 {
                    path.push_key(&body[..end]);
                }
                rest = &body[end..];
            }
        }
        path
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    pub fn is_root(&self) -> bool {
        self.segments.is_empty()
    }

    pub fn push_key(&mut self, key: impl Into<String>) {
        self.segments.push(Segment::Key(key.into()));
    }

    pub fn push_index(&mut self, index: usize) {
        self.segments.push(Segment::Index(index));
    }

    pub fn pop(&mut self) -> Option<Segment> {
        self.segments.pop()
    }

    /// This path extended by a key.
    pub fn key(&self, key: impl Into<String>) -> Self {
        let mut path = self.clone();
        path.push_key(key);
        path
    }

    /// This path extended by an index.
    pub fn index(&self, index: usize) -> Self {
        let mut path = self.clone();
        path.push_index(index);
        path
    }

    /// The path one step up, or `None` at the root.
    pub fn parent(&self) -> Option<Self> {
        let mut path = self.clone();
        path.pop().map(|_| path)
    }

    pub fn starts_with(&self, prefix: &FieldPath) -> bool {
        self.segments.starts_with(&prefix.segments)
    }
}

/// Keys that are plain identifiers print bare (`spec.hosts`); others, such as label keys with
/// dots or slashes, print in brackets (`metadata.labels["app.kubernetes.io/name"]`).
fn is_plain_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '@' || c == ':')
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.segments.is_empty() {
            return f.write_str("(document)");
        }
        for (at, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Index(index) => write!(f, "[{index}]")?,
                Segment::Key(key) if is_plain_key(key) => {
                    if at > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(key)?;
                }
                Segment::Key(key) => write!(f, "[{key:?}]")?,
            }
        }
        Ok(())
    }
}

impl From<&str> for FieldPath {
    fn from(text: &str) -> Self {
        Self::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_keys_and_indices() {
        let path = FieldPath::root()
            .key("spec")
            .key("http")
            .index(0)
            .key("route")
            .index(1);
        assert_eq!(
            path.key("weight").to_string(),
            "spec.http[0].route[1].weight"
        );
        assert_eq!(FieldPath::root().to_string(), "(document)");
    }

    #[test]
    fn quotes_keys_that_are_not_identifiers() {
        let path = FieldPath::root()
            .key("metadata")
            .key("labels")
            .key("app.kubernetes.io/name");
        assert_eq!(
            path.to_string(),
            r#"metadata.labels["app.kubernetes.io/name"]"#
        );
        assert_eq!(FieldPath::parse(&path.to_string()), path);
    }

    #[test]
    fn parses_its_display_form() {
        let text = "spec.http[0].route[1].weight";
        assert_eq!(FieldPath::parse(text).to_string(), text);
        assert_eq!(
            FieldPath::parse(text).parent().unwrap().to_string(),
            "spec.http[0].route[1]"
        );
    }
}
