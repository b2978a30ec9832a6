//! The demo's configuration files read and validate as `trellis analyze` reads them: every
//! document accepted, and no error found in the application with each traffic rule applied.

use std::path::{Path, PathBuf};

use trellis_api::analyze::{AnalyzeOptions, analyze};
use trellis_api::fs::load_paths;
use trellis_api::load::LoadOptions;
use trellis_api::validate::Severity;

fn bookinfo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("bookinfo")
}

#[test]
fn every_file_reads_and_every_traffic_rule_analyzes_clean() {
    let base = [
        bookinfo().join("bookinfo.yaml"),
        bookinfo().join("gateway.yaml"),
        bookinfo().join("traffic/destination-rules.yaml"),
    ];
    let mut rules: Vec<PathBuf> = std::fs::read_dir(bookinfo().join("traffic"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| !path.ends_with("destination-rules.yaml"))
        .collect();
    rules.sort();
    assert_eq!(rules.len(), 5, "{rules:?}");
    for rule in rules {
        let mut paths = base.to_vec();
        paths.push(rule.clone());
        let (files, unreadable) = load_paths(&paths, &LoadOptions::default());
        assert!(unreadable.is_empty(), "{unreadable:?}");
        for file in &files {
            assert!(file.is_clean(), "{:?}", file.errors());
            assert!(file.skipped.is_empty(), "{:?}", file.skipped);
        }
        let analysis = analyze(files, &AnalyzeOptions::default());
        assert_eq!(
            analysis.count(Severity::Error),
            0,
            "{}: {:?}",
            rule.display(),
            analysis.messages
        );
    }
}
