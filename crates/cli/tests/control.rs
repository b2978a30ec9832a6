//! `trellis control` run as a process on a configuration directory, and `trellis proxy-config`
//! / `trellis proxy-status` reading its debug API, as an operator would.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const MESH: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec: {selector: {app: reviews}, ports: [{name: http, port: 9080}]}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: default}
spec: {address: 127.0.0.21, labels: {app: reviews, version: v1}}
"#;

/// The control plane, killed when dropped.
struct Control {
    child: Child,
    debug: String,
}

impl Drop for Control {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn control(dir: &std::path::Path) -> Control {
    let mut child = Command::new(env!("CARGO_BIN_EXE_trellis"))
        .args(["control", "--config-dir"])
        .arg(dir)
        .args([
            "--xds-listen",
            "127.0.0.1:0",
            "--debug-listen",
            "127.0.0.1:0",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .expect("trellis runs");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let debug = loop {
        assert!(Instant::now() < deadline, "no ready line within 30 s");
        let line = lines.next().expect("a ready line").unwrap();
        if let Some(rest) = line.split(" debug=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    // Keep draining its log so that it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Control { child, debug }
}

fn trellis(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trellis"))
        .args(args)
        .output()
        .expect("trellis runs")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn proxy_config_shows_what_a_workload_gets() {
    let dir = std::env::temp_dir().join(format!("trellis-cli-control-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("mesh.yaml"), MESH).unwrap();
    let control = control(&dir);
    let at = ["--control", control.debug.as_str()];

    let listeners = stdout(&trellis(
        &[&["proxy-config", "listeners", "reviews-v1"][..], &at].concat(),
    ));
    assert!(
        listeners.contains("inbound|9080  127.0.0.21:9080  http      inbound|9080"),
        "{listeners}"
    );
    assert!(
        listeners.contains("outbound      127.0.0.1:15001"),
        "{listeners}"
    );
    let endpoints = stdout(&trellis(
        &[
            &["proxy-config", "endpoints", "reviews-v1.default"][..],
            &at,
        ]
        .concat(),
    ));
    assert!(
        endpoints.contains("127.0.0.21:9080  outbound|9080||reviews.default.svc.cluster.local"),
        "{endpoints}"
    );
    let json = stdout(&trellis(
        &[
            &["proxy-config", "clusters", "reviews-v1", "-o", "json"][..],
            &at,
        ]
        .concat(),
    ));
    let clusters: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(clusters["inbound|9080||"].is_object(), "{json}");

    let status = stdout(&trellis(&[&["proxy-status"][..], &at].concat()));
    assert!(
        status.starts_with("control plane: configuration version 1, 2 resources"),
        "{status}"
    );

    // A control plane that is not there is named in the error.
    let out = trellis(&["proxy-status", "--control", "127.0.0.1:9"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the control plane"));
    drop(control);
    let _ = std::fs::remove_dir_all(&dir);
}
