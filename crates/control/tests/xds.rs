//! The delta ADS server through a real gRPC stream: a client subscribes as a sidecar, gets its
//! listeners, route tables, the virtual hosts it asks for and clusters, ACKs and NACKs, and
//! hears of file edits — only of those that change its configuration.

use std::path::PathBuf;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use trellis_control::proxies::ProxyIdentity;
use trellis_control::{ControlPlane, Options};
use trellis_proto::xds::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use trellis_proto::xds::{DeltaDiscoveryRequest, DeltaDiscoveryResponse, Status};
use trellis_proto::{Resource, decode_resource, type_url};

const MESH: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec: {selector: {app: reviews}, ports: [{name: http, port: 9080}]}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: default}
spec: {address: 127.0.0.21, labels: {app: reviews, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: productpage, namespace: default}
spec: {address: 127.0.0.22, labels: {app: productpage}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec: {host: reviews, subsets: [{name: v1, labels: {version: v1}}]}
"#;

fn virtual_service(timeout: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\n\
         metadata: {{name: reviews, namespace: default}}\n\
         spec: {{hosts: [reviews], http: [{{timeout: {timeout}, route: [{{destination: {{host: reviews, subset: v1}}}}]}}]}}\n"
    )
}

struct Mesh {
    dir: PathBuf,
    plane: std::sync::Arc<ControlPlane>,
    address: std::net::SocketAddr,
    _stop: watch::Sender<bool>,
}

async fn mesh(name: &str) -> Mesh {
    let dir = std::env::temp_dir().join(format!("trellis-control-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("mesh.yaml"), MESH).unwrap();
    std::fs::write(dir.join("reviews-vs.yaml"), virtual_service("3s")).unwrap();
    let (stop, stopped) = watch::channel(false);
    let plane = ControlPlane::start(&Options::new(dir.clone()), stopped.clone()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(plane.clone().serve_xds(listener, stopped));
    Mesh {
        dir,
        plane,
        address,
        _stop: stop,
    }
}

struct Client {
    requests: mpsc::Sender<DeltaDiscoveryRequest>,
    responses: Streaming<DeltaDiscoveryResponse>,
}

impl Client {
    async fn connect(mesh: &Mesh, identity: &ProxyIdentity) -> Self {
        let mut grpc =
            AggregatedDiscoveryServiceClient::connect(format!("http://{}", mesh.address))
                .await
                .unwrap();
        let (requests, outgoing) = mpsc::channel(16);
        requests
            .send(DeltaDiscoveryRequest {
                node: Some(identity.to_node()),
                type_url: type_url::LISTENER.into(),
                resource_names_subscribe: vec!["*".into()],
                ..Default::default()
            })
            .await
            .unwrap();
        let responses = grpc
            .delta_aggregated_resources(ReceiverStream::new(outgoing))
            .await
            .unwrap()
            .into_inner();
        Self {
            requests,
            responses,
        }
    }

    async fn next(&mut self) -> DeltaDiscoveryResponse {
        tokio::time::timeout(Duration::from_secs(10), self.responses.message())
            .await
            .expect("a response within 10 s")
            .unwrap()
            .expect("the stream stays open")
    }

    async fn send(&self, request: DeltaDiscoveryRequest) {
        self.requests.send(request).await.unwrap();
    }

    async fn ack(&self, response: &DeltaDiscoveryResponse) {
        self.send(DeltaDiscoveryRequest {
            type_url: response.type_url.clone(),
            response_nonce: response.nonce.clone(),
            ..Default::default()
        })
        .await;
    }

    async fn subscribe(&self, type_url: &str, names: &[&str]) {
        self.send(DeltaDiscoveryRequest {
            type_url: type_url.into(),
            resource_names_subscribe: names.iter().map(|n| n.to_string()).collect(),
            ..Default::default()
        })
        .await;
    }
}

fn decoded(response: &DeltaDiscoveryResponse) -> Vec<Resource> {
    response
        .resources
        .iter()
        .map(|r| {
            let any = r.resource.as_ref().unwrap();
            decode_resource(&any.type_url, &any.value).unwrap()
        })
        .collect()
}

/// The names of the resources of a response, sorted.
fn names(response: &DeltaDiscoveryResponse) -> Vec<&str> {
    let mut names: Vec<&str> = response.resources.iter().map(|r| r.name.as_str()).collect();
    names.sort_unstable();
    names
}

#[tokio::test]
async fn a_sidecar_gets_its_configuration_and_only_the_changes_that_matter() {
    let mesh = mesh("push").await;
    let mut client =
        Client::connect(&mesh, &ProxyIdentity::sidecar("productpage", "default")).await;

    let listeners = client.next().await;
    assert_eq!(listeners.type_url, type_url::LISTENER);
    assert_eq!(names(&listeners), ["outbound"]);
    client.ack(&listeners).await;

    client
        .subscribe(type_url::ROUTE_TABLE, &["outbound", "no-such-table"])
        .await;
    let tables = client.next().await;
    assert_eq!(names(&tables), ["outbound"]);
    assert_eq!(tables.removed_resources, ["no-such-table"]);
    let Resource::RouteTable(table) = &decoded(&tables)[0] else {
        unreachable!()
    };
    assert!(
        table.on_demand && table.virtual_hosts.is_empty(),
        "{table:?}"
    );
    client.ack(&tables).await;

    // Virtual hosts by the authorities requests give: the host serving each, named as itself
    // with the asked names as aliases; names no host serves, removed.
    client
        .subscribe(
            type_url::ON_DEMAND_HOST,
            &["outbound/reviews:9080", "outbound/nowhere:80"],
        )
        .await;
    let hosts = client.next().await;
    let host = "outbound/reviews.default.svc.cluster.local:9080";
    assert_eq!(names(&hosts), [host]);
    assert_eq!(hosts.resources[0].aliases, ["outbound/reviews:9080"]);
    assert_eq!(hosts.removed_resources, ["outbound/nowhere:80"]);
    let Resource::OnDemandHost(h) = &decoded(&hosts)[0] else {
        unreachable!()
    };
    assert_eq!(h.route_table, "outbound");
    assert!(h.host.domains.contains(&"reviews.default:9080".to_owned()));
    client.ack(&hosts).await;
    // Another name of the same host, asked on the stream, is answered too.
    client
        .subscribe(type_url::ON_DEMAND_HOST, &["outbound/reviews.default:9080"])
        .await;
    let again = client.next().await;
    assert_eq!(names(&again), [host]);
    assert_eq!(
        again.resources[0].aliases,
        ["outbound/reviews.default:9080", "outbound/reviews:9080"]
    );
    client.ack(&again).await;

    let cluster = "outbound|9080|v1|reviews.default.svc.cluster.local";
    client.subscribe(type_url::CLUSTER, &[cluster]).await;
    let clusters = client.next().await;
    let Resource::Cluster(c) = &decoded(&clusters)[0] else {
        unreachable!()
    };
    assert_eq!(c.endpoints[0].address, "127.0.0.21:9080".parse().unwrap());
    client.ack(&clusters).await;

    // A comment changes nothing a proxy gets; then the timeout changes the route table only.
    std::fs::write(
        mesh.dir.join("reviews-vs.yaml"),
        format!("# reviewed\n{}", virtual_service("3s")),
    )
    .unwrap();
    let settled = mesh.plane.mesh().config.version;
    // Time for the poller to read the comment first; should it not have, the two edits are read
    // together and this checks less, but nothing false.
    tokio::time::sleep(Duration::from_secs(1)).await;
    std::fs::write(mesh.dir.join("reviews-vs.yaml"), virtual_service("5s")).unwrap();
    let update = client.next().await;
    assert_eq!(update.type_url, type_url::ON_DEMAND_HOST, "{update:?}");
    let Resource::OnDemandHost(h) = &decoded(&update)[0] else {
        unreachable!()
    };
    let trellis_proxy_config::Action::Forward(forward) = &h.host.routes[0].action else {
        unreachable!()
    };
    assert_eq!(
        forward.timeout,
        Some(trellis_proxy_config::Duration::from_millis(5000))
    );
    assert!(mesh.plane.mesh().config.version > settled);

    // A NACK is recorded with its reason.
    client
        .send(DeltaDiscoveryRequest {
            type_url: update.type_url.clone(),
            response_nonce: update.nonce.clone(),
            error_detail: Some(Status {
                code: 3,
                message: "virtual_host.routes[0]: not today".into(),
            }),
            ..Default::default()
        })
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let proxies = mesh.plane.proxies();
        let nacked = proxies[0].types[type_url::ON_DEMAND_HOST].nacked.clone();
        if nacked.as_deref() == Some("virtual_host.routes[0]: not today") {
            assert_eq!(proxies[0].id, "productpage.default");
            assert!(proxies[0].known_workload);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{proxies:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = std::fs::remove_dir_all(&mesh.dir);
}

#[tokio::test]
async fn a_reconnecting_proxy_is_not_sent_what_it_holds() {
    let mesh = mesh("reconnect").await;
    let identity = ProxyIdentity::sidecar("reviews-v1", "default");
    let mut first = Client::connect(&mesh, &identity).await;
    let listeners = first.next().await;
    // The workload's own port gives an inbound listener on its address.
    assert_eq!(names(&listeners), ["inbound|9080", "outbound"]);
    let held: Vec<(String, String)> = listeners
        .resources
        .iter()
        .map(|r| (r.name.clone(), r.version.clone()))
        .collect();
    drop(first);

    let mut grpc = AggregatedDiscoveryServiceClient::connect(format!("http://{}", mesh.address))
        .await
        .unwrap();
    let (requests, outgoing) = mpsc::channel(16);
    requests
        .send(DeltaDiscoveryRequest {
            node: Some(identity.to_node()),
            type_url: type_url::LISTENER.into(),
            resource_names_subscribe: vec!["*".into()],
            initial_resource_versions: held.into_iter().collect(),
            ..Default::default()
        })
        .await
        .unwrap();
    // Then a route table it lacks: the first answer is that, not the listeners again.
    requests
        .send(DeltaDiscoveryRequest {
            type_url: type_url::ROUTE_TABLE.into(),
            resource_names_subscribe: vec!["outbound".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let mut responses = grpc
        .delta_aggregated_resources(ReceiverStream::new(outgoing))
        .await
        .unwrap()
        .into_inner();
    let response = tokio::time::timeout(Duration::from_secs(10), responses.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(response.type_url, type_url::ROUTE_TABLE);
    assert_eq!(names(&response), ["outbound"]);
    assert!(
        !response.resources[0]
            .resource
            .as_ref()
            .unwrap()
            .value
            .is_empty()
    );
    let _ = std::fs::remove_dir_all(&mesh.dir);
}

#[tokio::test]
async fn a_refused_response_is_not_repeated_and_comes_again_with_the_next_change() {
    let mesh = mesh("nack").await;
    let mut client =
        Client::connect(&mesh, &ProxyIdentity::sidecar("productpage", "default")).await;
    let listeners = client.next().await;
    client.ack(&listeners).await;
    client.subscribe(type_url::ROUTE_TABLE, &["outbound"]).await;
    let tables = client.next().await;
    client.ack(&tables).await;
    client
        .subscribe(type_url::ON_DEMAND_HOST, &["outbound/reviews:9080"])
        .await;
    let hosts = client.next().await;
    client.ack(&hosts).await;
    let cluster = "outbound|9080|v1|reviews.default.svc.cluster.local";
    client.subscribe(type_url::CLUSTER, &[cluster]).await;
    let clusters = client.next().await;
    assert_eq!(clusters.system_version_info, "1");
    client
        .send(DeltaDiscoveryRequest {
            type_url: clusters.type_url.clone(),
            response_nonce: clusters.nonce.clone(),
            error_detail: Some(Status {
                code: 3,
                message: "refused for the test".into(),
            }),
            ..Default::default()
        })
        .await;

    // An edit that changes the virtual host only: the refused cluster comes again with it, and
    // nothing came in between.
    std::fs::write(mesh.dir.join("reviews-vs.yaml"), virtual_service("7s")).unwrap();
    let again = client.next().await;
    assert_eq!(again.type_url, type_url::CLUSTER, "{again:?}");
    assert_eq!(names(&again), [cluster]);
    assert_ne!(
        again.system_version_info, "1",
        "sent for the new mesh version"
    );
    client.ack(&again).await;
    let host = client.next().await;
    assert_eq!(host.type_url, type_url::ON_DEMAND_HOST);
    let _ = std::fs::remove_dir_all(&mesh.dir);
}

#[tokio::test]
async fn an_asked_name_hears_when_a_host_comes_and_goes_and_a_reconnect_sends_no_host_again() {
    let mesh = mesh("on-demand").await;
    let identity = ProxyIdentity::sidecar("productpage", "default");
    let mut client = Client::connect(&mesh, &identity).await;
    let listeners = client.next().await;
    client.ack(&listeners).await;
    let asked = "outbound/ratings:9080";
    client.subscribe(type_url::ON_DEMAND_HOST, &[asked]).await;
    let absent = client.next().await;
    assert!(absent.resources.is_empty());
    assert_eq!(absent.removed_resources, [asked]);
    client.ack(&absent).await;

    // The service comes: the name asked is served.
    let ratings = "apiVersion: v1\nkind: Service\nmetadata: {name: ratings, namespace: default}\n\
                   spec: {selector: {app: ratings}, ports: [{name: http, port: 9080}]}\n";
    std::fs::write(mesh.dir.join("ratings.yaml"), ratings).unwrap();
    let came = client.next().await;
    let host = "outbound/ratings.default.svc.cluster.local:9080";
    assert_eq!(came.type_url, type_url::ON_DEMAND_HOST);
    assert_eq!(names(&came), [host]);
    assert_eq!(came.resources[0].aliases, [asked]);
    client.ack(&came).await;
    let version = came.resources[0].version.clone();

    // Reconnecting with the host held: it is not sent again.
    drop(client);
    let mut grpc = AggregatedDiscoveryServiceClient::connect(format!("http://{}", mesh.address))
        .await
        .unwrap();
    let (requests, outgoing) = mpsc::channel(16);
    let subscribe = |type_url: &str, names: &[&str]| DeltaDiscoveryRequest {
        type_url: type_url.into(),
        resource_names_subscribe: names.iter().map(|n| n.to_string()).collect(),
        ..Default::default()
    };
    let mut first = subscribe(type_url::LISTENER, &["*"]);
    first.node = Some(identity.to_node());
    let mut hosts = subscribe(type_url::ON_DEMAND_HOST, &[asked]);
    hosts.initial_resource_versions = [(host.to_owned(), version)].into();
    for request in [
        first,
        hosts,
        subscribe(type_url::ROUTE_TABLE, &["outbound"]),
    ] {
        requests.send(request).await.unwrap();
    }
    let responses = grpc
        .delta_aggregated_resources(ReceiverStream::new(outgoing))
        .await
        .unwrap()
        .into_inner();
    let mut client = Client {
        requests,
        responses,
    };
    assert_eq!(client.next().await.type_url, type_url::LISTENER);
    let table = client.next().await;
    assert_eq!(table.type_url, type_url::ROUTE_TABLE, "{table:?}");
    client.ack(&table).await;

    // The service goes: the host is removed and the name is absent again.
    std::fs::remove_file(mesh.dir.join("ratings.yaml")).unwrap();
    let gone = client.next().await;
    assert_eq!(gone.type_url, type_url::ON_DEMAND_HOST, "{gone:?}");
    assert_eq!(gone.removed_resources, [host, asked]);
    let _ = std::fs::remove_dir_all(&mesh.dir);
}
