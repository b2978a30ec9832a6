use super::*;
use crate::testing::{issues, sample};
use crate::{LoadOptions, Resource, load_text};

/// A ServiceEntry document with `spec` (indented by two spaces) and `labels` under metadata.
fn entry(spec: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: se\n  namespace: ns\nspec:\n{spec}"
    )
}

fn spec(text: &str) -> ServiceEntry {
    let load = load_text("t.yaml", &entry(text), &LoadOptions::default());
    match load.loaded.first().map(|l| &l.resource) {
        Some(Resource::ServiceEntry(o)) => o.spec.clone(),
        _ => panic!("not loaded: {:?}", load.rejected),
    }
}

const FULL: &str = "  hosts: [example.com]
  workloadSelector:
    labels:
      foo: bar
  addresses: [1.2.3.4, '001:db8::']
  exportTo: [foo, .]
  location: MESH_EXTERNAL
  ports:
  - name: foo
    protocol: HTTP
    number: 1234
    targetPort: 2345
  subjectAltNames: [sa]
  resolution: DNS
";

#[test]
fn a_full_example_loads() {
    assert!(
        issues(&entry(FULL)).is_empty(),
        "{:?}",
        issues(&entry(FULL))
    );
    let se = spec(FULL);
    assert_eq!(se.resolution(), ServiceEntryResolution::Dns);
    assert_eq!(se.ports[0].protocol, Some(Protocol::Http));
    assert_eq!(se.ports[0].target_port.map(Port::get), Some(2345));
    assert_eq!(se.workload_selector.unwrap().labels["foo"], "bar");
}

#[test]
fn static_endpoints_load() {
    let text = "  hosts: [mysqldb.vm.svc]
  addresses: [10.0.0.3]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 3306, name: tcp, protocol: TCP}
  endpoints:
  - address: 10.0.0.3
    ports: {tcp: 3306}
    labels: {app: mysql}
  - address: unix:///var/run/mysql.sock
";
    assert_eq!(issues(&entry(text)), Vec::<String>::new());
    let se = spec(text);
    assert_eq!(se.endpoints[1].unix_socket(), Some("/var/run/mysql.sock"));
}

#[test]
fn empty_protocol_means_detect() {
    let se = spec(
        "  hosts: [a.example.com]\n  resolution: DNS\n  ports: [{number: 80, name: http, protocol: ''}]\n",
    );
    assert_eq!(se.ports[0].protocol, None);
    let found = issues(&entry(
        "  hosts: [a.example.com]\n  ports: [{number: 80, name: http, protocol: QUIC}]\n",
    ));
    assert!(
        found[0].starts_with("spec.ports[0].protocol: unknown protocol \"QUIC\""),
        "{found:?}"
    );
}

#[test]
fn hosts() {
    assert_eq!(
        issues(&entry("  hosts: []\n")),
        vec!["spec.hosts: a ServiceEntry needs at least one host"]
    );
    assert_eq!(
        issues(&entry("  hosts: ['*']\n")),
        vec![
            "spec.hosts[0]: a ServiceEntry host cannot be \"*\"; name the hosts (a wildcard such as *.example.com is allowed)"
        ]
    );
    let found = issues(&entry("  hosts: [Bad_Host.com]\n"));
    assert_eq!(found.len(), 1);
    assert!(
        found[0].starts_with("spec.hosts[0]: host name \"Bad_Host.com\" is invalid"),
        "{found:?}"
    );
    assert_eq!(
        issues(&entry("  hosts: ['*x.com']\n")),
        vec![
            "warning spec.hosts[0]: partial wildcard \"*x.com\" is not allowed: use \"*\" or \"*.domain\""
        ]
    );
    assert_eq!(issues(&entry("  hosts: []\n")).len(), 1);
    let missing = issues(&entry("  ports: []\n"));
    assert_eq!(missing, vec!["spec.hosts: is required"]);
}

#[test]
fn addresses() {
    assert_eq!(
        issues(&entry("  hosts: [a.com]\n  addresses: [1.2.3.4/99]\n")),
        vec!["spec.addresses[0]: \"1.2.3.4/99\" is not a valid CIDR block"]
    );
    assert_eq!(
        issues(&entry(
            "  hosts: [a.com]\n  addresses: [1.2.3.0/24]\n  resolution: DNS\n"
        )),
        vec![
            "spec.addresses: CIDR blocks are only allowed with resolution NONE or STATIC (resolution is DNS)"
        ]
    );
    assert!(issues(&entry("  hosts: [a.com]\n  addresses: [1.1.1.1/32]\n")).is_empty());
}

#[test]
fn ports_are_unique_and_named() {
    let text = "  hosts: [a.com]
  resolution: DNS
  ports:
  - {name: a, number: 1, protocol: HTTP}
  - {name: a, number: 12, protocol: HTTP}
  - {name: b, number: 1, protocol: HTTP}
  - {name: Bad, number: 2, protocol: HTTP}
";
    assert_eq!(
        issues(&entry(text)),
        vec![
            "spec.ports[1].name: port name \"a\" is used by more than one port",
            "spec.ports[2].number: port 1 is listed more than once",
            "spec.ports[3].name: port name \"Bad\" is invalid: use at most 63 lowercase letters, digits and '-'",
        ]
    );
    let found = issues(&entry(
        "  hosts: [a.com]\n  ports: [{name: a, number: 99999}]\n",
    ));
    assert_eq!(
        found,
        vec!["spec.ports[0].number: port must be between 1 and 65535 (got 99999)"]
    );
    let found = issues(&entry("  hosts: [a.com]\n  ports: [{number: 80}]\n"));
    assert_eq!(found, vec!["spec.ports[0].name: is required"]);
}

#[test]
fn tcp_ports_without_addresses_warn() {
    let text = "  hosts: [a.com]\n  ports: [{name: tcp, number: 9000, protocol: TCP}, {name: h, number: 80, protocol: HTTP}]\n";
    assert_eq!(
        issues(&entry(text)),
        vec![
            "warning spec.ports[0]: a TCP port (or one without a protocol) is matched by destination address, and this service has none: set addresses, or use a resolution other than NONE so that one is allocated"
        ]
    );
    // With DNS resolution an address is allocated, unless the entry opts out.
    let dns = format!("{text}  resolution: DNS\n");
    assert!(issues(&entry(&dns)).is_empty());
    let opted_out = entry(&dns).replace(
        "  namespace: ns\n",
        &format!("  namespace: ns\n  labels:\n    {AUTOALLOCATE_LABEL}: \"false\"\n"),
    );
    let found = issues(&opted_out);
    assert_eq!(found.len(), 1);
    assert!(
        found[0].contains("remove the networking.istio.io/enable-autoallocate-ip"),
        "{found:?}"
    );
}

#[test]
fn resolution_none() {
    let text = "  hosts: [a.com]\n  resolution: NONE\n  endpoints: [{address: 1.2.3.4}]\n";
    assert_eq!(
        issues(&entry(text)),
        vec![
            "spec.endpoints: endpoints cannot be listed with resolution NONE; use STATIC or DNS to send traffic to them"
        ]
    );
    let text = "  hosts: [a.com]\n  workloadSelector: {labels: {app: a}}\n";
    assert_eq!(
        issues(&entry(text)),
        vec![
            "warning spec.workloadSelector: a workloadSelector has no effect with resolution NONE"
        ]
    );
}

#[test]
fn selector_and_endpoints_exclude_each_other() {
    let text = "  hosts: [a.com]\n  resolution: STATIC\n  workloadSelector: {}\n  endpoints: [{address: 1.2.3.4}]\n";
    assert_eq!(
        issues(&entry(text)),
        vec![
            "warning spec.workloadSelector: the selector has no labels, so it selects every workload in the namespace",
            "spec: only one of workloadSelector, endpoints may be set (found workloadSelector and endpoints)",
        ]
    );
    let text = "  hosts: [a.com]\n  resolution: STATIC\n  workloadSelector: {labels: {'*': val, app: 'v*'}}\n";
    assert_eq!(
        issues(&entry(text)),
        vec![
            "spec.workloadSelector.labels[\"*\"]: wildcards are not supported in a workload selector",
            "spec.workloadSelector.labels.app: wildcards are not supported in a workload selector",
        ]
    );
}

#[test]
fn static_endpoints() {
    let text = "  hosts: [a.com]
  addresses: [10.0.0.1]
  resolution: STATIC
  ports: [{name: http, number: 80, protocol: HTTP}, {name: grpc, number: 90, protocol: GRPC}]
  endpoints:
  - address: db.example.com
  - address: 1.2.3.4
    ports: {http: 8080, admin: 9090}
  - address: unix://relative
  - {}
";
    assert_eq!(
        issues(&entry(text)),
        vec![
            "spec.endpoints[0].address: \"db.example.com\" is not an IP address: endpoints of a STATIC ServiceEntry need IP addresses or unix:// sockets (use resolution DNS for host names)",
            "spec.endpoints[1].ports.admin: \"admin\" is not a port of the ServiceEntry (its ports are \"http\", \"grpc\")",
            "spec.endpoints[2].address: unix domain socket \"relative\" must be an absolute path, or start with @ for an abstract socket",
            "spec.endpoints[2].address: a unix domain socket endpoint needs the ServiceEntry to have exactly one port (it has 2)",
            "spec.endpoints[3].address: an address is required (or a network, when the workload is reached through that network's gateway)",
        ]
    );
}

#[test]
fn dns_resolution() {
    let text = "  hosts: ['*.example.com']\n  resolution: DNS\n  ports: [{name: http, number: 80, protocol: HTTP}]\n";
    assert_eq!(
        issues(&entry(text)),
        vec![
            "spec.hosts[0]: with resolution DNS and no endpoints, each host is resolved by DNS, so it must be a plain DNS name (no wildcards)"
        ]
    );
    let text = "  hosts: ['*.example.com']
  resolution: DNS_ROUND_ROBIN
  ports: [{name: http, number: 80, protocol: HTTP}]
  endpoints:
  - address: sub1.example.com
  - address: unix:///sock
  - address: bad_name
    ports: {https: 443}
";
    assert_eq!(
        issues(&entry(text)),
        vec![
            "spec.endpoints: resolution DNS_ROUND_ROBIN takes at most one endpoint (found 3)",
            "spec.endpoints[1].address: a unix domain socket cannot be resolved by DNS: use an IP address or host name, or resolution STATIC",
            "spec.endpoints[2].address: \"bad_name\" is neither an IP address nor a valid host name",
            "spec.endpoints[2].ports.https: \"https\" is not a port of the ServiceEntry (its ports are \"http\")",
        ]
    );
}

#[test]
fn several_hosts_need_http_or_tls_ports() {
    let text = "  hosts: [a.com, b.com]\n  resolution: DNS\n  ports: [{name: http, number: 80, protocol: HTTP}, {name: tcp, number: 9000, protocol: TCP}]\n";
    assert_eq!(
        issues(&entry(text)),
        vec![
            "spec.ports[1].protocol: with several hosts, every port must be HTTP or TLS so that requests can be told apart by host (or use resolution NONE)"
        ]
    );
    let text = "  hosts: [a.com, b.com]\n  addresses: [10.1.1.1]\n  resolution: DNS\n  ports: [{name: tls, number: 443, protocol: TLS}]\n";
    assert_eq!(
        issues(&entry(text)),
        vec![
            "warning spec.hosts: with addresses and a TCP port, traffic cannot be told apart by host: list one host per ServiceEntry"
        ]
    );
}

#[test]
fn dynamic_dns() {
    let text = "  hosts: ['*.example.com', api.example.com]
  addresses: [10.0.0.1]
  resolution: DYNAMIC_DNS
  ports: [{name: http, number: 80, protocol: HTTP}, {name: tcp, number: 9000, protocol: TCP}]
  endpoints: [{address: 1.1.1.1}]
";
    assert_eq!(
        issues(&entry(text)),
        vec![
            "spec.hosts[1]: resolution DYNAMIC_DNS needs wildcard hosts (such as *.example.com)",
            "spec.addresses: addresses cannot be set with resolution DYNAMIC_DNS: each request's host is resolved as it is made",
            "spec.endpoints: endpoints cannot be listed with resolution DYNAMIC_DNS: the request's host is resolved instead",
            "spec.ports[1].protocol: resolution DYNAMIC_DNS supports only HTTP, HTTP2, GRPC and TLS ports",
            "spec.ports[1].protocol: with several hosts, every port must be HTTP or TLS so that requests can be told apart by host (or use resolution NONE)",
        ]
    );
    let text = "  hosts: ['*.example.com']\n  location: MESH_INTERNAL\n  resolution: DYNAMIC_DNS\n  ports: [{name: http, number: 80, protocol: HTTP}]\n";
    assert!(issues(&entry(text)).is_empty());
    let waypoint = entry(text).replace(
        "  namespace: ns\n",
        &format!("  namespace: ns\n  labels:\n    {USE_WAYPOINT_LABEL}: waypoint\n"),
    );
    assert_eq!(
        issues(&waypoint),
        vec![
            "spec.location: MESH_INTERNAL with resolution DYNAMIC_DNS is not supported behind a waypoint; use MESH_EXTERNAL"
        ]
    );
}

#[test]
fn export_to() {
    let text = "  hosts: [a.com]\n  exportTo: ['~']\n";
    assert!(issues(&entry(text)).is_empty());
    let text = "  hosts: [a.com]\n  exportTo: [ns, .]\n";
    assert_eq!(
        issues(&entry(text)),
        vec![
            "spec.exportTo[1]: duplicate exportTo entries: \".\" and the resource's own namespace \"ns\""
        ]
    );
}

#[test]
fn istio_samples_load() {
    // The only ServiceEntry among Istio's samples.
    let name = "bookinfo/networking/egress-rule-google-apis.yaml";
    let load = load_text(name, &sample(name), &LoadOptions::default());
    let entries: Vec<_> = load
        .loaded
        .iter()
        .filter(|l| matches!(l.resource, Resource::ServiceEntry(_)))
        .collect();
    assert_eq!(entries.len(), 1, "{:?}", load.rejected);
    assert!(entries[0].warnings.is_empty(), "{:?}", entries[0].warnings);
    let rejected = load
        .rejected
        .iter()
        .filter(|r| r.kind.as_deref() == Some("ServiceEntry"));
    assert_eq!(rejected.count(), 0, "{:?}", load.rejected);
}
