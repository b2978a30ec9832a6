//! Helpers shared by the unit tests of the kinds and analyzers.

use std::path::{Path, PathBuf};

use crate::{LoadOptions, Severity, load_text};

/// Every issue found loading `text`: errors as `path: message`, warnings as
/// `warning path: message`.
pub(crate) fn issues(text: &str) -> Vec<String> {
    tagged(text, |severity| {
        if severity == Severity::Error {
            ""
        } else {
            "warning "
        }
    })
}

/// Every issue found loading `text`, as `E path: message` or `W path: message`.
pub(crate) fn marked_issues(text: &str) -> Vec<String> {
    tagged(text, |severity| {
        if severity == Severity::Error {
            "E "
        } else {
            "W "
        }
    })
}

fn tagged(text: &str, tag: impl Fn(Severity) -> &'static str) -> Vec<String> {
    let load = load_text("t.yaml", text, &LoadOptions::default());
    assert!(load.syntax.is_none(), "{:?}", load.syntax);
    load.rejected
        .iter()
        .flat_map(|r| r.issues.iter())
        .chain(load.loaded.iter().flat_map(|l| l.warnings.iter()))
        .map(|i| format!("{}{i}", tag(i.severity)))
        .collect()
}

/// A document of `kind` (`apiVersion` `api_version`) named `name` in namespace `ns`, with
/// `spec` (written unindented) as its spec.
pub(crate) fn document(api_version: &str, kind: &str, name: &str, spec: &str) -> String {
    let spec: Vec<String> = spec.lines().map(|l| format!("  {l}")).collect();
    format!(
        "apiVersion: {api_version}\nkind: {kind}\nmetadata:\n  name: {name}\n  namespace: ns\nspec:\n{}\n",
        spec.join("\n")
    )
}

/// Asserts that exactly one issue starts with `prefix` (mark and path) and contains `words`.
#[track_caller]
pub(crate) fn assert_issue(found: &[String], prefix: &str, words: &str) {
    let hits: Vec<&String> = found
        .iter()
        .filter(|i| i.starts_with(&format!("{prefix}: ")))
        .collect();
    assert!(
        hits.len() == 1 && hits[0].contains(words),
        "expected `{prefix}: ..{words}..`, found {found:#?}"
    );
}

/// Istio's samples: `shared/reference/istio/samples` beside the checkout, or under
/// `$TRELLIS_REFERENCE_DIR`.
pub(crate) fn samples_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("TRELLIS_REFERENCE_DIR") {
        return PathBuf::from(dir).join("samples");
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join("shared/reference/istio/samples"))
        .find(|candidate| candidate.is_dir())
        .expect("shared/reference/istio not found beside the checkout; set TRELLIS_REFERENCE_DIR")
}

/// Every YAML file of the samples, in path order.
pub(crate) fn sample_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&samples_dir(), &mut files);
    files.sort();
    files
}

/// The text of one sample file, by its path under the samples directory.
pub(crate) fn sample(name: &str) -> String {
    let path = samples_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
