//! Cross-resource analysis: what is wrong with a set of resources taken together (a route to a
//! subset nobody defines, two gateways claiming one host, a selector that selects nothing).
//!
//! [`analyze`] takes what was read from the files (including what was refused, which becomes
//! findings too), settles which definition of each resource is in force, adds what the mesh
//! itself provides, and runs every analyzer over the result. Findings carry Istio's codes where
//! the finding is the same one Istio reports (see [`messages`]).

mod annotations;
mod context;
mod deprecation;
mod destination_rules;
mod gateways;
pub mod messages;
mod policies;
mod service_entries;
mod sidecars;
mod virtual_services;
mod workloads;

use std::collections::HashMap;
use std::fmt;

pub use context::{
    CLUSTER_DOMAIN, Context, Entry, HostPort, ServiceHost, Workload, export_scopes,
    protocol_from_port_name, to_fqdn,
};
pub use messages::Code;

use crate::load::{FileLoad, LoadOptions, Location, load_text};
use crate::path::FieldPath;
use crate::resource::Kind;
use crate::validate::{FieldIssue, Severity};

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub code: Code,
    /// The code's level, or lower when the analysed files cannot settle the question (see
    /// [`Report::add_uncertain`]).
    pub level: Severity,
    pub text: String,
    /// `Kind namespace/name` of the resource the finding is about, when there is one.
    pub origin: Option<String>,
    /// The field the finding is about, from the document root.
    pub path: Option<FieldPath>,
    pub location: Option<Location>,
}

impl Message {
    pub fn new(code: Code, text: impl Into<String>) -> Self {
        Self {
            code,
            level: code.level,
            text: text.into(),
            origin: None,
            path: None,
            location: None,
        }
    }

    pub fn level(&self) -> Severity {
        self.level
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}]", self.level, self.code.id)?;
        match (&self.origin, &self.location) {
            (Some(origin), Some(location)) => write!(f, " ({origin} {location})")?,
            (Some(origin), None) => write!(f, " ({origin})")?,
            (None, Some(location)) => write!(f, " ({location})")?,
            (None, None) => {}
        }
        match &self.path {
            Some(path) if !path.is_root() => write!(f, " {path}: {}", self.text),
            _ => write!(f, " {}", self.text),
        }
    }
}

/// Findings, as analyzers report them.
#[derive(Debug, Default)]
pub struct Report {
    messages: Vec<Message>,
}

impl Report {
    /// Reports a finding about `entry`, at the field `path` of it. Findings about the mesh's
    /// own resources (entries without an origin) are dropped: there is nothing to fix.
    pub fn add(&mut self, code: Code, entry: &Entry, path: FieldPath, text: impl Into<String>) {
        let Some(origin) = &entry.origin else { return };
        let location = Some(origin.locate(&path));
        self.messages.push(Message {
            code,
            level: code.level,
            text: text.into(),
            origin: Some(entry.resource.display_name()),
            path: Some(path),
            location,
        });
    }

    /// Reports a finding that depends on something the analysed files leave open (a service in a
    /// namespace they say nothing about, a resource they define more than once): at most a
    /// warning, with `why` appended to the text.
    pub fn add_uncertain(
        &mut self,
        code: Code,
        entry: &Entry,
        path: FieldPath,
        text: impl Into<String>,
        why: &str,
    ) {
        self.add(code, entry, path, format!("{}; {why}", text.into()));
        if let Some(message) = self.messages.last_mut() {
            message.level = message.level.min(Severity::Warning);
        }
    }

    pub fn push(&mut self, message: Message) {
        self.messages.push(message);
    }
}

/// The resources the mesh provides without being told: its default ingress gateway, as a
/// standard install has one. Gateways that select `istio: ingressgateway` bind to it.
const MESH_DEFAULTS: &str = include_str!("mesh_defaults.yaml");

/// The file name findings about the mesh's own resources point at.
pub const MESH_DEFAULTS_FILE: &str = "(mesh defaults)";

/// How to analyse.
#[derive(Debug, Clone)]
pub struct AnalyzeOptions {
    /// Whether to count the mesh's own default resources (its ingress gateway) as present.
    pub mesh_defaults: bool,
}

impl Default for AnalyzeOptions {
    fn default() -> Self {
        Self {
            mesh_defaults: true,
        }
    }
}

/// The outcome of analysing a set of files.
#[derive(Debug, Default)]
pub struct Analysis {
    pub messages: Vec<Message>,
    /// How many resources were analysed (after later definitions replaced earlier ones).
    pub resources: usize,
}

impl Analysis {
    pub fn count(&self, level: Severity) -> usize {
        self.messages.iter().filter(|m| m.level() == level).count()
    }

    /// The most serious level found, if anything was.
    pub fn worst(&self) -> Option<Severity> {
        self.messages.iter().map(Message::level).max()
    }
}

/// Analyses what was read from a set of files, in the order the files were given: when two
/// files define the same resource, the later one is in force, as with `kubectl apply`.
pub fn analyze(files: Vec<FileLoad>, options: &AnalyzeOptions) -> Analysis {
    let mut report = Report::default();
    let mut entries: Vec<Entry> = Vec::new();
    let mut index: HashMap<(Kind, String, String), usize> = HashMap::new();
    for file in files {
        read_problems(&file, &mut report);
        for loaded in file.loaded {
            let entry = Entry {
                resource: loaded.resource,
                origin: Some(loaded.origin),
                definitions: 1,
            };
            let key = (
                entry.resource.kind(),
                entry.resource.namespace().to_owned(),
                entry.resource.name().to_owned(),
            );
            match index.get(&key) {
                Some(&at) => {
                    let definitions = entries[at].definitions + 1;
                    let replaced = std::mem::replace(
                        &mut entries[at],
                        Entry {
                            definitions,
                            ..entry
                        },
                    );
                    let now = entries[at]
                        .origin
                        .as_ref()
                        .map(|o| o.location().to_string())
                        .unwrap_or_default();
                    report.add(
                        messages::REPLACED_RESOURCE,
                        &replaced,
                        FieldPath::root(),
                        format!("this definition is replaced by a later one at {now}"),
                    );
                }
                None => {
                    index.insert(key, entries.len());
                    entries.push(entry);
                }
            }
        }
    }
    let resources = entries.len();
    if options.mesh_defaults {
        let defaults = load_text(MESH_DEFAULTS_FILE, MESH_DEFAULTS, &LoadOptions::default());
        debug_assert!(defaults.is_clean(), "{:?}", defaults.rejected);
        for loaded in defaults.loaded {
            let key = (
                loaded.resource.kind(),
                loaded.resource.namespace().to_owned(),
                loaded.resource.name().to_owned(),
            );
            if !index.contains_key(&key) {
                entries.push(Entry {
                    resource: loaded.resource,
                    origin: None,
                    definitions: 1,
                });
            }
        }
    }
    let context = Context::new(&entries);
    for analyzer in ANALYZERS.iter().flat_map(|family| family.iter()) {
        analyzer(&context, &mut report);
    }
    let mut messages = report.messages;
    messages.sort_by(|a, b| {
        (a.location.as_ref(), a.code.id, &a.text).cmp(&(b.location.as_ref(), b.code.id, &b.text))
    });
    messages.dedup();
    Analysis {
        messages,
        resources,
    }
}

/// An analyzer: reads the set, reports findings.
type Analyzer = fn(&Context<'_>, &mut Report);

/// Every analyzer, family by family.
const ANALYZERS: &[&[Analyzer]] = &[
    gateways::ANALYZERS,
    destination_rules::ANALYZERS,
    virtual_services::ANALYZERS,
    sidecars::ANALYZERS,
    service_entries::ANALYZERS,
    workloads::ANALYZERS,
    annotations::ANALYZERS,
    deprecation::ANALYZERS,
    policies::ANALYZERS,
];

/// Findings for what could not be read: syntax errors, refused documents, validation warnings
/// and kinds set aside.
fn read_problems(file: &FileLoad, report: &mut Report) {
    if let Some(syntax) = &file.syntax {
        let mut message = Message::new(messages::YAML_SYNTAX_ERROR, syntax.message.clone());
        message.location = Some(syntax.location.clone());
        report.push(message);
    }
    for rejected in &file.rejected {
        let origin = match (&rejected.kind, &rejected.name) {
            (Some(kind), Some(name)) => Some(format!("{kind} {name}")),
            (Some(kind), None) => Some(kind.clone()),
            _ => None,
        };
        for issue in &rejected.issues {
            report.push(issue_message(
                issue,
                origin.clone(),
                rejected.origin.locate(&issue.path),
            ));
        }
    }
    for loaded in &file.loaded {
        for issue in &loaded.warnings {
            let origin = Some(loaded.resource.display_name());
            report.push(issue_message(
                issue,
                origin,
                loaded.origin.locate(&issue.path),
            ));
        }
    }
    for skipped in &file.skipped {
        let mut message = Message::new(
            messages::SKIPPED_KIND,
            format!(
                "{} ({}) is not a kind the mesh reads; skipped",
                skipped.kind, skipped.api_version
            ),
        );
        message.origin = Some(match &skipped.name {
            Some(name) => format!("{} {name}", skipped.kind),
            None => skipped.kind.clone(),
        });
        message.location = Some(skipped.origin.location());
        report.push(message);
    }
}

fn issue_message(issue: &FieldIssue, origin: Option<String>, location: Location) -> Message {
    let code = match (issue.code.and_then(messages::find), issue.severity) {
        (Some(code), _) => code,
        (None, Severity::Error) => messages::SCHEMA_VALIDATION_ERROR,
        (None, _) => messages::SCHEMA_WARNING,
    };
    Message {
        code,
        level: code.level,
        text: issue.message.clone(),
        origin,
        path: Some(issue.path.clone()),
        location: Some(location),
    }
}
