use trellis_proxy_config::ListenerProtocol;

use crate::testing::{assert_warned, translate};

const SETUP: &str = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  servers:
  - {port: {number: 5432, name: tcp-db, protocol: TCP}, hosts: ["*"]}
  - {port: {number: 5433, name: tcp-other, protocol: TCP}, hosts: ["*"]}
  - {port: {number: 443, name: tls, protocol: TLS}, hosts: ["*.example.com"], tls: {mode: PASSTHROUGH}}
  - {port: {number: 6443, name: https, protocol: HTTPS}, hosts: ["*"], tls: {mode: PASSTHROUGH}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: backends, namespace: istio-system}
spec:
  hosts: [db.internal]
  addresses: [240.0.0.10]
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.5}]
"#;

fn listener<'a>(t: &'a crate::Translation, name: &str) -> Option<&'a ListenerProtocol> {
    t.config
        .listeners
        .iter()
        .find(|l| l.name == name)
        .map(|l| &l.protocol)
}

#[test]
fn tcp_and_passthrough_servers_forward_to_their_only_route() {
    let t = translate(&format!(
        "{SETUP}---\n{}",
        r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: db, namespace: istio-system}
spec:
  hosts: ["*"]
  gateways: [gw]
  tcp:
  - match: [{port: 5433}]
    route: [{destination: {host: other.internal, port: {number: 1}}}]
  - match: [{port: 5432}]
    route: [{destination: {host: db.internal}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: istio-system}
spec:
  hosts: [web.example.com, a.example.com]
  gateways: [gw]
  tls:
  - match: [{port: 443, sniHosts: [web.example.com]}]
    route: [{destination: {host: db.internal, port: {number: 5432}}}]
  - match: [{port: 6443, sniHosts: [a.example.com]}]
    route: [{destination: {host: db.internal, port: {number: 5432}}, weight: 50}, {destination: {host: other.internal, port: {number: 5432}}, weight: 50}]
"#
    ));
    let db = "outbound|5432||db.internal";
    assert_eq!(
        listener(&t, "0.0.0.0_5432"),
        Some(&ListenerProtocol::Tcp { cluster: db.into() })
    );
    assert_eq!(
        listener(&t, "0.0.0.0_5433"),
        Some(&ListenerProtocol::Tcp {
            cluster: "outbound|1||other.internal".into()
        })
    );
    assert_eq!(
        listener(&t, "0.0.0.0_443"),
        Some(&ListenerProtocol::Tcp { cluster: db.into() })
    );
    assert_warned(
        &t,
        &[
            "VirtualService istio-system/web: spec.tls[0].match",
            "whatever their SNI",
        ],
    );
    assert_eq!(listener(&t, "0.0.0.0_6443"), None);
    assert_warned(
        &t,
        &[
            "VirtualService istio-system/web: spec.tls[1].route",
            "splits connections over 2 destinations",
        ],
    );
    assert_eq!(
        t.config.clusters[db].endpoints[0].address,
        "10.0.0.5:5432".parse().unwrap()
    );
}

#[test]
fn servers_without_a_route_get_no_listener() {
    let t = translate(SETUP);
    assert!(t.config.listeners.is_empty(), "{:#?}", t.config.listeners);
    assert_warned(
        &t,
        &[
            "Gateway istio-system/gw: spec.servers[0]",
            "no VirtualService bound to istio-system/gw has a tcp rule for port 5432",
        ],
    );
    assert_warned(
        &t,
        &[
            "Gateway istio-system/gw: spec.servers[2]",
            "has a tls rule for port 443",
        ],
    );
}
