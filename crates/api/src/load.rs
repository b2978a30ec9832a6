//! From text to resources: dispatch each document by `apiVersion` and `kind`, read it into its
//! typed form, validate it, and report everything that is wrong at once.
//!
//! Reading a document never stops at its first problem. Fields nobody knows are collected as
//! they are passed over; a field of the wrong type is reported, set aside, and the document read
//! again, so one run names every bad field. A document with any error is rejected whole (the
//! configuration it would replace stays in force); the other documents of the file still load.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::meta::DEFAULT_NAMESPACE;
use crate::path::{FieldPath, Segment};
use crate::resource::{ISTIO_GROUPS, Kind, Resource, split_api_version};
use crate::validate::{FieldIssue, Severity};
use crate::yaml::{self, Position, Positions};

/// How many times one document is re-read to find more bad fields before giving up.
const MAX_DECODE_ATTEMPTS: usize = 64;

/// Settings for reading configuration files.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The namespace for namespaced resources that name none (`kubectl apply` uses the context's).
    pub default_namespace: String,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            default_namespace: DEFAULT_NAMESPACE.to_owned(),
        }
    }
}

/// A place in a file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    pub file: Arc<str>,
    pub position: Position,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.position.line)
    }
}

/// Where a document came from, able to locate any of its fields.
#[derive(Debug, Clone)]
pub struct Origin {
    pub file: Arc<str>,
    /// Index of the document in its file.
    pub document: usize,
    /// For an item of a `List`, the path of the item in the document (`items[2]`).
    prefix: FieldPath,
    start: Position,
    positions: Arc<Positions>,
}

impl Origin {
    /// Where the document (or list item) starts.
    pub fn location(&self) -> Location {
        let position = if self.prefix.is_root() {
            self.start
        } else {
            self.position_of(&FieldPath::root())
        };
        Location {
            file: self.file.clone(),
            position,
        }
    }

    /// Where the field at `path` (relative to the object) is, or its nearest written ancestor.
    pub fn locate(&self, path: &FieldPath) -> Location {
        Location {
            file: self.file.clone(),
            position: self.position_of(path),
        }
    }

    fn position_of(&self, path: &FieldPath) -> Position {
        let mut full = self.prefix.clone();
        for segment in path.segments() {
            match segment {
                Segment::Key(k) => full.push_key(k.clone()),
                Segment::Index(i) => full.push_index(*i),
            }
        }
        self.positions.find(&full).unwrap_or(self.start)
    }
}

/// A resource that was read and passed validation (it may carry warnings).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub resource: Resource,
    pub origin: Origin,
    pub warnings: Vec<FieldIssue>,
}

/// A document that was refused, with every reason.
#[derive(Debug, Clone)]
pub struct Rejected {
    pub origin: Origin,
    /// What the document said it was, as far as that could be read.
    pub kind: Option<String>,
    /// `namespace/name`, as far as that could be read.
    pub name: Option<String>,
    pub issues: Vec<FieldIssue>,
}

/// A document of a kind the mesh does not use, set aside with a note.
#[derive(Debug, Clone)]
pub struct Skipped {
    pub origin: Origin,
    pub api_version: String,
    pub kind: String,
    pub name: Option<String>,
}

/// A text that is not valid YAML from some point on.
#[derive(Debug, Clone)]
pub struct SyntaxProblem {
    pub location: Location,
    pub message: String,
}

/// Everything read from one file.
#[derive(Debug, Clone, Default)]
pub struct FileLoad {
    pub loaded: Vec<Loaded>,
    pub rejected: Vec<Rejected>,
    pub skipped: Vec<Skipped>,
    pub syntax: Option<SyntaxProblem>,
}

impl FileLoad {
    /// Whether everything in the file was read and accepted.
    pub fn is_clean(&self) -> bool {
        self.rejected.is_empty() && self.syntax.is_none()
    }

    /// Every error in the file, one line each, located (`file:line:column: Kind name: path:
    /// message`): the syntax error, and the error-severity issues of rejected documents.
    pub fn errors(&self) -> Vec<String> {
        let mut errors: Vec<String> = self
            .syntax
            .iter()
            .map(|syntax| format!("{}: {}", syntax.location, syntax.message))
            .collect();
        for rejected in &self.rejected {
            let what = match (&rejected.kind, &rejected.name) {
                (Some(kind), Some(name)) => format!("{kind} {name}"),
                (Some(kind), None) => kind.clone(),
                _ => "document".to_owned(),
            };
            for issue in rejected
                .issues
                .iter()
                .filter(|i| i.severity == crate::Severity::Error)
            {
                errors.push(format!(
                    "{}: {what}: {issue}",
                    rejected.origin.locate(&issue.path)
                ));
            }
        }
        errors
    }
}

/// Reads every document of one file's text.
pub fn load_text(file: &str, text: &str, options: &LoadOptions) -> FileLoad {
    let file: Arc<str> = Arc::from(file);
    let stream = yaml::parse_stream(text);
    let mut out = FileLoad::default();
    for document in stream.documents {
        let origin = Origin {
            file: file.clone(),
            document: document.index,
            prefix: FieldPath::root(),
            start: document.start,
            positions: Arc::new(document.positions),
        };
        load_document(&document.value, origin, options, &mut out);
    }
    out.syntax = stream.error.map(|e| SyntaxProblem {
        location: Location {
            file,
            position: e.position,
        },
        message: e.message,
    });
    out
}

fn load_document(value: &Value, origin: Origin, options: &LoadOptions, out: &mut FileLoad) {
    let reject = |out: &mut FileLoad, origin: Origin, kind: Option<String>, message: String| {
        out.rejected.push(Rejected {
            origin,
            kind,
            name: None,
            issues: vec![error(FieldPath::root(), message)],
        });
    };
    let Value::Object(map) = value else {
        return reject(
            out,
            origin,
            None,
            "a document must be a mapping with apiVersion and kind".into(),
        );
    };
    let text = |key: &str| {
        map.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let (api_version, kind) = (text("apiVersion"), text("kind"));
    if api_version.is_empty() || kind.is_empty() {
        let missing = if api_version.is_empty() {
            "apiVersion"
        } else {
            "kind"
        };
        return reject(
            out,
            origin,
            (!kind.is_empty()).then_some(kind),
            format!("{missing} is required"),
        );
    }
    let (group, version) = split_api_version(&api_version);

    if kind == "List"
        || (kind.ends_with("List") && Kind::find(group, &kind[..kind.len() - 4]).is_some())
    {
        return load_list(map.get("items"), origin, options, out);
    }

    let Some(found) = Kind::find(group, &kind) else {
        if ISTIO_GROUPS.contains(&group) {
            let known: Vec<&str> = Kind::ALL
                .iter()
                .filter(|k| k.info().group == group)
                .map(|k| k.name())
                .collect();
            let message = format!(
                "unknown kind {kind} in {group} (known kinds: {})",
                known.join(", ")
            );
            return reject(out, origin, Some(kind), message);
        }
        let name = name_of(map, None);
        out.skipped.push(Skipped {
            origin,
            api_version,
            kind,
            name,
        });
        return;
    };
    let info = found.info();
    if !info.versions.contains(&version) {
        let message = format!(
            "{kind} is not served in version {version} of {}; use one of: {}",
            if group.is_empty() {
                "the core API"
            } else {
                group
            },
            info.versions.join(", ")
        );
        return reject(out, origin, Some(kind), message);
    }

    let (resource, mut issues) = Resource::read(found, value);
    let mut resource = match resource {
        Some(resource) => resource,
        None => {
            let default_namespace = info
                .namespaced
                .then_some(options.default_namespace.as_str());
            let name = name_of(map, default_namespace);
            out.rejected.push(Rejected {
                origin,
                kind: Some(kind),
                name,
                issues,
            });
            return;
        }
    };
    if info.namespaced && resource.meta().namespace.is_empty() {
        resource.meta_mut().namespace = options.default_namespace.clone();
    }
    issues.extend(resource.validate());
    if issues.iter().any(|i| i.severity == Severity::Error) {
        let name = Some(resource.meta().full_name());
        out.rejected.push(Rejected {
            origin,
            kind: Some(kind),
            name,
            issues,
        });
    } else {
        out.loaded.push(Loaded {
            resource,
            origin,
            warnings: issues,
        });
    }
}

fn load_list(items: Option<&Value>, origin: Origin, options: &LoadOptions, out: &mut FileLoad) {
    let Some(Value::Array(items)) = items else {
        out.rejected.push(Rejected {
            origin,
            kind: Some("List".into()),
            name: None,
            issues: vec![error(
                FieldPath::root().key("items"),
                "a List needs an items list",
            )],
        });
        return;
    };
    for (index, item) in items.iter().enumerate() {
        let item_origin = Origin {
            prefix: origin.prefix.key("items").index(index),
            ..origin.clone()
        };
        load_document(item, item_origin, options, out);
    }
}

/// `namespace/name` as far as a document that could not be read says, with `default_namespace`
/// for namespaced kinds that name none.
fn name_of(
    map: &serde_json::Map<String, Value>,
    default_namespace: Option<&str>,
) -> Option<String> {
    let meta = map.get("metadata")?;
    let name = meta.get("name")?.as_str()?;
    let written = meta
        .get("namespace")
        .and_then(Value::as_str)
        .filter(|ns| !ns.is_empty());
    Some(match written.or(default_namespace) {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_owned(),
    })
}

fn error(path: FieldPath, message: impl Into<String>) -> FieldIssue {
    FieldIssue {
        severity: Severity::Error,
        path,
        message: message.into(),
        code: None,
    }
}

/// Reads `value` as a `T`, collecting every unknown field and every field of the wrong form.
///
/// Returns the value when every known field could be read (unknown fields are still reported,
/// and make the document's loader refuse it).
pub(crate) fn decode<T: DeserializeOwned>(value: &Value) -> (Option<T>, Vec<FieldIssue>) {
    let mut pass = Pass {
        working: value.clone(),
        removed_items: Vec::new(),
        removed_keys: BTreeSet::new(),
    };
    let mut unknown: BTreeSet<FieldPath> = BTreeSet::new();
    let mut problems: Vec<FieldIssue> = Vec::new();
    let mut decoded = None;
    for _ in 0..MAX_DECODE_ATTEMPTS {
        let mut ignored = Vec::new();
        let outcome = {
            let mut note = |path: serde_ignored::Path<'_>| ignored.push(ignored_path(&path));
            let de = serde_ignored::Deserializer::new(&pass.working, &mut note);
            serde_path_to_error::deserialize::<_, T>(de)
        };
        unknown.extend(ignored.iter().map(|p| pass.original(p)));
        match outcome {
            Ok(value) => {
                decoded = Some(value);
                break;
            }
            Err(e) => {
                let at = error_path(e.path());
                let message = e.inner().to_string();
                // `field: null` means the field is not set, as in Kubernetes and protobuf JSON:
                // drop it and read on (a field that is required then says so).
                if message.starts_with("invalid type: null") && pass.drop_null(&at) {
                    continue;
                }
                let (path, message, ours) = match missing_field(&message) {
                    Some(field) => {
                        let path = pass.original(&at).key(field);
                        let ours = pass.removed_keys.contains(&path);
                        (path, "is required".to_owned(), ours)
                    }
                    None => (pass.original(&at), friendly(&message), false),
                };
                if !ours
                    && !problems
                        .iter()
                        .any(|p| p.path == path && p.message == message)
                {
                    problems.push(error(path, message));
                }
                if !pass.remove(&at) {
                    break;
                }
            }
        }
    }
    let mut issues: Vec<FieldIssue> = unknown
        .into_iter()
        .map(|path| {
            let name = match path.segments().last() {
                Some(Segment::Key(k)) => k.clone(),
                _ => String::new(),
            };
            error(path, format!("unknown field {name:?}"))
        })
        .collect();
    // With only unknown fields wrong, the value was read from the document as written, so its
    // rules can still be checked and reported in the same run.
    let readable = problems.is_empty();
    issues.extend(problems);
    issues.sort_by(|a, b| a.path.cmp(&b.path));
    (decoded.filter(|_| readable), issues)
}

/// A document being re-read with its bad fields taken out. Paths that serde reports are in the
/// trimmed document; `original` maps them back to what the operator wrote.
struct Pass {
    working: Value,
    /// List items taken out: the list's path and the item's index, as written.
    removed_items: Vec<(FieldPath, usize)>,
    /// Mapping keys taken out, as written.
    removed_keys: BTreeSet<FieldPath>,
}

impl Pass {
    fn original(&self, path: &FieldPath) -> FieldPath {
        let mut out = FieldPath::root();
        for segment in path.segments() {
            match segment {
                Segment::Key(k) => out.push_key(k.clone()),
                Segment::Index(i) => {
                    let mut gone: Vec<usize> = self
                        .removed_items
                        .iter()
                        .filter(|(list, _)| *list == out)
                        .map(|(_, i)| *i)
                        .collect();
                    gone.sort_unstable();
                    let mut index = *i;
                    for g in gone {
                        if g <= index {
                            index += 1;
                        }
                    }
                    out.push_index(index);
                }
            }
        }
        out
    }

    /// Takes out a null mapping value at `path`, as if it had not been written. Returns false
    /// when there is no such value.
    fn drop_null(&mut self, path: &FieldPath) -> bool {
        let (Some(parent), Some(Segment::Key(key))) = (path.parent(), path.segments().last())
        else {
            return false;
        };
        match value_at(&mut self.working, &parent) {
            Some(Value::Object(map)) if map.get(key).is_some_and(Value::is_null) => {
                map.remove(key).is_some()
            }
            _ => false,
        }
    }

    /// Takes the value at `path` (or, if there is none, its nearest ancestor) out of the
    /// document. Returns false when only the whole document is left to remove.
    fn remove(&mut self, path: &FieldPath) -> bool {
        let mut path = path.clone();
        loop {
            let Some(parent) = path.parent() else {
                return false;
            };
            let original = self.original(&path);
            let taken = match (value_at(&mut self.working, &parent), path.segments().last()) {
                (Some(Value::Object(map)), Some(Segment::Key(k))) => map.remove(k).is_some(),
                (Some(Value::Array(items)), Some(Segment::Index(i))) if *i < items.len() => {
                    items.remove(*i);
                    true
                }
                _ => false,
            };
            if taken {
                match original.segments().last() {
                    Some(Segment::Index(i)) => self
                        .removed_items
                        .push((original.parent().unwrap_or_default(), *i)),
                    _ => {
                        self.removed_keys.insert(original);
                    }
                }
                return true;
            }
            path = parent;
        }
    }
}

fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.strip_suffix('`')
}

fn value_at<'a>(root: &'a mut Value, path: &FieldPath) -> Option<&'a mut Value> {
    let mut at = root;
    for segment in path.segments() {
        at = match segment {
            Segment::Key(k) => at.as_object_mut()?.get_mut(k)?,
            Segment::Index(i) => at.as_array_mut()?.get_mut(*i)?,
        };
    }
    Some(at)
}

fn ignored_path(path: &serde_ignored::Path<'_>) -> FieldPath {
    use serde_ignored::Path as P;
    match path {
        P::Root => FieldPath::root(),
        P::Seq { parent, index } => ignored_path(parent).index(*index),
        P::Map { parent, key } => ignored_path(parent).key(key.clone()),
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            ignored_path(parent)
        }
    }
}

fn error_path(path: &serde_path_to_error::Path) -> FieldPath {
    use serde_path_to_error::Segment as S;
    let mut out = FieldPath::root();
    for segment in path.iter() {
        match segment {
            S::Seq { index } => out.push_index(*index),
            S::Map { key } => out.push_key(key.clone()),
            S::Enum { variant } => out.push_key(variant.clone()),
            S::Unknown => {}
        }
    }
    out
}

/// serde's wording, made to speak of configuration rather than Rust.
fn friendly(message: &str) -> String {
    message
        .replace("unknown variant", "unknown value")
        .replace("expected u32", "expected a non-negative integer")
        .replace("expected u64", "expected a non-negative integer")
        .replace("expected i32", "expected an integer")
        .replace("expected i64", "expected an integer")
        .replace("expected f64", "expected a number")
        .replace("expected a sequence", "expected a list")
        .replace("expected a map", "expected a mapping")
        .replace("invalid type: map", "invalid type: mapping")
        .replace("invalid type: sequence", "invalid type: list")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> FileLoad {
        load_text("test.yaml", text, &LoadOptions::default())
    }

    fn issues(load: &FileLoad) -> Vec<String> {
        load.rejected
            .iter()
            .flat_map(|r| {
                r.issues
                    .iter()
                    .map(|i| format!("{}@{}", i, r.origin.locate(&i.path).position.line))
            })
            .collect()
    }

    const GATEWAY: &str = "apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: gw
spec:
  selector:
    istio: ingressgateway
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ['*']
";

    #[test]
    fn loads_and_defaults_the_namespace() {
        let load = load(GATEWAY);
        assert!(load.is_clean(), "{:?}", issues(&load));
        let resource = &load.loaded[0].resource;
        assert_eq!(resource.display_name(), "Gateway default/gw");
        assert_eq!(load.loaded[0].origin.location().position.line, 1);
    }

    #[test]
    fn reports_every_bad_field_of_a_document_with_its_line() {
        let text = "apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: gw
spec:
  selectr: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: QUIC}
    hosts: ['*']
  - port: {number: 70000, name: http2, protocol: HTTP}
    hosts: ['*']
    extra: 1
  - hosts: ['*']
";
        let found = issues(&load(text));
        assert_eq!(
            found,
            vec![
                "spec.selectr: unknown field \"selectr\"@6",
                "spec.servers[0].port.protocol: unknown protocol \"QUIC\"; supported protocols are HTTP, HTTP2, HTTPS, GRPC, GRPC-Web, HTTP_PROXY, TCP, TLS, UDP, Mongo, Redis, MySQL@8",
                "spec.servers[1].extra: unknown field \"extra\"@12",
                "spec.servers[2].port: is required@13",
            ]
        );
    }

    #[test]
    fn validation_issues_follow_reading() {
        let text = GATEWAY
            .replace("number: 80", "number: 70000")
            .replace("'*'", "'ns/bad'");
        let found = issues(&load(&text));
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0].starts_with("spec.servers[0].hosts[0]: host \"bad\": short names"),
            "{found:?}"
        );
        assert_eq!(
            found[1],
            "spec.servers[0].port.number: port must be between 1 and 65535 (got 70000)@9"
        );
    }

    #[test]
    fn dispatches_lists_skips_foreign_kinds_and_refuses_unknown_istio_kinds() {
        let text = format!(
            "apiVersion: v1\nkind: List\nitems:\n- {}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\n---\napiVersion: networking.istio.io/v1\nkind: Gatewy\n---\napiVersion: networking.istio.io/v2\nkind: Gateway\n",
            serde_json::to_string(&yaml::parse_stream(GATEWAY).documents[0].value).unwrap()
        );
        let load = load(&text);
        assert_eq!(load.loaded.len(), 1);
        assert_eq!(load.loaded[0].origin.location().position.line, 4);
        assert_eq!(load.skipped[0].kind, "ConfigMap");
        let found = issues(&load);
        assert!(
            found[0].contains("unknown kind Gatewy in networking.istio.io"),
            "{found:?}"
        );
        assert!(found[1].contains("not served in version v2"), "{found:?}");
    }

    #[test]
    fn null_fields_are_not_set() {
        let text = GATEWAY.replace("  name: gw\n", "  name: gw\n  labels:\n  annotations: ~\n");
        let load = load(&text);
        assert!(load.is_clean(), "{:?}", issues(&load));
        let text = GATEWAY.replace("    hosts: ['*']\n", "    hosts:\n");
        assert_eq!(
            issues(&load_text("t.yaml", &text, &LoadOptions::default())),
            vec!["spec.servers[0].hosts: is required@10"]
        );
    }

    #[test]
    fn keeps_documents_before_a_syntax_error() {
        let load = load(&format!("{GATEWAY}---\nkind: [\n"));
        assert_eq!(load.loaded.len(), 1);
        assert_eq!(load.syntax.unwrap().location.position.line, 13);
    }
}
