//! Deliberately broken configuration is refused with the right field paths and messages.
//!
//! Each file under `fixtures/invalid/` is a sample (most of them Istio's own, broken on purpose)
//! that starts with one or more `# expect: <field path>: <words of the message>` lines. Loading
//! the file must report exactly those field paths, each with a message containing those words.

use std::path::Path;

use trellis_api::{LoadOptions, load_text};

struct Expectation {
    path: String,
    words: String,
}

fn expectations(text: &str) -> Vec<Expectation> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# expect: "))
        .map(|rest| {
            let (path, words) = rest.split_once(": ").unwrap_or((rest, ""));
            Expectation {
                path: path.trim().to_owned(),
                words: words.trim().to_owned(),
            }
        })
        .collect()
}

fn check(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let expected = expectations(&text);
    let name = file.file_name().unwrap().to_string_lossy().to_string();
    if expected.is_empty() {
        return vec![format!("{name}: has no `# expect:` lines")];
    }
    let load = load_text(&name, &text, &LoadOptions::default());
    let mut found: Vec<(String, String)> = load
        .rejected
        .iter()
        .flat_map(|r| r.issues.iter())
        .filter(|i| i.severity == trellis_api::Severity::Error)
        .map(|i| (i.path.to_string(), i.message.clone()))
        .collect();
    if let Some(syntax) = &load.syntax {
        found.push(("(syntax)".into(), syntax.message.clone()));
    }
    let mut problems = Vec::new();
    for e in &expected {
        if !found
            .iter()
            .any(|(path, message)| *path == e.path && message.contains(&e.words))
        {
            problems.push(format!(
                "{name}: expected `{}: {}`, found {found:?}",
                e.path, e.words
            ));
        }
    }
    for (path, message) in &found {
        if !expected.iter().any(|e| e.path == *path) {
            problems.push(format!("{name}: unexpected `{path}: {message}`"));
        }
    }
    problems
}

#[test]
fn broken_samples_are_refused_with_field_paths() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let problems: Vec<String> = files.iter().flat_map(|f| check(f)).collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
