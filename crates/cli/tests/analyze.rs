//! `trellis analyze` run as a process, on real files, the way operators and CI scripts use it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn trellis(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_trellis"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("trellis runs");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn samples() -> PathBuf {
    if let Ok(dir) = std::env::var("TRELLIS_REFERENCE_DIR") {
        return PathBuf::from(dir).join("samples");
    }
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    while !dir.join("shared/reference/istio/samples").is_dir() {
        assert!(
            dir.pop(),
            "shared/reference/istio not found; set TRELLIS_REFERENCE_DIR"
        );
    }
    dir.join("shared/reference/istio/samples")
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../api/tests/fixtures/invalid")
        .join(name)
        .display()
        .to_string()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn istio_samples_analyse_without_errors() {
    let out = trellis(&["analyze", samples().to_str().unwrap()], None);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(!stdout.lines().any(|l| l.starts_with("Error")), "{stdout}");
    assert!(
        text(&out.stderr).contains(" 0 errors"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn broken_files_fail_with_paths_and_lines() {
    let file = fixture("gateway-server-errors.yaml");
    let out = trellis(&["analyze", &file], None);
    assert_eq!(out.status.code(), Some(79));
    let stdout = text(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.contains("spec.servers[0].port.number"))
        .unwrap_or_else(|| panic!("no port finding in:\n{stdout}"));
    assert!(
        line.starts_with("Error [IST0106] (Gateway default/bookinfo-gateway "),
        "{line}"
    );
    assert!(line.contains("gateway-server-errors.yaml:14)"), "{line}");
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("Error")).count(),
        3,
        "{stdout}"
    );
}

#[test]
fn json_output_is_stable_for_scripts() {
    let file = fixture("gateway-server-errors.yaml");
    let out = trellis(&["analyze", "-o", "json", &file], None);
    assert_eq!(out.status.code(), Some(79));
    let findings: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON output");
    let first = &findings.as_array().unwrap()[0];
    let keys: Vec<&str> = first
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for key in [
        "code", "name", "level", "message", "origin", "file", "line", "column", "path",
    ] {
        assert!(keys.contains(&key), "{key} missing from {first}");
    }
    assert_eq!(first["code"], "IST0106");
    assert_eq!(first["name"], "SchemaValidationError");
    assert_eq!(first["level"], "Error");
}

#[test]
fn thresholds_decide_output_and_exit_status() {
    let warning_only = "apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: web}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [\"web.example.com\"]
  - port: {number: 443, name: tls, protocol: TLS}
    hosts: [\"web.example.com\"]
    tls: {mode: PASSTHROUGH, httpsRedirect: true}
";
    let out = trellis(&["analyze", "-"], Some(warning_only));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("Warning [IST0133]"),
        "{}",
        text(&out.stdout)
    );

    let out = trellis(
        &["analyze", "--failure-threshold", "Warning", "-"],
        Some(warning_only),
    );
    assert_eq!(out.status.code(), Some(79));

    let out = trellis(
        &["analyze", "--output-threshold", "Error", "-"],
        Some(warning_only),
    );
    assert_eq!(text(&out.stdout), "");

    let out = trellis(
        &[
            "analyze",
            "--failure-threshold",
            "Warning",
            "-S",
            "IST0133=Gateway default/*",
            "-",
        ],
        Some(warning_only),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
}

#[test]
fn missing_paths_and_bad_flags_are_reported() {
    let out = trellis(&["analyze", "/nonexistent/config.yaml"], None);
    assert_eq!(out.status.code(), Some(79));
    assert!(
        text(&out.stdout).contains("[TRL0004]"),
        "{}",
        text(&out.stdout)
    );

    let out = trellis(&["analyze", "-S", "IST9999", "-"], Some(""));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("unknown message code"),
        "{}",
        text(&out.stderr)
    );

    let out = trellis(&["analyze", "--failure-threshold", "Fatal", "-"], Some(""));
    assert_eq!(out.status.code(), Some(2));
}
