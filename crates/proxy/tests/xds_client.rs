//! The proxy's xDS client against an in-process control plane: it asks for on-demand virtual
//! hosts as requests need them, and takes a configuration as soon as everything it refers to
//! has arrived or is known not to exist.

use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use trellis_proto::node;
use trellis_proxy::Proxy;
use trellis_proxy::xds::{XdsOptions, run};
use trellis_proxy_config::{Action, Config};

const MESH: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec: {selector: {app: reviews}, ports: [{name: http, port: 9080}]}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: default}
spec: {address: 127.0.0.51, labels: {app: reviews, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec: {host: reviews, subsets: [{name: v1, labels: {version: v1}}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 50}
    - {destination: {host: reviews, subset: v9}, weight: 50}
"#;

#[tokio::test]
async fn hosts_come_as_requests_ask_and_a_missing_cluster_does_not_hold_them_back() {
    let dir = std::env::temp_dir().join(format!("trellis-xds-client-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("mesh.yaml"), MESH).unwrap();
    let (_stop, stopped) = watch::channel(false);
    let options = trellis_control::Options::new(dir.clone());
    let plane = trellis_control::ControlPlane::start(&options, stopped.clone()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(plane.serve_xds(listener, stopped.clone()));

    let proxy = Proxy::new(Config::default());
    let (configs, mut applied) = mpsc::unbounded_channel::<Config>();
    let apply = {
        let proxy = proxy.clone();
        Box::new(move |config: Config| {
            proxy.config.update(config.clone());
            let _ = configs.send(config);
            Ok(())
        })
    };
    let (ready, _) = watch::channel(false);
    let options = XdsOptions {
        address: format!("http://{address}"),
        node: node::node("productpage", "default", &[]),
    };
    tokio::spawn(run(options, apply, ready, proxy.on_demand.clone(), stopped));

    // The outbound table comes without its hosts, and no cluster with it.
    let first = tokio::time::timeout(Duration::from_secs(10), applied.recv())
        .await
        .expect("a first configuration within 10 s")
        .unwrap();
    assert!(first.routes["outbound"].on_demand);
    assert!(first.routes["outbound"].virtual_hosts.is_empty());
    assert!(first.clusters.is_empty(), "{:?}", first.clusters.keys());

    // Asked for, the host comes with the clusters it routes to; one of them does not exist,
    // which does not hold the configuration back (503 NC at request time).
    let snapshot = proxy
        .on_demand
        .wait(&proxy.config, "outbound", "Reviews:9080")
        .await
        .expect("the host serving reviews:9080");
    let config = &snapshot.config;
    let host = &config.routes["outbound"].virtual_hosts[0];
    assert_eq!(host.name, "reviews.default.svc.cluster.local:9080");
    let Action::Forward(forward) = &host.routes[0].action else {
        panic!("{:?}", host.routes[0])
    };
    let clusters: Vec<&str> = forward
        .destinations
        .iter()
        .map(|d| d.cluster.as_str())
        .collect();
    assert_eq!(
        clusters,
        [
            "outbound|9080|v1|reviews.default.svc.cluster.local",
            "outbound|9080|v9|reviews.default.svc.cluster.local"
        ]
    );
    assert!(config.clusters.contains_key(clusters[0]));
    assert!(!config.clusters.contains_key(clusters[1]));
    assert_eq!(config.clusters.len(), 1, "only what the host uses");

    // Another name of the same host is served by what is held, without asking.
    let router = snapshot.routers.get("outbound").unwrap();
    assert!(router.serves("reviews.default.svc.cluster.local:9080"));

    // A name no service has is answered as absent, and stays so without asking again.
    for _ in 0..2 {
        let none = proxy
            .on_demand
            .wait(&proxy.config, "outbound", "ratings:9080")
            .await;
        assert!(none.is_none());
    }
    let _ = std::fs::remove_dir_all(&dir);
}
