//! The proxy's xDS client against an in-process control plane: it takes a configuration as
//! soon as everything it refers to has arrived or is known not to exist.

use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use trellis_proto::node;
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
async fn a_route_to_a_cluster_that_does_not_exist_does_not_hold_the_configuration_back() {
    let dir = std::env::temp_dir().join(format!("trellis-xds-client-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("mesh.yaml"), MESH).unwrap();
    let (_stop, stopped) = watch::channel(false);
    let options = trellis_control::Options {
        config_dir: dir.clone(),
    };
    let plane = trellis_control::ControlPlane::start(&options, stopped.clone()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(plane.serve_xds(listener, stopped.clone()));

    let (configs, mut applied) = mpsc::unbounded_channel::<Config>();
    let apply = Box::new(move |config: Config| {
        let _ = configs.send(config);
        Ok(())
    });
    let (ready, _) = watch::channel(false);
    let options = XdsOptions {
        address: format!("http://{address}"),
        node: node::node("productpage", "default", &[]),
    };
    tokio::spawn(run(options, apply, ready, stopped));

    let config = tokio::time::timeout(Duration::from_secs(10), applied.recv())
        .await
        .expect("a configuration within 10 s, though one of its clusters does not exist")
        .unwrap();
    let route = &config.routes["outbound"].virtual_hosts[0].routes[0];
    let Action::Forward(forward) = &route.action else {
        panic!("{route:?}")
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
    assert!(
        !config.clusters.contains_key(clusters[1]),
        "503 NC at request time"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
