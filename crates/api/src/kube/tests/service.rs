//! `Service`: a full object, and each rule at its field.

use super::{accepted, as_written, errors};
use crate::kube::*;
use crate::resource::Resource;
use crate::types::Port;

const SERVICE: &str = "apiVersion: v1
kind: Service
metadata:
  name: echo
  namespace: echo-grpc
spec:
  type: NodePort
  selector:
    app: echo
  ports:
  - name: http
    port: 80
    targetPort: 18080
    nodePort: 30080
    appProtocol: kubernetes.io/h2c
  - name: grpc
    port: 7070
    targetPort: grpc-port
    protocol: TCP
  - name: dns
    port: 53
    protocol: UDP
  clusterIP: 10.96.0.10
  clusterIPs: [10.96.0.10, 'fd00::10']
  ipFamilies: [IPv4, IPv6]
  ipFamilyPolicy: RequireDualStack
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 300}}
  externalTrafficPolicy: Local
  internalTrafficPolicy: Cluster
  externalIPs: [192.0.2.1]
  publishNotReadyAddresses: true
  trafficDistribution: PreferClose
status:
  loadBalancer: {}
";

#[test]
fn a_full_service_loads_and_round_trips() {
    let (resource, warnings) = accepted(SERVICE);
    assert!(warnings.is_empty(), "{warnings:?}");
    let Resource::Service(service) = &resource else {
        panic!("not a service: {resource:?}")
    };
    let spec = &service.spec;
    assert_eq!(spec.service_type(), ServiceType::NodePort);
    assert_eq!(
        spec.ports[0].target(),
        TargetPort::Number(Port::new(18080).unwrap())
    );
    assert_eq!(spec.ports[1].target(), TargetPort::Name("grpc-port".into()));
    assert_eq!(
        spec.ports[2].target(),
        TargetPort::Number(Port::new(53).unwrap())
    );
    assert_eq!(spec.ports[2].protocol(), TransportProtocol::Udp);
    assert_eq!(spec.port_named("grpc").map(|p| p.port.get()), Some(7070));
    assert_eq!(spec.ip_families, [IpFamily::V4, IpFamily::V6]);
    assert_eq!(resource.to_value()["spec"], as_written(SERVICE)["spec"]);
}

#[test]
fn service_fields_are_checked_when_read() {
    let text = SERVICE
        .replace("targetPort: 18080", "targetPort: 70000")
        .replace("protocol: UDP", "protocol: ICMP")
        .replace("sessionAffinity: ClientIP", "sessionAffinty: ClientIP");
    let found = errors(&text);
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(
        found[0].starts_with("spec.ports[0].targetPort: port must be between 1 and 65535"),
        "{found:?}"
    );
    assert!(
        found[1].starts_with("spec.ports[2].protocol: unknown value `ICMP`"),
        "{found:?}"
    );
    assert_eq!(
        found[2],
        "spec.sessionAffinty: unknown field \"sessionAffinty\""
    );
}

fn service_with(spec: &str) -> String {
    format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: svc\nspec:\n{spec}")
}

#[test]
fn service_port_names_are_required_unique_labels() {
    let text = service_with(
        "  selector: {app: a}
  ports:
  - {port: 80}
  - {port: 81, name: Web}
  - {port: 82, name: web}
  - {port: 83, name: web}
  - {port: 83, name: other}
",
    );
    assert_eq!(
        errors(&text),
        [
            "spec.ports[0].name: is required when a service has more than one port",
            "spec.ports[1].name: \"Web\" is not a valid port name: use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit",
            "spec.ports[3].name: port name \"web\" is used twice; port names must be unique",
            "spec.ports[4]: port 83/TCP is listed twice",
        ]
    );
}

#[test]
fn service_target_port_names_are_iana_service_names() {
    let text = service_with(
        "  ports:
  - {name: a, port: 80, targetPort: '8080'}
  - {name: b, port: 81, targetPort: http--alt}
  - {name: c, port: 82, targetPort: a-very-long-port-name}
  - {name: d, port: 83, targetPort: http-alt}
",
    );
    assert_eq!(
        errors(&text),
        [
            "spec.ports[0].targetPort: \"8080\" is not a valid port name: it has no letter (for a port number, write it without quotes); use 1-15 lowercase letters, digits and '-', with at least one letter",
            "spec.ports[1].targetPort: \"http--alt\" is not a valid port name: it cannot contain \"--\"; use 1-15 lowercase letters, digits and '-', with at least one letter",
            "spec.ports[2].targetPort: \"a-very-long-port-name\" is not a valid port name: it is longer than 15 characters; use 1-15 lowercase letters, digits and '-', with at least one letter",
        ]
    );
}

#[test]
fn port_names_follow_iana_rules() {
    for ok in ["http", "grpc-web", "h2c", "a1", "http-8080"] {
        assert!(check_port_name(ok).is_ok(), "{ok}");
    }
    for bad in [
        "",
        "HTTP",
        "-http",
        "http-",
        "h--c",
        "123",
        "http_alt",
        "abcdefghijklmnop",
    ] {
        assert!(check_port_name(bad).is_err(), "{bad}");
    }
}

#[test]
fn service_needs_ports_unless_headless_or_external_name() {
    assert_eq!(
        errors(&service_with("  selector: {app: a}\n")),
        [
            "spec.ports: a service needs at least one port (only ExternalName and headless services may have none)"
        ]
    );
    accepted(&service_with("  clusterIP: None\n  selector: {app: a}\n"));
    accepted(&service_with(
        "  type: ExternalName\n  externalName: db.example.com.\n",
    ));
}

#[test]
fn external_name_services_need_a_dns_name_and_no_cluster_ip() {
    assert_eq!(
        errors(&service_with(
            "  type: ExternalName\n  clusterIP: 10.0.0.1\n"
        )),
        [
            "spec.externalName: an ExternalName service needs externalName: the DNS name it stands for",
            "spec.clusterIP: an ExternalName service has no cluster IP; remove clusterIP",
        ]
    );
    assert_eq!(
        errors(&service_with(
            "  type: ExternalName\n  externalName: Db_Host\n"
        )),
        [
            "spec.externalName: \"Db_Host\" is not a valid DNS name: use lowercase letters, digits, '-' and '.'"
        ]
    );
    let (_, warnings) = accepted(&service_with(
        "  externalName: db.example.com\n  ports: [{port: 80}]\n",
    ));
    assert_eq!(
        warnings,
        ["spec.externalName: has no effect unless type is ExternalName"]
    );
}

#[test]
fn node_ports_need_a_node_port_service() {
    assert_eq!(
        errors(&service_with("  ports: [{port: 80, nodePort: 30080}]\n")),
        ["spec.ports[0].nodePort: can only be set when type is NodePort or LoadBalancer"]
    );
    assert_eq!(
        errors(&service_with(
            "  type: LoadBalancer\n  ports: [{port: 80, nodePort: 70000}]\n"
        )),
        ["spec.ports[0].nodePort: port must be between 1 and 65535 (got 70000)"]
    );
}

#[test]
fn service_selector_labels_and_app_protocol_are_checked() {
    let text =
        service_with("  selector: {app: 'a b'}\n  ports: [{port: 80, appProtocol: 'http/2/x'}]\n");
    let found = errors(&text);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found[0].starts_with("spec.ports[0].appProtocol: appProtocol \"http/2/x\""),
        "{found:?}"
    );
    assert!(
        found[1].starts_with("spec.selector.app: label value \"a b\""),
        "{found:?}"
    );
}

#[test]
fn cluster_ips_and_families_are_checked() {
    let text = service_with(
        "  ports: [{port: 80}]
  clusterIP: 10.0.0.1
  clusterIPs: [10.0.0.2, not-an-ip]
  ipFamilies: [IPv4, IPv4]
",
    );
    assert_eq!(
        errors(&text),
        [
            "spec.clusterIPs[1]: \"not-an-ip\" is not an IP address; use an IP address or \"None\" for a headless service",
            "spec.clusterIPs: the first entry must be the same as clusterIP (\"10.0.0.1\", got \"10.0.0.2\")",
            "spec.ipFamilies: a family may be listed only once",
        ]
    );
    assert_eq!(
        errors(&service_with(
            "  ports: [{port: 80}]\n  ipFamilies: [IPv4, IPv6]\n  ipFamilyPolicy: SingleStack\n"
        )),
        [
            "spec.ipFamilyPolicy: SingleStack cannot have two ipFamilies; use PreferDualStack or RequireDualStack"
        ]
    );
    assert_eq!(
        errors(&service_with(
            "  ports: [{port: 80}]\n  ipFamilies: [IPv5]\n"
        )),
        ["spec.ipFamilies[0]: unknown value `IPv5`, expected `IPv4` or `IPv6`"]
    );
}
