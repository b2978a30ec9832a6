use std::collections::BTreeMap;
use std::net::SocketAddr;

use trellis_proxy_config::{Listener, ListenerProtocol};

use crate::GatewayOptions;
use crate::testing::{assert_warned, translate, translate_with};

const GATEWAYS: &str = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - {port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}
  - {port: {number: 8080, name: grpc, protocol: GRPC}, hosts: ["*"]}
  - {port: {number: 9000, name: http-local, protocol: HTTP2}, hosts: ["*"], bind: 127.0.0.2}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: internal, namespace: istio-system}
spec:
  selector: {istio: internalgateway}
  servers:
  - {port: {number: 80, name: http, protocol: HTTP}, hosts: ["internal.example.com"]}
"#;

fn listeners(t: &crate::Translation) -> Vec<(String, SocketAddr, ListenerProtocol)> {
    t.config
        .listeners
        .iter()
        .map(
            |Listener {
                 name,
                 address,
                 protocol,
                 ..
             }| (name.clone(), *address, protocol.clone()),
        )
        .collect()
}

fn http(table: &str) -> ListenerProtocol {
    ListenerProtocol::Http {
        route_table: table.into(),
    }
}

#[test]
fn servers_become_listeners_by_address() {
    let t = translate(GATEWAYS);
    assert!(t.warnings.is_empty(), "{:#?}", t.warnings);
    assert_eq!(
        listeners(&t),
        [
            (
                "0.0.0.0_80".to_owned(),
                "0.0.0.0:80".parse().unwrap(),
                http("http.80")
            ),
            (
                "0.0.0.0_8080".to_owned(),
                "0.0.0.0:8080".parse().unwrap(),
                http("http.8080")
            ),
            (
                "127.0.0.2_9000".to_owned(),
                "127.0.0.2:9000".parse().unwrap(),
                http("http.127.0.0.2_9000")
            ),
        ]
    );
    assert_eq!(t.config.routes.len(), 3);
    assert!(t.config.dangling_references().is_empty());
}

#[test]
fn gateways_apply_to_the_workloads_they_select() {
    let labels = BTreeMap::from([
        ("istio".to_owned(), "internalgateway".to_owned()),
        ("app".to_owned(), "gw".to_owned()),
    ]);
    let options = GatewayOptions {
        labels: Some(labels),
        ..GatewayOptions::new("10.1.1.1".parse().unwrap())
    };
    let t = translate_with(GATEWAYS, &options);
    assert_eq!(
        listeners(&t),
        [(
            "10.1.1.1_80".to_owned(),
            "10.1.1.1:80".parse().unwrap(),
            http("http.80")
        )]
    );
    let nobody = GatewayOptions {
        labels: Some(BTreeMap::new()),
        ..options
    };
    assert!(
        translate_with(GATEWAYS, &nobody)
            .config
            .listeners
            .is_empty()
    );
}

#[test]
fn servers_that_cannot_be_served_are_reported() {
    let t = translate(
        r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge, namespace: istio-system}
spec:
  servers:
  - {port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}
  - {port: {number: 80, name: tcp, protocol: TCP}, hosts: ["*"]}
  - {port: {number: 443, name: https, protocol: HTTPS}, hosts: ["*"], tls: {mode: SIMPLE, credentialName: cert}}
  - {port: {number: 15443, name: tls, protocol: TLS}, hosts: ["*.local"], tls: {mode: AUTO_PASSTHROUGH}}
"#,
    );
    assert_eq!(
        listeners(&t),
        [(
            "0.0.0.0_80".to_owned(),
            "0.0.0.0:80".parse().unwrap(),
            http("http.80")
        )]
    );
    assert_warned(
        &t,
        &[
            "Gateway istio-system/edge: spec.servers[1]",
            "already served by Gateway istio-system/edge spec.servers[0] (HTTP)",
        ],
    );
    assert_warned(
        &t,
        &[
            "spec.servers[2]",
            "HTTPS servers that terminate TLS are not supported yet",
        ],
    );
    assert_warned(&t, &["spec.servers[3]", "AUTO_PASSTHROUGH"]);
}
