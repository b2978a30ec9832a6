use std::collections::BTreeMap;

use trellis_proxy_config::{
    Action, ListenerProtocol, PeerMtls, RetryPolicy, UpstreamTls, VirtualHost,
};

use super::*;
use crate::testing::{load, no_dns};

/// reviews (two versions) and ratings in `default`, details in `other`; WorkloadEntries give
/// them addresses (pods have none offline).
const MESH: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec: {selector: {app: reviews}, clusterIP: 10.96.0.10, ports: [{name: http, port: 9080}]}
---
apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: default}
spec: {selector: {app: ratings}, ports: [{name: http, port: 9080, targetPort: 8080}, {name: tcp-db, port: 5432}]}
---
apiVersion: v1
kind: Service
metadata: {name: details, namespace: other}
spec: {selector: {app: details}, clusterIP: 10.96.0.20, ports: [{name: http-web, port: 80}]}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: default}
spec: {address: 10.0.0.1, labels: {app: reviews, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v2, namespace: default}
spec: {address: 10.0.0.2, labels: {app: reviews, version: v2}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings, namespace: default}
spec: {address: 10.0.0.3, labels: {app: ratings}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: details, namespace: other}
spec: {address: 10.0.0.4, labels: {app: details}}
"#;

const CANARY: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{sourceLabels: {app: productpage}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 90}
    - {destination: {host: reviews, subset: v2}, weight: 10}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-at-the-edge, namespace: default}
spec:
  hosts: [reviews]
  gateways: [edge]
  http: [{route: [{destination: {host: reviews, subset: v2}}]}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
"#;

fn options(app: &str, address: Option<[u8; 4]>) -> SidecarOptions {
    SidecarOptions {
        namespace: "default".into(),
        labels: BTreeMap::from([("app".to_owned(), app.to_owned())]),
        outbound: "127.0.0.1:15001".parse().unwrap(),
        address: address.map(IpAddr::from),
        app_ip: [127, 0, 0, 1].into(),
        trust_domain: crate::DEFAULT_TRUST_DOMAIN.into(),
    }
}

fn sidecar(yaml: &str, options: &SidecarOptions) -> Translation {
    let resources = load(yaml);
    let registry = crate::Registry::from_resources(&resources, &no_dns);
    crate::sidecar(&resources, &registry, options)
}

fn host<'a>(t: &'a Translation, name: &str) -> &'a VirtualHost {
    let table = &t.config.routes[OUTBOUND];
    table
        .virtual_hosts
        .iter()
        .find(|h| h.name == name)
        .unwrap_or_else(|| panic!("no virtual host {name} in {table:#?}"))
}

fn clusters_of(host: &VirtualHost) -> Vec<Vec<(String, u32)>> {
    host.routes
        .iter()
        .map(|r| match &r.action {
            Action::Forward(f) => f
                .destinations
                .iter()
                .map(|d| (d.cluster.clone(), d.weight))
                .collect(),
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn every_visible_http_port_is_a_virtual_host_with_the_names_a_client_may_use() {
    let t = sidecar(MESH, &options("productpage", None));
    assert!(t.warnings.is_empty(), "{:#?}", t.warnings);
    assert_eq!(
        t.config.listeners,
        [Listener {
            name: OUTBOUND.into(),
            address: "127.0.0.1:15001".parse().unwrap(),
            protocol: ListenerProtocol::Detect {
                route_table: OUTBOUND.into(),
                tcp_cluster: None,
                detection_timeout: None,
            },
            mtls: None,
            inbound: false,
            captured: false,
        }]
    );
    let reviews = host(&t, "reviews.default.svc.cluster.local:9080");
    assert_eq!(
        reviews.domains,
        [
            "reviews.default.svc.cluster.local:9080",
            "reviews.default.svc:9080",
            "reviews.default:9080",
            "reviews:9080",
            "10.96.0.10:9080",
        ]
    );
    assert_eq!(
        clusters_of(reviews),
        [[(
            "outbound|9080||reviews.default.svc.cluster.local".to_owned(),
            100
        )]]
    );
    let Action::Forward(forward) = &reviews.routes[0].action else {
        unreachable!()
    };
    assert_eq!(forward.retry, Some(RetryPolicy::mesh_default()));
    // Another namespace's service: no short name; port 80 also without the port.
    let details = host(&t, "details.other.svc.cluster.local:80");
    assert_eq!(
        details.domains,
        [
            "details.other.svc.cluster.local:80",
            "details.other.svc:80",
            "details.other:80",
            "10.96.0.20:80",
            "details.other.svc.cluster.local",
            "details.other.svc",
            "details.other",
            "10.96.0.20",
        ]
    );
    // The TCP port of ratings is not routed by the HTTP listener.
    let names: Vec<&str> = t.config.routes[OUTBOUND]
        .virtual_hosts
        .iter()
        .map(|h| h.name.as_str())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert_eq!(
        t.config.clusters["outbound|9080||reviews.default.svc.cluster.local"]
            .endpoints
            .len(),
        2
    );
}

#[test]
fn virtual_services_bound_to_the_mesh_route_with_the_workloads_labels() {
    let yaml = format!("{MESH}---{CANARY}");
    let from_productpage = sidecar(&yaml, &options("productpage", None));
    assert!(
        from_productpage.warnings.is_empty(),
        "{:#?}",
        from_productpage.warnings
    );
    let v1 = "outbound|9080|v1|reviews.default.svc.cluster.local".to_owned();
    let v2 = "outbound|9080|v2|reviews.default.svc.cluster.local".to_owned();
    assert_eq!(
        clusters_of(host(
            &from_productpage,
            "reviews.default.svc.cluster.local:9080"
        )),
        [
            vec![(v2.clone(), 100)],
            vec![(v1.clone(), 90), (v2.clone(), 10)]
        ]
    );
    assert_eq!(
        from_productpage.config.clusters[&v2].endpoints[0].address,
        "10.0.0.2:9080".parse().unwrap()
    );
    // Another workload does not match the sourceLabels rule.
    let from_ratings = sidecar(&yaml, &options("ratings", None));
    assert_eq!(
        clusters_of(host(
            &from_ratings,
            "reviews.default.svc.cluster.local:9080"
        )),
        [vec![(v1, 90), (v2, 10)]]
    );
}

#[test]
fn a_sidecar_resource_narrows_what_the_workload_reaches() {
    let yaml = format!(
        "{MESH}---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: default, namespace: default}}
spec:
  egress: [{{hosts: [\"./*\"]}}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: ratings-only, namespace: default}}
spec:
  workloadSelector: {{labels: {{app: productpage}}}}
  egress: [{{hosts: [\"./ratings.default.svc.cluster.local\", \"other/*\"]}}]
"
    );
    let names = |t: &Translation| -> Vec<String> {
        t.config.routes[OUTBOUND]
            .virtual_hosts
            .iter()
            .map(|h| h.name.clone())
            .collect()
    };
    let t = sidecar(&yaml, &options("productpage", None));
    assert_eq!(
        names(&t),
        [
            "details.other.svc.cluster.local:80",
            "ratings.default.svc.cluster.local:9080"
        ]
    );
    let t = sidecar(&yaml, &options("reviews", None));
    assert_eq!(
        names(&t),
        [
            "ratings.default.svc.cluster.local:9080",
            "reviews.default.svc.cluster.local:9080"
        ]
    );
}

#[test]
fn the_workloads_own_ports_are_inbound_listeners_in_front_of_the_application() {
    let t = sidecar(MESH, &options("ratings", Some([10, 0, 0, 3])));
    let inbound: Vec<(&str, String)> = t
        .config
        .listeners
        .iter()
        .filter(|l| l.name != OUTBOUND)
        .map(|l| (l.name.as_str(), l.address.to_string()))
        .collect();
    assert_eq!(
        inbound,
        [
            ("inbound|5432", "10.0.0.3:5432".to_owned()),
            ("inbound|8080", "10.0.0.3:8080".to_owned())
        ]
    );
    let http = &t.config.listeners[2];
    assert_eq!(http.route_table(), Some("inbound|8080"));
    let table = &t.config.routes["inbound|8080"];
    assert_eq!(table.virtual_hosts[0].domains, ["*"]);
    let Action::Forward(forward) = &table.virtual_hosts[0].routes[0].action else {
        unreachable!()
    };
    assert_eq!(forward.destinations[0].cluster, "inbound|8080||");
    assert_eq!(forward.retry, None);
    let cluster = &t.config.clusters["inbound|8080||"];
    assert_eq!(
        cluster.endpoints[0].address,
        "127.0.0.1:8080".parse().unwrap()
    );
    assert_eq!(
        cluster.service.as_ref().map(|s| s.name.as_str()),
        Some("ratings")
    );
    assert_eq!(t.config.listeners[1].tcp_cluster(), Some("inbound|5432||"));
    assert!(t.config.dangling_references().is_empty());
}

#[test]
fn inbound_listeners_take_mutual_tls_as_peer_authentications_say() {
    let yaml = format!(
        "{MESH}---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {{name: default, namespace: istio-system}}
spec: {{mtls: {{mode: STRICT}}}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {{name: ratings, namespace: default}}
spec:
  selector: {{matchLabels: {{app: ratings}}}}
  portLevelMtls: {{8080: {{mode: PERMISSIVE}}}}
"
    );
    let options = options("ratings", Some([10, 0, 0, 3]));
    let t = sidecar(&yaml, &options);
    assert!(t.warnings.is_empty(), "{:#?}", t.warnings);
    let mtls: Vec<(&str, Option<PeerMtls>)> = t
        .config
        .listeners
        .iter()
        .map(|l| (l.name.as_str(), l.mtls))
        .collect();
    // Port-level keys are the workload's ports: ratings' 9080 is 8080 on the workload.
    assert_eq!(
        mtls,
        [
            (OUTBOUND, None),
            ("inbound|5432", Some(PeerMtls::Strict)),
            ("inbound|8080", Some(PeerMtls::Permissive))
        ]
    );
    // The inbound side alone is the same.
    let resources = load(&yaml);
    let registry = crate::Registry::from_resources(&resources, &no_dns);
    let alone = crate::sidecar_inbound(&resources, &registry, &options);
    assert_eq!(alone.config.listeners, t.config.listeners[1..]);
    let outbound_only = SidecarOptions {
        address: None,
        ..options
    };
    let nothing = crate::sidecar_inbound(&resources, &registry, &outbound_only);
    assert!(nothing.config.listeners.is_empty());
}

#[test]
fn outbound_clusters_take_automatic_mutual_tls_in_the_trust_domain() {
    let options = SidecarOptions {
        trust_domain: "example.org".into(),
        ..options("productpage", None)
    };
    let t = sidecar(MESH, &options);
    assert_eq!(
        t.config.clusters["outbound|9080||reviews.default.svc.cluster.local"].tls,
        Some(UpstreamTls::Mesh {
            identities: vec!["spiffe://example.org/ns/default/sa/default".into()],
            automatic: true,
            sni: Some("outbound_.9080_._.reviews.default.svc.cluster.local".into()),
        })
    );
}

#[test]
fn tcp_ports_of_services_with_virtual_ips_are_captured_listeners() {
    let mesh = MESH.replace(
        "metadata: {name: ratings, namespace: default}\nspec: {selector: {app: ratings},",
        "metadata: {name: ratings, namespace: default}\nspec: {selector: {app: ratings}, clusterIP: 10.96.0.30,",
    );
    assert_ne!(mesh, MESH, "the fixture names ratings as expected");
    let t = sidecar(&mesh, &options("productpage", None));
    let captured: Vec<&Listener> = t.config.listeners.iter().filter(|l| l.captured).collect();
    assert_eq!(
        captured,
        [&Listener {
            name: "10.96.0.30_5432".into(),
            address: "10.96.0.30:5432".parse().unwrap(),
            protocol: ListenerProtocol::Tcp {
                cluster: "outbound|5432||ratings.default.svc.cluster.local".into(),
            },
            mtls: None,
            inbound: false,
            captured: true,
        }],
        "only the TCP port; the HTTP port is routed by authority"
    );
    assert!(
        t.config
            .clusters
            .contains_key("outbound|5432||ratings.default.svc.cluster.local")
    );
}
