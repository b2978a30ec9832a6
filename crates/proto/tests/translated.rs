//! Every configuration the translation makes from Istio's samples crosses the wire unchanged:
//! each sample file is translated as one gateway to which every Gateway applies, with its
//! VirtualServices bound to a catch-all HTTP Gateway as well as their own (so that those written
//! for the mesh are translated too), and as a sidecar; each listener, route table (and on-demand
//! virtual host) and cluster is encoded, decoded and compared.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use prost::Message;
use trellis_api::fs::load_paths;
use trellis_api::{LoadOptions, Resource as IstioResource};
use trellis_proto::{OnDemandHost, Resource, decode_resource, encode, type_url};
use trellis_proxy_config::Config;
use trellis_translate::{GatewayOptions, Registry, SidecarOptions};

fn samples_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("TRELLIS_REFERENCE_DIR") {
        return PathBuf::from(dir).join("samples");
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join("shared/reference/istio/samples"))
        .find(|candidate| candidate.is_dir())
        .expect("shared/reference/istio not found above the checkout; set TRELLIS_REFERENCE_DIR")
}

fn check(type_url: &str, message: &impl Message, expected: Resource) {
    let back = decode_resource(type_url, &message.encode_to_vec())
        .unwrap_or_else(|e| panic!("{} refused: {e}", expected.name()));
    assert_eq!(back, expected);
}

const CATCH_ALL: &str = "
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: everything, namespace: istio-system}
spec:
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: [\"*/*\"]}]
";

#[test]
fn the_samples_translations_cross_the_wire_unchanged() {
    let (files, _) = load_paths(&[samples_dir()], &LoadOptions::default());
    let catch_all = trellis_api::load_text("catch-all", CATCH_ALL, &LoadOptions::default());
    // Services, workloads, ServiceEntries and DestinationRules from every file; the routing
    // resources file by file, since samples of one host contradict each other.
    let mut shared: Vec<IstioResource> = catch_all.loaded.into_iter().map(|l| l.resource).collect();
    let mut by_file = Vec::new();
    for file in files {
        let (routing, other): (Vec<_>, Vec<_>) =
            file.loaded.into_iter().map(|l| l.resource).partition(|r| {
                matches!(
                    r,
                    IstioResource::VirtualService(_) | IstioResource::Gateway(_)
                )
            });
        shared.extend(other);
        by_file.push(routing);
    }
    let (mut routes, mut clusters) = (0, 0);
    for mut resources in by_file {
        for resource in &mut resources {
            if let IstioResource::VirtualService(vs) = resource {
                vs.spec.gateways.push("istio-system/everything".into());
            }
        }
        resources.extend(shared.iter().cloned());
        let (r, c) = cross(&resources);
        routes += r;
        clusters += c;
    }
    assert!(
        routes >= 30 && clusters >= 30,
        "{routes} routes, {clusters} clusters"
    );
}

/// Translates `resources` for a gateway and for a sidecar and checks each part crosses the
/// wire; the routes and clusters seen.
fn cross(resources: &[IstioResource]) -> (usize, usize) {
    let registry = Registry::from_resources(resources, &|_| vec![Ipv4Addr::LOCALHOST.into()]);
    let gateway = trellis_translate::gateway(
        resources,
        &registry,
        &GatewayOptions::new(Ipv4Addr::UNSPECIFIED.into()),
    )
    .config;
    let sidecar = trellis_translate::sidecar(
        resources,
        &registry,
        &SidecarOptions {
            namespace: "default".into(),
            labels: [("app".to_owned(), "productpage".to_owned())].into(),
            outbound: "127.0.0.1:15001".parse().unwrap(),
            address: Some(Ipv4Addr::LOCALHOST.into()),
            app_ip: Ipv4Addr::LOCALHOST.into(),
            trust_domain: trellis_translate::DEFAULT_TRUST_DOMAIN.into(),
        },
    )
    .config;
    let (a, b) = (cross_config(&gateway), cross_config(&sidecar));
    (a.0 + b.0, a.1 + b.1)
}

fn cross_config(config: &Config) -> (usize, usize) {
    let mut routes = 0;
    for listener in &config.listeners {
        check(
            type_url::LISTENER,
            &encode::listener(listener),
            Resource::Listener(listener.clone()),
        );
    }
    for table in config.routes.values() {
        routes += table
            .virtual_hosts
            .iter()
            .map(|h| h.routes.len())
            .sum::<usize>();
        // An on-demand table goes without its hosts, and each host on its own.
        let mut bare = table.clone();
        if table.on_demand {
            bare.virtual_hosts.clear();
            for host in &table.virtual_hosts {
                let (name, message) = encode::on_demand_host(&table.name, host);
                let expected = OnDemandHost {
                    name,
                    route_table: table.name.clone(),
                    host: host.clone(),
                };
                check(
                    type_url::ON_DEMAND_HOST,
                    &message,
                    Resource::OnDemandHost(expected),
                );
            }
        }
        check(
            type_url::ROUTE_TABLE,
            &encode::route_table(table),
            Resource::RouteTable(bare),
        );
    }
    for cluster in config.clusters.values() {
        check(
            type_url::CLUSTER,
            &encode::cluster(cluster),
            Resource::Cluster(Box::new(cluster.clone())),
        );
    }
    (routes, config.clusters.len())
}
