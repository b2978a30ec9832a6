//! The whole translation on Istio's Bookinfo gateway sample.

use std::collections::BTreeMap;

use trellis_api::types::StringMatch;
use trellis_proxy_config::{
    Action, Cluster, Endpoint, Forward, Listener, ListenerProtocol, LoadBalancer, RetryPolicy,
    Route, RouteMatch, RouteTable, ServiceRef, UpstreamProtocol, UpstreamTls, VirtualHost,
    WeightedCluster,
};

use crate::testing::{load, no_dns, reference_dir};
use crate::{GatewayOptions, Registry, gateway};

/// productpage as a STATIC ServiceEntry, since pods have no addresses outside a cluster.
const PRODUCTPAGE: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: productpage, namespace: default}
spec:
  hosts: [productpage.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: 19080}}]
"#;

const PRODUCTPAGE_HOST: &str = "productpage.default.svc.cluster.local";

#[test]
fn bookinfo_gateway() {
    let path = reference_dir().join("samples/bookinfo/networking/bookinfo-gateway.yaml");
    let sample =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut resources = load(&sample);
    resources.extend(load(PRODUCTPAGE));
    let registry = Registry::from_resources(&resources, &no_dns);
    assert!(registry.warnings().is_empty(), "{:?}", registry.warnings());
    let labels = BTreeMap::from([("istio".to_owned(), "ingressgateway".to_owned())]);
    let options = GatewayOptions {
        labels: Some(labels),
        ..GatewayOptions::new([0, 0, 0, 0].into())
    };
    let translation = gateway(&resources, &registry, &options);
    assert!(
        translation.warnings.is_empty(),
        "{:#?}",
        translation.warnings
    );
    let config = translation.config;

    assert_eq!(
        config.listeners,
        [Listener {
            name: "0.0.0.0_8080".into(),
            address: "0.0.0.0:8080".parse().unwrap(),
            protocol: ListenerProtocol::Http {
                route_table: "http.8080".into()
            },
            mtls: None,
            inbound: false,
            captured: false,
        }]
    );

    let cluster_name = format!("outbound|9080||{PRODUCTPAGE_HOST}");
    let path = |m: StringMatch| RouteMatch {
        path: Some(m),
        ..RouteMatch::default()
    };
    let route = Route {
        name: "bookinfo.default.0".into(),
        matches: vec![
            path(StringMatch::Exact("/productpage".into())),
            path(StringMatch::Prefix("/static".into())),
            path(StringMatch::Exact("/login".into())),
            path(StringMatch::Exact("/logout".into())),
            path(StringMatch::Prefix("/api/v1/products".into())),
        ],
        action: Action::Forward(Forward {
            destinations: vec![WeightedCluster {
                cluster: cluster_name.clone(),
                weight: 100,
                headers: Default::default(),
            }],
            rewrite: None,
            timeout: None,
            retry: Some(RetryPolicy::mesh_default()),
            mirrors: Vec::new(),
        }),
        headers: Default::default(),
        fault: None,
        cors: None,
        rate_limit: None,
        source: Some("VirtualService default/bookinfo spec.http[0]".into()),
    };
    let table = RouteTable {
        name: "http.8080".into(),
        virtual_hosts: vec![VirtualHost {
            name: "*:8080".into(),
            domains: vec!["*".into()],
            routes: vec![route],
        }],
        on_demand: false,
    };
    assert_eq!(
        config.routes,
        BTreeMap::from([("http.8080".to_owned(), table)])
    );

    let cluster = Cluster {
        name: cluster_name.clone(),
        load_balancer: LoadBalancer::LeastRequest,
        endpoints: vec![Endpoint::new("127.0.0.1:19080".parse().unwrap())],
        protocol: UpstreamProtocol::Http1,
        connect_timeout: None,
        idle_timeout: None,
        service: Some(ServiceRef {
            host: PRODUCTPAGE_HOST.into(),
            name: PRODUCTPAGE_HOST.into(),
            namespace: "default".into(),
            subset: None,
        }),
        outlier_detection: None,
        limits: None,
        tcp_keepalive: None,
        health_check: None,
        source: None,
        // A MESH_INTERNAL service: automatic mutual TLS, to the identity of its endpoint (which
        // names no service account: `default`).
        tls: Some(UpstreamTls::Mesh {
            identities: vec!["spiffe://cluster.local/ns/default/sa/default".into()],
            automatic: true,
            sni: Some(format!("outbound_.9080_._.{PRODUCTPAGE_HOST}")),
        }),
    };
    assert_eq!(config.clusters, BTreeMap::from([(cluster_name, cluster)]));
    assert!(config.dangling_references().is_empty());
}

#[test]
fn bookinfo_gateway_for_a_workload_it_does_not_select() {
    let path = reference_dir().join("samples/bookinfo/networking/bookinfo-gateway.yaml");
    let resources = load(&std::fs::read_to_string(path).unwrap());
    let registry = Registry::from_resources(&resources, &no_dns);
    let labels = BTreeMap::from([("istio".to_owned(), "egressgateway".to_owned())]);
    let options = GatewayOptions {
        labels: Some(labels),
        ..GatewayOptions::new([0, 0, 0, 0].into())
    };
    let config = gateway(&resources, &registry, &options).config;
    assert!(
        config.listeners.is_empty() && config.routes.is_empty() && config.clusters.is_empty(),
        "{config:#?}"
    );
}
