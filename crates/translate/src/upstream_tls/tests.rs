use trellis_proxy_config::{MESH_TLS_LABEL, TlsOrigination, UpstreamTls};

use crate::testing::{assert_warned, translate_with};
use crate::{GatewayOptions, Translation};

const REVIEWS: &str = "reviews.default.svc.cluster.local";
const ALL: &str = "outbound|9080||reviews.default.svc.cluster.local";
const V1: &str = "outbound|9080|v1|reviews.default.svc.cluster.local";
const V2: &str = "outbound|9080|v2|reviews.default.svc.cluster.local";
const SHOP: &str = "outbound|8443||shop.internal";
const EXTERNAL: &str = "outbound|443||api.example.com";

/// A gateway routing to the Kubernetes Service reviews (v1 with a sidecar and a service account,
/// v2 with neither), its subsets, a MESH_INTERNAL ServiceEntry `shop.internal` with
/// `subjectAltNames`, and a ServiceEntry `api.example.com` (outside the mesh by default).
const MESH: &str = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs, namespace: default}
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - match: [{uri: {prefix: /v1}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{uri: {prefix: /v2}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{uri: {prefix: /shop}}]
    route: [{destination: {host: shop.internal, port: {number: 8443}}}]
  - match: [{uri: {prefix: /api}}]
    route: [{destination: {host: api.example.com}}]
  - route: [{destination: {host: reviews}}]
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec: {selector: {app: reviews}, ports: [{name: http, port: 9080}]}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: default}
spec:
  address: 10.0.0.1
  serviceAccount: bookinfo-reviews
  labels: {app: reviews, version: v1, security.istio.io/tlsMode: istio}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v2, namespace: default}
spec: {address: 10.0.0.2, labels: {app: reviews, version: v2}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: shop, namespace: shop}
spec:
  hosts: [shop.internal]
  location: MESH_INTERNAL
  subjectAltNames: [spiffe://cluster.local/ns/shop/sa/legacy]
  ports: [{number: 8443, name: https, protocol: HTTPS}]
  resolution: STATIC
  endpoints: [{address: 10.0.2.1, serviceAccount: shop}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: default}
spec:
  hosts: [api.example.com]
  ports: [{number: 443, name: https, protocol: HTTPS}]
  resolution: STATIC
  endpoints: [{address: 192.0.2.7}]
"#;

const SUBSETS: &str =
    "subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]";

fn mesh(extra: &str) -> Translation {
    mesh_with(extra, &GatewayOptions::new([0, 0, 0, 0].into()))
}

fn mesh_with(extra: &str, options: &GatewayOptions) -> Translation {
    translate_with(&format!("{MESH}\n---\n{extra}"), options)
}

fn tls(t: &Translation, cluster: &str) -> Option<UpstreamTls> {
    t.config.clusters[cluster].tls.clone()
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

const REVIEWS_IDENTITIES: [&str; 2] = [
    "spiffe://cluster.local/ns/default/sa/bookinfo-reviews",
    "spiffe://cluster.local/ns/default/sa/default",
];

#[test]
fn services_in_the_mesh_get_automatic_mutual_tls_to_their_workloads_identities() {
    let t = mesh(&format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n\
         metadata: {{name: reviews, namespace: default}}\nspec: {{host: reviews, {SUBSETS}}}\n"
    ));
    assert!(t.warnings.is_empty(), "{:#?}", t.warnings);
    // Every endpoint of the service counts, whatever the subset; no service account: `default`.
    for (cluster, subset) in [(ALL, ""), (V1, "v1")] {
        assert_eq!(
            tls(&t, cluster),
            Some(UpstreamTls::Mesh {
                identities: strings(&REVIEWS_IDENTITIES),
                automatic: true,
                sni: Some(format!("outbound_.9080_.{subset}_.{REVIEWS}")),
            })
        );
    }
    // The proxy learns which endpoints have a sidecar from their labels.
    let labels: Vec<Option<&str>> = t.config.clusters[ALL]
        .endpoints
        .iter()
        .map(|e| e.labels.get(MESH_TLS_LABEL).map(String::as_str))
        .collect();
    assert_eq!(labels, [Some("istio"), None]);
    // A ServiceEntry's subjectAltNames join its workloads' identities.
    assert_eq!(
        tls(&t, SHOP),
        Some(UpstreamTls::Mesh {
            identities: strings(&[
                "spiffe://cluster.local/ns/shop/sa/legacy",
                "spiffe://cluster.local/ns/shop/sa/shop",
            ]),
            automatic: true,
            sni: Some("outbound_.8443_._.shop.internal".into()),
        })
    );
    // MESH_EXTERNAL, a ServiceEntry's default: no sidecar there, no automatic mutual TLS.
    assert_eq!(tls(&t, EXTERNAL), None);
}

#[test]
fn identities_are_in_the_options_trust_domain() {
    let options = GatewayOptions {
        trust_domain: "example.org".into(),
        ..GatewayOptions::new([0, 0, 0, 0].into())
    };
    let Some(UpstreamTls::Mesh { identities, .. }) = tls(&mesh_with("", &options), ALL) else {
        panic!("automatic mutual TLS expected");
    };
    assert_eq!(
        identities,
        [
            "spiffe://example.org/ns/default/sa/bookinfo-reviews",
            "spiffe://example.org/ns/default/sa/default"
        ]
    );
}

#[test]
fn a_namespace_that_disables_mutual_tls_gets_no_automatic_tls() {
    let policy = |namespace: &str, mode: &str| {
        format!(
            "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n\
             metadata: {{name: default, namespace: {namespace}}}\nspec: {{mtls: {{mode: {mode}}}}}\n"
        )
    };
    let t = mesh(&policy("default", "DISABLE"));
    assert_eq!(tls(&t, ALL), None);
    assert!(tls(&t, SHOP).is_some(), "another namespace");
    let t = mesh(&format!(
        "{}---\n{}",
        policy("istio-system", "DISABLE"),
        policy("shop", "PERMISSIVE")
    ));
    assert_eq!(tls(&t, ALL), None, "mesh-wide");
    assert!(tls(&t, SHOP).is_some(), "the namespace's own policy wins");
    let t = mesh(&format!(
        "{}---\n{}",
        policy("istio-system", "STRICT"),
        policy("default", "UNSET")
    ));
    assert!(tls(&t, ALL).is_some());
}

#[test]
fn destination_rule_modes_with_subsets_and_ports_overriding() {
    let t = mesh(
        r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy:
    tls: {mode: ISTIO_MUTUAL}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      tls:
        mode: SIMPLE
        caCertificates: /etc/certs/ca.pem
        subjectAltNames: [reviews.example.com]
        sni: reviews.example.com
  - name: v2
    labels: {version: v2}
    trafficPolicy: {loadBalancer: {simple: RANDOM}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: shop, namespace: shop}
spec:
  host: shop.internal
  trafficPolicy:
    tls: {mode: DISABLE}
    portLevelSettings:
    - port: {number: 8443}
      tls: {mode: ISTIO_MUTUAL, sni: shop.example, subjectAltNames: [spiffe://other/ns/shop/sa/shop]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: default}
spec:
  host: api.example.com
  trafficPolicy:
    tls:
      mode: MUTUAL
      clientCertificate: /etc/certs/client.pem
      privateKey: /etc/certs/client-key.pem
      insecureSkipVerify: true
"#,
    );
    assert!(t.warnings.is_empty(), "{:#?}", t.warnings);
    assert_eq!(
        tls(&t, ALL),
        Some(UpstreamTls::Mesh {
            identities: strings(&REVIEWS_IDENTITIES),
            automatic: false,
            sni: Some(format!("outbound_.9080_._.{REVIEWS}")),
        })
    );
    assert_eq!(
        tls(&t, V1),
        Some(UpstreamTls::Origination(TlsOrigination {
            ca_certificates: Some("/etc/certs/ca.pem".into()),
            subject_alt_names: strings(&["reviews.example.com"]),
            sni: Some("reviews.example.com".into()),
            ..TlsOrigination::default()
        })),
        "the subset's tls replaces the rule's"
    );
    assert_eq!(
        tls(&t, V2),
        Some(UpstreamTls::Mesh {
            identities: strings(&REVIEWS_IDENTITIES),
            automatic: false,
            sni: Some(format!("outbound_.9080_.v2_.{REVIEWS}")),
        }),
        "a subset without tls keeps the rule's"
    );
    assert_eq!(
        tls(&t, SHOP),
        Some(UpstreamTls::Mesh {
            identities: strings(&["spiffe://other/ns/shop/sa/shop"]),
            automatic: false,
            sni: Some("shop.example".into()),
        }),
        "the port's tls replaces the rule's; its names replace the service's"
    );
    assert_eq!(
        tls(&t, EXTERNAL),
        Some(UpstreamTls::Origination(TlsOrigination {
            client_certificate: Some("/etc/certs/client.pem".into()),
            private_key: Some("/etc/certs/client-key.pem".into()),
            insecure_skip_verify: true,
            ..TlsOrigination::default()
        })),
        "a rule's TLS applies outside the mesh too"
    );
}

#[test]
fn disable_turns_automatic_mutual_tls_off() {
    let t = mesh(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n\
         metadata: {name: reviews, namespace: default}\n\
         spec: {host: reviews, trafficPolicy: {tls: {mode: DISABLE}}}\n",
    );
    assert_eq!(tls(&t, ALL), None);
}

#[test]
fn a_credential_name_cannot_be_read_and_leaves_the_cluster_without_tls() {
    let t = mesh(
        r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: default}
spec:
  host: api.example.com
  trafficPolicy:
    portLevelSettings:
    - port: {number: 443}
      tls: {mode: SIMPLE, credentialName: api-ca}
"#,
    );
    assert_eq!(tls(&t, EXTERNAL), None);
    assert_warned(
        &t,
        &[
            "DestinationRule default/api: spec.trafficPolicy.portLevelSettings[0].tls.credentialName:",
            "\"api-ca\" cannot be read",
            "no TLS",
        ],
    );
}

#[test]
fn fields_simple_tls_cannot_use_are_reported() {
    let t = mesh(
        r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: default}
spec:
  host: api.example.com
  trafficPolicy:
    tls: {mode: SIMPLE, clientCertificate: /c.pem, privateKey: /k.pem, caCrl: /crl.pem}
"#,
    );
    assert_eq!(
        tls(&t, EXTERNAL),
        Some(UpstreamTls::Origination(TlsOrigination::default()))
    );
    for field in ["clientCertificate", "privateKey", "caCrl"] {
        assert_warned(
            &t,
            &[&format!(
                "DestinationRule default/api: spec.trafficPolicy.tls.{field}:"
            )],
        );
    }
}
