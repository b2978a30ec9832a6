//! Tests of the Kubernetes kinds: full objects load and round-trip, each rule reports at its
//! field (`tests/service.rs`, `tests/workloads.rs`), and every Service, Deployment and Pod of the
//! reference samples loads.

mod service;
mod workloads;

use crate::load::FileLoad;
use crate::resource::Resource;
use crate::testing::sample_files;
use crate::{LoadOptions, Severity, load_text};

fn load(text: &str) -> FileLoad {
    load_text("t.yaml", text, &LoadOptions::default())
}

/// Every error of every refused document, as `path: message`.
fn errors(text: &str) -> Vec<String> {
    load(text)
        .rejected
        .iter()
        .flat_map(|r| &r.issues)
        .filter(|i| i.severity == Severity::Error)
        .map(ToString::to_string)
        .collect()
}

/// The one resource of `text`, which must load without errors.
fn accepted(text: &str) -> (Resource, Vec<String>) {
    let mut load = load(text);
    assert!(
        load.is_clean(),
        "{:?}",
        load.rejected
            .iter()
            .flat_map(|r| &r.issues)
            .collect::<Vec<_>>()
    );
    assert_eq!(load.loaded.len(), 1);
    let loaded = load.loaded.remove(0);
    (
        loaded.resource,
        loaded.warnings.iter().map(ToString::to_string).collect(),
    )
}

fn as_written(text: &str) -> serde_json::Value {
    crate::yaml::parse_stream(text).documents.remove(0).value
}

#[test]
fn every_sample_service_deployment_and_pod_loads() {
    let files = sample_files();
    let ours = ["Service", "Deployment", "Pod", "Namespace"];
    let (mut loaded, mut skipped, mut problems) =
        (0, std::collections::BTreeSet::new(), Vec::new());
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let load = load_text(&file.display().to_string(), &text, &LoadOptions::default());
        loaded += load
            .loaded
            .iter()
            .filter(|l| ours.contains(&l.resource.kind().name()))
            .count();
        skipped.extend(load.skipped.iter().map(|s| s.kind.clone()));
        for rejected in load
            .rejected
            .iter()
            .filter(|r| r.kind.as_deref().is_some_and(|k| ours.contains(&k)))
        {
            for issue in &rejected.issues {
                problems.push(format!("{}: {issue}", rejected.origin.location()));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        loaded >= 60,
        "only {loaded} Services/Deployments/Pods loaded"
    );
    for kind in [
        "ServiceAccount",
        "Secret",
        "Ingress",
        "Certificate",
        "ClusterIssuer",
    ] {
        assert!(
            skipped.contains(kind),
            "{kind} was not skipped: {skipped:?}"
        );
    }
}
