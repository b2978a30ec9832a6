//! Each analyzer finds what it should, and nothing else.
//!
//! Each file under `fixtures/analyze/` is a configuration analysed on its own (with the mesh's
//! defaults), starting with `# expect: CODE Kind namespace/name field.path` lines (the path may
//! be `-` for findings about a whole resource). The findings (all levels, Trellis's TRL notes
//! aside) must be exactly those.

use std::path::Path;

use trellis_api::analyze::{AnalyzeOptions, analyze};
use trellis_api::{LoadOptions, load_text};

fn expected(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# expect: "))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    lines.sort();
    lines
}

fn found(name: &str, text: &str) -> Vec<String> {
    let load = load_text(name, text, &LoadOptions::default());
    let analysis = analyze(vec![load], &AnalyzeOptions::default());
    let mut lines: Vec<String> = analysis
        .messages
        .iter()
        .filter(|m| !m.code.id.starts_with("TRL"))
        .map(|m| {
            let path = m
                .path
                .as_ref()
                .filter(|p| !p.is_root())
                .map_or("-".to_owned(), |p| p.to_string());
            format!(
                "{} {} {path}",
                m.code.id,
                m.origin.as_deref().unwrap_or("-")
            )
        })
        .collect();
    lines.sort();
    lines
}

#[test]
fn analyzers_report_exactly_the_expected_findings() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/analyze");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut failures = Vec::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(file).unwrap();
        let (want, got) = (expected(&text), found(&name, &text));
        if want != got {
            let missing: Vec<_> = want.iter().filter(|w| !got.contains(w)).collect();
            let extra: Vec<_> = got.iter().filter(|g| !want.contains(g)).collect();
            failures.push(format!(
                "{name}:\n  missing: {missing:?}\n  unexpected: {extra:?}"
            ));
        }
    }
    assert!(!files.is_empty());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
