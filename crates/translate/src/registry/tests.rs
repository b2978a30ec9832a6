use std::collections::BTreeMap;
use std::net::IpAddr;

use super::*;
use crate::testing::{load, no_dns};

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn registry(yaml: &str) -> Registry {
    Registry::from_resources(&load(yaml), &no_dns)
}

/// Looks `name` up in a fixed table, counting nothing else.
fn fake_dns(name: &str) -> Vec<IpAddr> {
    match name {
        "db.example.com" => vec![ip("192.0.2.1"), ip("192.0.2.2")],
        "api.example.com" => vec![ip("198.51.100.7")],
        "legacy.example.com" => vec![ip("203.0.113.9")],
        _ => Vec::new(),
    }
}

#[test]
fn static_service_entry_endpoints_keep_ports_labels_and_weight() {
    let r = registry(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: shop, namespace: prod}
spec:
  hosts: [shop.internal, shop2.internal]
  ports:
  - {number: 80, name: http, protocol: HTTP, targetPort: 8080}
  - {number: 9090, name: metrics, protocol: HTTP}
  resolution: STATIC
  endpoints:
  - {address: 10.0.0.1, labels: {version: v1}, weight: 3}
  - {address: 10.0.0.2, ports: {http: 8081}}
"#,
    );
    let shop = r.get("shop.internal").expect("host registered");
    assert_eq!(shop.name, "shop.internal");
    assert_eq!(shop.namespace, "prod");
    assert_eq!(shop.port(80).unwrap().protocol, Some(Protocol::Http));
    assert_eq!(shop.port(9090).unwrap().name, "metrics");
    assert_eq!(shop.endpoints.len(), 2);
    let first = &shop.endpoints[0];
    assert_eq!(first.address, ip("10.0.0.1"));
    assert_eq!(first.ports, BTreeMap::from([(80, 8080), (9090, 9090)]));
    assert_eq!(first.labels.get("version").map(String::as_str), Some("v1"));
    assert_eq!(first.weight, 3);
    let second = &shop.endpoints[1];
    assert_eq!(second.ports, BTreeMap::from([(80, 8081), (9090, 9090)]));
    assert_eq!(second.weight, 1);
    assert!(r.get("shop2.internal").is_some(), "each host is a service");
    assert!(shop.visible_from("anywhere"));
}

#[test]
fn dns_resolution_resolves_endpoints_or_the_host() {
    let resources = load(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: default}
spec:
  hosts: [db.example.com]
  ports: [{number: 5432, name: tcp-pg, protocol: TCP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: default}
spec:
  hosts: [api.internal]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
  endpoints:
  - {address: api.example.com, labels: {zone: a}}
  - {address: 10.1.1.1}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: rr, namespace: default}
spec:
  hosts: [db2.internal]
  ports: [{number: 5432, name: tcp-pg, protocol: TCP}]
  resolution: DNS_ROUND_ROBIN
  endpoints: [{address: db.example.com}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: none, namespace: default}
spec:
  hosts: [anything.example.org]
  addresses: [240.0.0.1]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: NONE
"#,
    );
    let r = Registry::from_resources(&resources, &fake_dns);
    let db = r.get("db.example.com").unwrap();
    let addresses: Vec<IpAddr> = db.endpoints.iter().map(|e| e.address).collect();
    assert_eq!(addresses, [ip("192.0.2.1"), ip("192.0.2.2")]);
    assert_eq!(db.endpoints[0].ports, BTreeMap::from([(5432, 5432)]));
    let api = r.get("api.internal").unwrap();
    let addresses: Vec<IpAddr> = api.endpoints.iter().map(|e| e.address).collect();
    assert_eq!(addresses, [ip("198.51.100.7"), ip("10.1.1.1")]);
    assert_eq!(
        api.endpoints[0].labels.get("zone").map(String::as_str),
        Some("a")
    );
    let rr = r.get("db2.internal").unwrap();
    assert_eq!(
        rr.endpoints.len(),
        1,
        "DNS_ROUND_ROBIN keeps the first address"
    );
    assert!(r.get("anything.example.org").unwrap().endpoints.is_empty());
    assert!(r.warnings().is_empty(), "{:?}", r.warnings());
}

#[test]
fn names_that_do_not_resolve_and_unix_sockets_are_reported() {
    let r = registry(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: default}
spec:
  hosts: [nowhere.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: sock, namespace: default}
spec:
  hosts: [sock.internal]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: "unix:///var/run/app.sock"}, {address: 10.0.0.3}]
"#,
    );
    assert!(r.get("nowhere.example.com").unwrap().endpoints.is_empty());
    assert_eq!(r.get("sock.internal").unwrap().endpoints.len(), 1);
    let warnings = r.warnings().join("\n");
    assert!(
        warnings.contains(
            "ServiceEntry default/ext: spec.hosts: host nowhere.example.com resolved to no address"
        ),
        "{warnings}"
    );
    assert!(warnings.contains("ServiceEntry default/sock: spec.endpoints[0]: endpoint unix:///var/run/app.sock is a unix domain socket"), "{warnings}");
}

#[test]
fn kubernetes_services_take_the_workload_entries_they_select() {
    let r = registry(
        r#"
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  selector: {app: reviews}
  ports:
  - {name: http, port: 9080, targetPort: 9081}
  - {name: grpc-api, port: 7070, targetPort: api}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: default}
spec:
  address: 10.0.1.1
  labels: {app: reviews, version: v1}
  ports: {api: 7171}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v2, namespace: default}
spec:
  address: 10.0.1.2
  labels: {app: reviews, version: v2}
  ports: {http: 9999}
  weight: 5
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: elsewhere, namespace: other}
spec:
  address: 10.0.1.3
  labels: {app: reviews}
"#,
    );
    let reviews = r
        .get("reviews.default.svc.cluster.local")
        .expect("service registered");
    assert_eq!(reviews.name, "reviews");
    assert_eq!(reviews.namespace, "default");
    assert_eq!(reviews.port(9080).unwrap().protocol, Some(Protocol::Http));
    assert_eq!(reviews.port(7070).unwrap().protocol, Some(Protocol::Grpc));
    let endpoints: Vec<(IpAddr, BTreeMap<u16, u16>, u32)> = reviews
        .endpoints
        .iter()
        .map(|e| (e.address, e.ports.clone(), e.weight))
        .collect();
    assert_eq!(
        endpoints,
        [
            (
                ip("10.0.1.1"),
                BTreeMap::from([(9080, 9081), (7070, 7171)]),
                1
            ),
            // The entry's port named after the service port wins; a named targetPort the entry
            // does not list leaves that port unserved.
            (ip("10.0.1.2"), BTreeMap::from([(9080, 9999)]), 5),
        ]
    );
}

#[test]
fn pods_without_addresses_are_named_in_a_hint() {
    let r = registry(
        r#"
apiVersion: v1
kind: Service
metadata: {name: details, namespace: default}
spec:
  selector: {app: details}
  ports: [{name: http, port: 9080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: details-v1, namespace: default}
spec:
  selector: {matchLabels: {app: details}}
  template:
    metadata: {labels: {app: details}}
    spec:
      containers: [{name: details, image: details}]
"#,
    );
    assert!(
        r.get("details.default.svc.cluster.local")
            .unwrap()
            .endpoints
            .is_empty()
    );
    assert_eq!(r.warnings().len(), 1, "{:?}", r.warnings());
    assert!(r.warnings()[0].contains(
        "Service default/details: selects Deployment default/details-v1, which has no address"
    ));
}

#[test]
fn external_name_services_resolve_their_name() {
    let resources = load(
        r#"
apiVersion: v1
kind: Service
metadata: {name: legacy, namespace: default}
spec:
  type: ExternalName
  externalName: legacy.example.com
  ports: [{name: http, port: 80}]
"#,
    );
    let r = Registry::from_resources(&resources, &fake_dns);
    let legacy = r.get("legacy.default.svc.cluster.local").unwrap();
    assert_eq!(legacy.endpoints.len(), 1);
    assert_eq!(legacy.endpoints[0].address, ip("203.0.113.9"));
    assert_eq!(legacy.endpoints[0].ports, BTreeMap::from([(80, 80)]));
}

#[test]
fn service_entry_workload_selector_and_visibility() {
    let r = registry(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vm, namespace: apps}
spec:
  hosts: [vm.apps.svc.cluster.local]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: vm}}
  exportTo: [".", "edge"]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-1, namespace: apps}
spec: {address: 10.2.0.1, labels: {app: vm}, ports: {http: 8000}}
---
apiVersion: v1
kind: Service
metadata:
  name: private
  namespace: apps
  annotations: {networking.istio.io/exportTo: "."}
spec:
  ports: [{name: http, port: 80}]
"#,
    );
    let vm = r.get("vm.apps.svc.cluster.local").unwrap();
    assert_eq!(vm.endpoints.len(), 1);
    assert_eq!(vm.endpoints[0].ports, BTreeMap::from([(80, 8000)]));
    assert!(vm.visible_from("apps") && vm.visible_from("edge") && !vm.visible_from("istio-system"));
    let private = r.get("private.apps.svc.cluster.local").unwrap();
    assert!(private.visible_from("apps") && !private.visible_from("istio-system"));
}

#[test]
fn a_host_defined_twice_keeps_the_first_definition() {
    let r = registry(
        r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web-override, namespace: default}
spec:
  hosts: [web.default.svc.cluster.local]
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.9.9.9}]
"#,
    );
    let web = r.get("web.default.svc.cluster.local").unwrap();
    assert_eq!(web.name, "web");
    assert!(web.port(8080).is_none());
    assert_eq!(r.warnings().len(), 1);
    assert!(r.warnings()[0].contains("ServiceEntry default/web-override: host web.default.svc.cluster.local is already defined by Service default/web"));
}

#[test]
fn endpoints_carry_their_workloads_namespace_and_service_account() {
    let resources = load(
        r#"
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec: {selector: {app: reviews}, ports: [{name: http, port: 9080}]}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: default}
spec: {address: 10.0.1.1, labels: {app: reviews}, serviceAccount: bookinfo-reviews}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v2, namespace: default}
spec: {address: 10.0.1.2, labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: shop, namespace: prod}
spec:
  hosts: [shop.internal]
  location: MESH_INTERNAL
  subjectAltNames: [spiffe://cluster.local/ns/prod/sa/legacy]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.1, serviceAccount: shop}, {address: 10.0.0.2}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: default}
spec:
  hosts: [db.example.com]
  ports: [{number: 5432, name: tcp-pg, protocol: TCP}]
  resolution: DNS
---
apiVersion: v1
kind: Service
metadata: {name: legacy, namespace: default}
spec:
  type: ExternalName
  externalName: legacy.example.com
  ports: [{name: http, port: 80}]
"#,
    );
    let r = Registry::from_resources(&resources, &fake_dns);
    let owners = |host: &str| -> Vec<(String, Option<String>)> {
        r.get(host)
            .unwrap()
            .endpoints
            .iter()
            .map(|e| (e.namespace.clone(), e.service_account.clone()))
            .collect()
    };
    let owner =
        |namespace: &str, account: Option<&str>| (namespace.to_owned(), account.map(str::to_owned));
    // A workload that names no service account has Kubernetes' `default`.
    assert_eq!(
        owners("reviews.default.svc.cluster.local"),
        [
            owner("default", Some("bookinfo-reviews")),
            owner("default", Some(DEFAULT_SERVICE_ACCOUNT))
        ]
    );
    assert_eq!(
        owners("shop.internal"),
        [
            owner("prod", Some("shop")),
            owner("prod", Some(DEFAULT_SERVICE_ACCOUNT))
        ]
    );
    // Resolved host names are no workload.
    assert_eq!(
        owners("db.example.com"),
        [owner("default", None), owner("default", None)]
    );
    assert_eq!(
        owners("legacy.default.svc.cluster.local"),
        [owner("default", None)]
    );
    // In the mesh or not: Kubernetes Services are, unless ExternalName; ServiceEntries only
    // with MESH_INTERNAL.
    let external = |host: &str| r.get(host).unwrap().mesh_external;
    assert!(!external("reviews.default.svc.cluster.local"));
    assert!(external("legacy.default.svc.cluster.local"));
    assert!(!external("shop.internal"));
    assert!(external("db.example.com"));
    assert_eq!(
        r.get("shop.internal").unwrap().subject_alt_names,
        ["spiffe://cluster.local/ns/prod/sa/legacy"]
    );
}
