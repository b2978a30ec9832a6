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
        .arg("--state-dir")
        .arg(dir.with_extension("state"))
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
    let _ = std::fs::remove_dir_all(dir.with_extension("state"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("mesh.yaml"), MESH).unwrap();
    let control = control(&dir);
    let at = ["--control", control.debug.as_str()];

    // A bootstrap token for a workload's proxy; a malformed identity is refused.
    let token = stdout(&trellis(&[&["token", "default/reviews"][..], &at].concat()));
    assert!(token.starts_with("trellis1."), "{token}");
    let refused = trellis(&[&["token", "reviews"][..], &at].concat());
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not <namespace>/<service-account>"));

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
    let _ = std::fs::remove_dir_all(dir.with_extension("state"));
}

/// reviews with two subsets, a header rule and a weighted split; ratings behind a fault.
const ROUTED: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: default}
spec: {selector: {app: ratings}, ports: [{name: http, port: 9080}]}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v2, namespace: default}
spec: {address: 127.0.0.22, labels: {app: reviews, version: v2}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: productpage, namespace: default}
spec: {address: 127.0.0.29, labels: {app: productpage}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{uri: {prefix: /reviews}}]
    route: [{destination: {host: reviews, subset: v1}, weight: 90}, {destination: {host: reviews, subset: v3}, weight: 10}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings]
  http:
  - fault: {abort: {httpStatus: 500, percentage: {value: 100}}}
    route: [{destination: {host: ratings}}]
"#;

#[test]
fn explain_names_the_route_subset_fault_or_missing_route_and_their_sources() {
    let dir = std::env::temp_dir().join(format!("trellis-cli-explain-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(dir.with_extension("state"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("mesh.yaml"), MESH).unwrap();
    std::fs::write(dir.join("routed.yaml"), ROUTED).unwrap();
    let control = control(&dir);
    let explain = |args: &[&str]| {
        let all = [
            &["explain", "productpage"][..],
            args,
            &["--control", control.debug.as_str()],
        ]
        .concat();
        stdout(&trellis(&all))
    };

    // A header route to a subset, with the rule and the DestinationRule named.
    let jason = explain(&["http://reviews:9080/reviews/1", "-H", "end-user: jason"]);
    assert!(
        jason.contains("route:        reviews.default.0 [header end-user = \"jason\"]"),
        "{jason}"
    );
    assert!(
        jason.contains("from VirtualService default/reviews spec.http[0]"),
        "{jason}"
    );
    assert!(
        jason.contains("outbound|9080|v2|reviews.default.svc.cluster.local (100%)"),
        "{jason}"
    );
    assert!(
        jason.contains("from DestinationRule default/reviews"),
        "{jason}"
    );
    assert!(jason.contains("127.0.0.22:9080"), "{jason}");

    // A split, one side to a subset no rule defines.
    let split = explain(&["http://reviews:9080/reviews/1"]);
    assert!(
        split.contains("from VirtualService default/reviews spec.http[1]"),
        "{split}"
    );
    assert!(
        split.contains("90% to outbound|9080|v1|reviews.default.svc.cluster.local; 10% 503 (NC)"),
        "{split}"
    );

    // A fault.
    let fault = explain(&["http://ratings:9080/ratings/1"]);
    assert!(
        fault.contains("abort with HTTP 500 on 100% of requests (FI)"),
        "{fault}"
    );
    assert!(
        fault.contains("outcome:      100% aborted with HTTP 500 (FI)"),
        "{fault}"
    );

    // No route, and no virtual host.
    let none = explain(&["http://reviews:9080/other"]);
    assert!(
        none.contains("has no route that matches: 404 (NR)"),
        "{none}"
    );
    let unknown = explain(&["http://details:9080/"]);
    assert!(
        unknown.contains("no virtual host serves \"details:9080\""),
        "{unknown}"
    );

    // JSON for scripts.
    let json: serde_json::Value =
        serde_json::from_str(&explain(&["http://reviews:9080/reviews/1", "-o", "json"])).unwrap();
    assert_eq!(
        json["steps"][2]["source"],
        "VirtualService default/reviews spec.http[1]"
    );
    drop(control);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(dir.with_extension("state"));
}
