//! YAML and JSON text into plain values, remembering where every field came from.
//!
//! Istio (through Kubernetes) reads multi-document YAML, and JSON as a subset of it. This module
//! turns such a text into one [`serde_json::Value`] per document plus a [`Positions`] index from
//! field path to line and column, so that both serde's errors and later validation issues can
//! point at the line the operator wrote. Scalars are resolved with the YAML 1.2 core schema;
//! duplicate keys, unsupported tags and alias bombs are errors rather than surprises.

use std::collections::HashMap;
use std::fmt;

use saphyr_parser::{Event, Marker, Parser, ScalarStyle, ScanError, Span};
use serde_json::{Map, Number, Value};

use crate::path::FieldPath;

/// How deep mappings and sequences may nest before a document is refused.
pub const MAX_DEPTH: usize = 128;
/// How many values a stream may expand to (after aliases) before it is refused.
pub const MAX_NODES: usize = 1_000_000;

/// A line (1-based) and column (1-based) in a source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    fn of(marker: &Marker) -> Self {
        Self {
            line: marker.line(),
            column: marker.col() + 1,
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Where each field of one document starts in the source.
#[derive(Debug, Clone, Default)]
pub struct Positions {
    by_path: HashMap<FieldPath, Position>,
}

impl Positions {
    /// The position of `path`, or of its nearest ancestor that has one.
    pub fn find(&self, path: &FieldPath) -> Option<Position> {
        let mut path = path.clone();
        loop {
            if let Some(position) = self.by_path.get(&path) {
                return Some(*position);
            }
            path.pop()?;
        }
    }

    fn record(&mut self, path: &FieldPath, position: Position) {
        self.by_path.entry(path.clone()).or_insert(position);
    }
}

/// One document of a stream.
#[derive(Debug, Clone)]
pub struct Document {
    /// Index of the document in its stream, counting empty ones.
    pub index: usize,
    /// Where the document's content starts.
    pub start: Position,
    pub value: Value,
    pub positions: Positions,
}

/// A text that could not be read as YAML, or a document that breaks one of the limits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{position}: {message}")]
pub struct SyntaxError {
    pub position: Position,
    pub message: String,
}

impl SyntaxError {
    fn at(marker: &Marker, message: impl Into<String>) -> Self {
        Self {
            position: Position::of(marker),
            message: message.into(),
        }
    }
}

impl From<ScanError> for SyntaxError {
    fn from(error: ScanError) -> Self {
        Self::at(error.marker(), error.info().to_string())
    }
}

/// What a stream held: every document read before the first syntax error, and that error.
///
/// A YAML syntax error ends the stream (the parser cannot find its way back), but the documents
/// before it are still good and are returned.
#[derive(Debug, Clone, Default)]
pub struct Stream {
    pub documents: Vec<Document>,
    pub error: Option<SyntaxError>,
}

/// Reads every document of a YAML (or JSON) text. Empty and null documents are left out.
pub fn parse_stream(text: &str) -> Stream {
    let mut builder = Builder::default();
    let mut stream = Stream::default();
    let mut index = 0;
    for event in Parser::new_from_str(text) {
        let outcome = event
            .map_err(SyntaxError::from)
            .and_then(|(event, span)| builder.event(event, span));
        match outcome {
            Ok(Some(document)) => {
                if !document.value.is_null() {
                    stream.documents.push(Document { index, ..document });
                }
                index += 1;
            }
            Ok(None) => {}
            Err(error) => {
                stream.error = Some(error);
                break;
            }
        }
    }
    stream
}

enum Frame {
    Sequence {
        items: Vec<Value>,
        anchor: usize,
    },
    Mapping {
        map: Map<String, Value>,
        /// Keys brought in by merge keys (`<<`); keys written in the mapping win over them.
        merged: Map<String, Value>,
        key: Option<(String, Marker)>,
        anchor: usize,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    path: FieldPath,
    positions: Positions,
    anchors: HashMap<usize, Value>,
    start: Option<Position>,
    nodes: usize,
}

impl Builder {
    fn event(&mut self, event: Event<'_>, span: Span) -> Result<Option<Document>, SyntaxError> {
        let at = span.start;
        match event {
            Event::DocumentStart(_) => {
                self.positions = Positions::default();
                self.anchors.clear();
                self.start = None;
                Ok(None)
            }
            Event::DocumentEnd => Ok(None),
            Event::StreamStart | Event::StreamEnd | Event::Nothing => Ok(None),
            Event::Scalar(text, style, anchor, tag) => {
                if self.expecting_key() {
                    self.set_key(text.into_owned(), at)?;
                    return Ok(None);
                }
                let tag = tag.map(|tag| format!("{}{}", tag.handle, tag.suffix));
                let value =
                    scalar(&text, style, tag.as_deref()).map_err(|m| SyntaxError::at(&at, m))?;
                self.begin_value(&at)?;
                self.finish_value(value, anchor, &at)
            }
            Event::Alias(id) => {
                let Some(value) = self.anchors.get(&id).cloned() else {
                    return Err(SyntaxError::at(&at, "alias to an unknown anchor"));
                };
                self.nodes += count_nodes(&value);
                if self.expecting_key() {
                    let Value::String(key) = value else {
                        return Err(SyntaxError::at(&at, "mapping keys must be strings"));
                    };
                    self.set_key(key, at)?;
                    return Ok(None);
                }
                self.begin_value(&at)?;
                self.finish_value(value, 0, &at)
            }
            Event::SequenceStart(anchor, tag) => {
                check_collection_tag(tag.map(|t| format!("{}{}", t.handle, t.suffix)), "seq", &at)?;
                self.begin_value(&at)?;
                self.push(
                    Frame::Sequence {
                        items: Vec::new(),
                        anchor,
                    },
                    &at,
                )
            }
            Event::MappingStart(anchor, tag) => {
                check_collection_tag(tag.map(|t| format!("{}{}", t.handle, t.suffix)), "map", &at)?;
                self.begin_value(&at)?;
                self.push(
                    Frame::Mapping {
                        map: Map::new(),
                        merged: Map::new(),
                        key: None,
                        anchor,
                    },
                    &at,
                )
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let frame = self.stack.pop().expect("parser balances collection events");
                let (value, anchor) = match frame {
                    Frame::Sequence { items, anchor } => (Value::Array(items), anchor),
                    Frame::Mapping {
                        mut map,
                        merged,
                        anchor,
                        ..
                    } => {
                        for (key, value) in merged {
                            map.entry(key).or_insert(value);
                        }
                        (Value::Object(map), anchor)
                    }
                };
                self.finish_value(value, anchor, &at)
            }
        }
    }

    fn expecting_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Mapping { key: None, .. }))
    }

    fn set_key(&mut self, key: String, at: Marker) -> Result<(), SyntaxError> {
        if let Some(Frame::Mapping { map, key: slot, .. }) = self.stack.last_mut() {
            if map.contains_key(&key) && key != "<<" {
                return Err(SyntaxError::at(
                    &at,
                    format!("duplicate key {key:?} in a mapping"),
                ));
            }
            *slot = Some((key, at));
        }
        Ok(())
    }

    /// Steps the current path into the value that starts now and records its position.
    fn begin_value(&mut self, at: &Marker) -> Result<(), SyntaxError> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(SyntaxError::at(
                at,
                format!("more than {MAX_NODES} values in one text"),
            ));
        }
        let position = match self.stack.last() {
            None => {
                self.start = Some(Position::of(at));
                Position::of(at)
            }
            Some(Frame::Sequence { items, .. }) => {
                self.path.push_index(items.len());
                Position::of(at)
            }
            Some(Frame::Mapping {
                key: Some((key, key_at)),
                ..
            }) => {
                self.path.push_key(key.clone());
                Position::of(key_at)
            }
            Some(Frame::Mapping { key: None, .. }) => {
                return Err(SyntaxError::at(at, "mapping keys must be strings"));
            }
        };
        self.positions.record(&self.path, position);
        Ok(())
    }

    fn push(&mut self, frame: Frame, at: &Marker) -> Result<Option<Document>, SyntaxError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(SyntaxError::at(
                at,
                format!("nesting deeper than {MAX_DEPTH} levels"),
            ));
        }
        self.stack.push(frame);
        Ok(None)
    }

    /// Stores a finished value in its parent, or returns the document it completes.
    fn finish_value(
        &mut self,
        value: Value,
        anchor: usize,
        at: &Marker,
    ) -> Result<Option<Document>, SyntaxError> {
        if anchor != 0 {
            self.anchors.insert(anchor, value.clone());
        }
        match self.stack.last_mut() {
            None => {
                let start = self.start.take().unwrap_or(Position { line: 1, column: 1 });
                let positions = std::mem::take(&mut self.positions);
                Ok(Some(Document {
                    index: 0,
                    start,
                    value,
                    positions,
                }))
            }
            Some(Frame::Sequence { items, .. }) => {
                items.push(value);
                self.path.pop();
                Ok(None)
            }
            Some(Frame::Mapping {
                map, merged, key, ..
            }) => {
                let (key, _) = key.take().expect("a value in a mapping follows its key");
                self.path.pop();
                if key == "<<" {
                    merge_into(merged, value).map_err(|m| SyntaxError::at(at, m))?;
                } else {
                    map.insert(key, value);
                }
                Ok(None)
            }
        }
    }
}

/// YAML merge keys (`<<: *defaults`): the first source to name a key wins.
fn merge_into(map: &mut Map<String, Value>, value: Value) -> Result<(), &'static str> {
    let sources = match value {
        Value::Object(source) => vec![source],
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::Object(source) => Ok(source),
                _ => Err("a merge key (<<) takes a mapping or a list of mappings"),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err("a merge key (<<) takes a mapping or a list of mappings"),
    };
    for source in sources {
        for (key, value) in source {
            map.entry(key).or_insert(value);
        }
    }
    Ok(())
}

fn count_nodes(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(count_nodes).sum::<usize>(),
        Value::Object(map) => 1 + map.values().map(count_nodes).sum::<usize>(),
        _ => 1,
    }
}

fn check_collection_tag(tag: Option<String>, kind: &str, at: &Marker) -> Result<(), SyntaxError> {
    match tag {
        None => Ok(()),
        Some(tag) if tag == format!("tag:yaml.org,2002:{kind}") || tag == format!("!!{kind}") => {
            Ok(())
        }
        Some(tag) => Err(SyntaxError::at(at, format!("unsupported tag {tag}"))),
    }
}

/// Resolves a scalar with the YAML 1.2 core schema (plain scalars) or its explicit tag.
fn scalar(text: &str, style: ScalarStyle, tag: Option<&str>) -> Result<Value, String> {
    let tag = tag.map(|t| {
        t.trim_start_matches("tag:yaml.org,2002:")
            .trim_start_matches("!!")
    });
    match tag {
        Some("str") => return Ok(Value::String(text.to_owned())),
        Some("null") => return Ok(Value::Null),
        Some("bool") => {
            return core_bool(text)
                .map(Value::Bool)
                .ok_or("not a boolean".into());
        }
        Some("int") => return core_int(text).ok_or_else(|| "not an integer".into()),
        Some("float") => return core_float(text)?.ok_or_else(|| "not a number".into()),
        Some(other) => return Err(format!("unsupported tag !{other}")),
        None => {}
    }
    if style != ScalarStyle::Plain {
        return Ok(Value::String(text.to_owned()));
    }
    if matches!(text, "" | "~" | "null" | "Null" | "NULL") {
        return Ok(Value::Null);
    }
    if let Some(b) = core_bool(text) {
        return Ok(Value::Bool(b));
    }
    if let Some(number) = core_int(text) {
        return Ok(number);
    }
    if let Some(number) = core_float(text)? {
        return Ok(number);
    }
    Ok(Value::String(text.to_owned()))
}

fn core_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

fn core_int(text: &str) -> Option<Value> {
    let (negative, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (radix, digits) = if let Some(hex) = digits.strip_prefix("0x") {
        (16, hex)
    } else if let Some(octal) = digits.strip_prefix("0o") {
        (8, octal)
    } else {
        (10, digits)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    if radix != 10 && (negative || text.starts_with('+')) {
        return None;
    }
    let magnitude = u128::from_str_radix(digits, radix).ok()?;
    let number = if negative {
        i64::try_from(magnitude)
            .ok()
            .map(|m| Number::from(-m))
            .or_else(|| {
                (magnitude == i64::MIN.unsigned_abs() as u128).then(|| Number::from(i64::MIN))
            })
    } else {
        u64::try_from(magnitude).ok().map(Number::from)
    };
    Some(match number {
        Some(number) => Value::Number(number),
        // Too large for 64 bits: keep the text, and let the typed field refuse it.
        None => Value::String(text.to_owned()),
    })
}

fn core_float(text: &str) -> Result<Option<Value>, String> {
    let lower = text.to_ascii_lowercase();
    if matches!(lower.trim_start_matches(['+', '-']), ".inf" | ".nan") {
        return Err(format!("{text}: infinite and NaN numbers are not accepted"));
    }
    let body = text.trim_start_matches(['+', '-']);
    let looks_numeric = !body.is_empty()
        && body
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
        && body
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit() || c == '.')
        && body.chars().any(|c| c.is_ascii_digit());
    if !looks_numeric {
        return Ok(None);
    }
    match text.parse::<f64>() {
        Ok(f) if f.is_finite() => Ok(Number::from_f64(f).map(Value::Number)),
        Ok(_) => Err(format!("{text}: number out of range")),
        Err(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(text: &str) -> Document {
        let stream = parse_stream(text);
        assert_eq!(stream.error, None);
        assert_eq!(stream.documents.len(), 1);
        stream.documents.into_iter().next().unwrap()
    }

    #[test]
    fn resolves_core_schema_scalars() {
        let doc = one("a: 1\nb: -2\nc: 1.5\nd: true\ne: ~\nf: '1'\ng: v1\nh: 0x1f\ni: yes\n");
        assert_eq!(
            doc.value,
            json!({"a": 1, "b": -2, "c": 1.5, "d": true, "e": null, "f": "1", "g": "v1", "h": 31, "i": "yes"})
        );
    }

    #[test]
    fn records_positions_of_keys_and_items() {
        let doc = one("spec:\n  http:\n  - route:\n    - weight: 10\n");
        let at = |p: &str| doc.positions.find(&FieldPath::parse(p)).unwrap();
        assert_eq!(at("spec"), Position { line: 1, column: 1 });
        assert_eq!(
            at("spec.http[0].route[0].weight"),
            Position { line: 4, column: 7 }
        );
        assert_eq!(
            at("spec.http[0].route[0].weight.nothing"),
            Position { line: 4, column: 7 }
        );
        assert_eq!(at("spec.http[0]"), Position { line: 3, column: 5 });
    }

    #[test]
    fn splits_documents_and_skips_empty_ones() {
        let stream = parse_stream("---\na: 1\n---\n# nothing\n---\nb: 2\n...\n");
        assert_eq!(stream.error, None);
        let values: Vec<_> = stream.documents.iter().map(|d| d.value.clone()).collect();
        assert_eq!(values, vec![json!({"a": 1}), json!({"b": 2})]);
        assert_eq!(stream.documents[1].start.line, 6);
    }

    #[test]
    fn reads_json() {
        let doc = one(r#"{"kind": "Service", "spec": {"ports": [{"port": 80}]}}"#);
        assert_eq!(doc.value["spec"]["ports"][0]["port"], json!(80));
    }

    #[test]
    fn refuses_duplicate_keys() {
        let stream = parse_stream("a: 1\nb: 2\na: 3\n");
        let error = stream.error.unwrap();
        assert_eq!(error.position.line, 3);
        assert!(error.message.contains("duplicate key \"a\""), "{error}");
    }

    #[test]
    fn keeps_documents_before_a_syntax_error() {
        let stream = parse_stream("a: 1\n---\nb: [1, 2\n");
        assert_eq!(stream.documents.len(), 1);
        assert!(stream.error.is_some());
    }

    #[test]
    fn expands_anchors_and_merge_keys() {
        let doc = one("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n");
        assert_eq!(doc.value["other"], json!({"x": 1, "y": 3}));
    }

    #[test]
    fn refuses_alias_bombs() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let error = parse_stream(&text).error.unwrap();
        assert!(error.message.contains("more than"), "{error}");
    }

    #[test]
    fn refuses_infinite_numbers_and_unknown_tags() {
        assert!(parse_stream("a: .inf\n").error.is_some());
        assert!(parse_stream("a: !custom x\n").error.is_some());
        assert_eq!(one("a: !!str 12\n").value, json!({"a": "12"}));
    }
}
