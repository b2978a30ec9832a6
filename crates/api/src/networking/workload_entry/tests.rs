use crate::{LoadOptions, Resource, load_text};

use crate::testing::issues;

fn doc(kind: &str, spec: &str) -> String {
    format!("apiVersion: networking.istio.io/v1\nkind: {kind}\nmetadata:\n  name: w\nspec:\n{spec}")
}

const ENTRY: &str = "  address: 1.2.3.4
  serviceAccount: sa
  network: net
  labels:
    app: app
  ports:
    http: 1
  weight: 2
  locality: foo/bar/baz
";

const GROUP: &str = "  metadata:
    labels:
      foo: bar
    annotations:
      foo: bar
  probe:
    failureThreshold: 2
    initialDelaySeconds: 1
    periodSeconds: 1
    successThreshold: 1
    timeoutSeconds: 1
    httpGet:
      port: 8080
      host: bar
      scheme: HTTPS
      path: /bar
      httpHeaders:
      - name: foo
        value: bar
  template:
    serviceAccount: sa
    network: net
    labels:
      app: app
    ports:
      http: 1
    weight: 2
    locality: foo/bar/baz
";

#[test]
fn full_examples_load() {
    assert!(
        issues(&doc("WorkloadEntry", ENTRY)).is_empty(),
        "{:?}",
        issues(&doc("WorkloadEntry", ENTRY))
    );
    assert!(
        issues(&doc("WorkloadGroup", GROUP)).is_empty(),
        "{:?}",
        issues(&doc("WorkloadGroup", GROUP))
    );
    let load = load_text(
        "t.yaml",
        &doc("WorkloadGroup", GROUP),
        &LoadOptions::default(),
    );
    let Resource::WorkloadGroup(group) = &load.loaded[0].resource else {
        panic!()
    };
    assert_eq!(group.spec.template.weight, Some(2));
    assert_eq!(
        group
            .spec
            .probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .port
            .get(),
        8080
    );
}

#[test]
fn entry_addresses() {
    for ok in [
        "example.com",
        "unix://@foo",
        "unix:///foo/bar",
        "2001:db8::1",
    ] {
        assert!(
            issues(&doc("WorkloadEntry", &format!("  address: '{ok}'\n"))).is_empty(),
            "{ok}"
        );
    }
    assert_eq!(
        issues(&doc("WorkloadEntry", "  labels: {app: a}\n")),
        vec![
            "spec.address: an address is required (or a network, when the workload is reached through that network's gateway)"
        ]
    );
    assert_eq!(
        issues(&doc("WorkloadEntry", "  network: net\n")),
        vec![
            "warning spec.address: no address is set: the workload is only reachable through the gateway of network \"net\""
        ]
    );
    assert_eq!(
        issues(&doc("WorkloadEntry", "  address: unix:///dir/\n")),
        vec!["spec.address: unix domain socket \"/dir/\" names a directory; name the socket file"]
    );
    assert_eq!(
        issues(&doc("WorkloadEntry", "  address: unix://relative\n")),
        vec![
            "spec.address: unix domain socket \"relative\" must be an absolute path, or start with @ for an abstract socket"
        ]
    );
    assert_eq!(
        issues(&doc(
            "WorkloadEntry",
            "  address: unix://@foo\n  ports: {http: 80}\n"
        )),
        vec!["spec.ports: an entry on a unix domain socket cannot list ports"]
    );
    assert_eq!(
        issues(&doc("WorkloadEntry", "  address: not_a_host\n")),
        vec!["spec.address: \"not_a_host\" is neither an IP address nor a valid host name"]
    );
    let long = format!("  address: {}.com\n", "a.".repeat(130));
    assert!(
        issues(&doc("WorkloadEntry", &long))
            .iter()
            .any(|i| i == "spec.address: may be at most 256 characters long (it has 264)")
    );
}

#[test]
fn entry_ports_and_labels() {
    assert_eq!(
        issues(&doc(
            "WorkloadEntry",
            "  address: 1.1.1.1\n  ports: {http: 99999}\n"
        )),
        vec!["spec.ports.http: port must be between 1 and 65535 (got 99999)"]
    );
    assert_eq!(
        issues(&doc(
            "WorkloadEntry",
            "  address: 1.1.1.1\n  ports: {'@': 80, Http: 81}\n"
        )),
        vec![
            "spec.ports.@: port name \"@\" is invalid: use at most 62 lowercase letters, digits and '-', starting and ending with a letter or digit",
            "spec.ports.Http: port name \"Http\" is invalid: use at most 62 lowercase letters, digits and '-', starting and ending with a letter or digit",
        ]
    );
    let found = issues(&doc(
        "WorkloadEntry",
        "  address: 1.1.1.1\n  labels: {'-bad': x}\n",
    ));
    assert_eq!(found.len(), 1);
    assert!(
        found[0].starts_with("spec.labels.-bad: label key \"-bad\""),
        "{found:?}"
    );
}

#[test]
fn group_requires_a_template() {
    assert_eq!(
        issues(&doc("WorkloadGroup", "  probe: {tcpSocket: {port: 80}}\n")),
        vec!["spec.template: is required"]
    );
}

#[test]
fn group_template_checks_only_its_form() {
    // No address is fine: it is filled in when a workload registers.
    assert!(issues(&doc("WorkloadGroup", "  template: {}\n")).is_empty());
    assert_eq!(
        issues(&doc(
            "WorkloadGroup",
            "  template: {address: 'unix://@s', ports: {http: 80}}\n"
        )),
        vec!["spec.template.ports: an entry on a unix domain socket cannot list ports"]
    );
    assert_eq!(
        issues(&doc("WorkloadGroup", "  template: {ports: {'a_b': 80}}\n")),
        vec![
            "spec.template.ports.a_b: port name \"a_b\" is invalid: use at most 62 letters, digits and '-', starting and ending with a letter or digit"
        ]
    );
    let found = issues(&doc(
        "WorkloadGroup",
        "  metadata: {labels: {'a/b/c': x}}\n  template: {}\n",
    ));
    assert_eq!(found.len(), 1);
    assert!(
        found[0].starts_with("spec.metadata.labels[\"a/b/c\"]: "),
        "{found:?}"
    );
}

#[test]
fn probes() {
    let group = |probe: &str| {
        doc(
            "WorkloadGroup",
            &format!("  template: {{}}\n  probe:\n{probe}"),
        )
    };
    assert_eq!(
        issues(&group("    periodSeconds: 5\n")),
        vec!["spec.probe: a probe needs one of httpGet, tcpSocket or exec"]
    );
    assert_eq!(
        issues(&group("    periodSeconds: -1\n    tcpSocket: {port: 80}\n")),
        vec!["spec.probe.periodSeconds: must not be negative (got -1)"]
    );
    assert_eq!(
        issues(&group("    tcpSocket: {port: 65536}\n")),
        vec!["spec.probe.tcpSocket.port: port must be between 1 and 65535 (got 65536)"]
    );
    assert_eq!(
        issues(&group(
            "    tcpSocket: {port: 80}\n    exec: {command: ['true']}\n"
        )),
        vec![
            "spec.probe: only one of httpGet, tcpSocket, exec, grpc may be set (found tcpSocket and exec)"
        ]
    );
    assert_eq!(
        issues(&group("    grpc: {port: 80}\n")),
        vec![
            "spec.probe.grpc: gRPC probes are not supported for workload groups; use httpGet, tcpSocket or exec"
        ]
    );
    assert_eq!(
        issues(&group("    exec: {command: []}\n")),
        vec!["spec.probe.exec.command: the command to run is required"]
    );
    assert_eq!(
        issues(&group("    exec: {command: ['']}\n")),
        vec!["spec.probe.exec.command[0]: command arguments cannot be empty"]
    );
    assert_eq!(
        issues(&group("    exec: {}\n")),
        vec!["spec.probe.exec.command: is required"]
    );
    assert_eq!(
        issues(&group(
            "    httpGet: {port: 80, scheme: TCP, httpHeaders: [{name: '**'}, {value: x}, {name: a_b}]}\n"
        )),
        vec![
            "spec.probe.httpGet.scheme: scheme must be HTTP or HTTPS (got \"TCP\")",
            "spec.probe.httpGet.httpHeaders[0].name: header name \"**\" may only contain letters, digits and '-'",
            "spec.probe.httpGet.httpHeaders[1].name: a probe header needs a name",
            "spec.probe.httpGet.httpHeaders[2].name: header name \"a_b\" may only contain letters, digits and '-'",
        ]
    );
    assert_eq!(
        issues(&group("    httpGet: {path: /}\n")),
        vec!["spec.probe.httpGet.port: is required"]
    );
}
