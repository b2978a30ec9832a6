//! `trellis analyze`: validate files and analyse them as one configuration.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::ValueEnum;
use serde::Serialize;
use trellis_api::analyze::{AnalyzeOptions, Message, analyze, messages};
use trellis_api::fs::load_paths;
use trellis_api::{FileLoad, LoadOptions, Location, Severity, load_text};

/// Exit status when findings reach the failure threshold (as `istioctl analyze`).
const EXIT_FINDINGS: u8 = 79;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit status: 0 when no finding reaches the failure threshold, 79 when one does.\n\
Message codes: IST0xxx as Istio defines them, TRL0xxx for Trellis's own; see docs/analyze.md."
)]
pub(crate) struct Args {
    /// Files or directories (read recursively: *.yaml, *.yml, *.json) to analyse; - reads stdin.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,

    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    output: Format,

    /// The lowest level of finding that makes the command fail.
    #[arg(long, value_enum, default_value_t = Level::Error)]
    failure_threshold: Level,

    /// The lowest level of finding that is printed.
    #[arg(long, value_enum, default_value_t = Level::Info)]
    output_threshold: Level,

    /// Namespace for resources that name none.
    #[arg(short, long, default_value = trellis_api::meta::DEFAULT_NAMESPACE)]
    namespace: String,

    /// Do not count the mesh's default ingress gateway (istio-system, istio=ingressgateway) as present.
    #[arg(long)]
    no_mesh_defaults: bool,

    /// Hide findings: CODE, or CODE=KIND NAMESPACE/NAME where NAME may use * (e.g. "IST0118=Service default/*").
    #[arg(short = 'S', long = "suppress", value_name = "RULE")]
    suppress: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Level {
    #[value(name = "Info", alias = "info")]
    Info,
    #[value(name = "Warning", alias = "warning")]
    Warning,
    #[value(name = "Error", alias = "error")]
    Error,
}

impl From<Level> for Severity {
    fn from(level: Level) -> Self {
        match level {
            Level::Info => Severity::Info,
            Level::Warning => Severity::Warning,
            Level::Error => Severity::Error,
        }
    }
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let suppressions = args
        .suppress
        .iter()
        .map(|s| Suppression::parse(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let options = LoadOptions {
        default_namespace: args.namespace.clone(),
    };
    let mut loads: Vec<FileLoad> = Vec::new();
    let mut unreadable: Vec<Message> = Vec::new();
    let mut file_count = 0;
    let (stdin, paths): (Vec<PathBuf>, Vec<PathBuf>) = args
        .paths
        .iter()
        .cloned()
        .partition(|p| p.as_os_str() == "-");
    if !stdin.is_empty() {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading standard input")?;
        loads.push(load_text("(stdin)", &text, &options));
        file_count += 1;
    }
    let (files, unreadable_paths) = load_paths(&paths, &options);
    file_count += files.len();
    loads.extend(files);
    unreadable.extend(
        unreadable_paths
            .iter()
            .map(|u| cannot_read(&u.path, &u.error)),
    );
    let mut analysis = analyze(
        loads,
        &AnalyzeOptions {
            mesh_defaults: !args.no_mesh_defaults,
        },
    );
    analysis.messages.splice(0..0, unreadable);
    analysis
        .messages
        .retain(|m| !suppressions.iter().any(|s| s.hides(m)));

    let shown: Vec<&Message> = analysis
        .messages
        .iter()
        .filter(|m| m.level() >= Severity::from(args.output_threshold))
        .collect();
    let mut out = std::io::stdout().lock();
    match args.output {
        Format::Text => {
            for message in &shown {
                writeln!(out, "{message}")?;
            }
        }
        Format::Json => {
            let records: Vec<Record<'_>> = shown.iter().map(|m| Record::from(*m)).collect();
            serde_json::to_writer_pretty(&mut out, &records)?;
            writeln!(out)?;
        }
    }
    out.flush()?;

    let failing = analysis
        .messages
        .iter()
        .any(|m| m.level() >= Severity::from(args.failure_threshold));
    if args.output == Format::Text {
        eprintln!(
            "{} {} resources from {} files: {} errors, {} warnings, {} info.",
            if failing { "✘" } else { "✔" },
            analysis.resources,
            file_count,
            analysis.count(Severity::Error),
            analysis.count(Severity::Warning),
            analysis.count(Severity::Info),
        );
    }
    Ok(if failing {
        ExitCode::from(EXIT_FINDINGS)
    } else {
        ExitCode::SUCCESS
    })
}

fn cannot_read(path: &std::path::Path, error: &std::io::Error) -> Message {
    let mut message = Message::new(
        messages::UNREADABLE_PATH,
        format!("cannot read {}: {error}", path.display()),
    );
    message.location = None;
    message
}

/// A finding as `-o json` prints it: every key always present, so scripts can rely on them.
#[derive(Serialize)]
struct Record<'a> {
    code: &'a str,
    name: &'a str,
    level: &'a str,
    message: &'a str,
    origin: Option<&'a str>,
    file: Option<&'a str>,
    line: Option<usize>,
    column: Option<usize>,
    path: Option<String>,
}

impl<'a> From<&'a Message> for Record<'a> {
    fn from(m: &'a Message) -> Self {
        let location: Option<&Location> = m.location.as_ref();
        Record {
            code: m.code.id,
            name: m.code.name,
            level: m.code.level.as_str(),
            message: &m.text,
            origin: m.origin.as_deref(),
            file: location.map(|l| &*l.file),
            line: location.map(|l| l.position.line),
            column: location.map(|l| l.position.column),
            path: m
                .path
                .as_ref()
                .filter(|p| !p.is_root())
                .map(|p| p.to_string()),
        }
    }
}

/// `-S CODE` or `-S "CODE=Kind namespace/name"`, the name part allowing `*`.
#[derive(Debug)]
struct Suppression {
    code: String,
    resource: Option<String>,
}

impl Suppression {
    fn parse(rule: &str) -> anyhow::Result<Self> {
        let (code, resource) = match rule.split_once('=') {
            Some((code, resource)) => (code.trim(), Some(resource.trim().to_owned())),
            None => (rule.trim(), None),
        };
        let Some(known) = messages::find(code) else {
            bail!("--suppress {rule:?}: unknown message code {code:?}");
        };
        Ok(Self {
            code: known.id.to_owned(),
            resource,
        })
    }

    fn hides(&self, message: &Message) -> bool {
        message.code.id == self.code
            && match (&self.resource, &message.origin) {
                (None, _) => true,
                (Some(pattern), Some(origin)) => glob(pattern, origin),
                (Some(_), None) => false,
            }
    }
}

/// Matches `text` against `pattern`, where `*` stands for any run of characters.
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, tail)) => {
            let Some(rest) = text.strip_prefix(head) else {
                return false;
            };
            (0..=rest.len())
                .filter(|i| rest.is_char_boundary(*i))
                .any(|i| glob(tail, &rest[i..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("Service default/*", "Service default/details"));
        assert!(glob("*", "anything"));
        assert!(!glob("Service default/*", "Service other/details"));
        assert!(glob(
            "VirtualService */reviews",
            "VirtualService default/reviews"
        ));
    }

    #[test]
    fn suppressions_need_known_codes() {
        assert!(Suppression::parse("IST0118").is_ok());
        assert!(Suppression::parse("PortNameIsNotUnderNamingConvention=Service default/*").is_ok());
        assert!(Suppression::parse("IST9999").is_err());
    }
}
