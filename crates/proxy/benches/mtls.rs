//! What the mesh's mutual TLS costs: `cargo bench -p trellis-proxy --bench mtls`.
//!
//! Three paths to one upstream, at a fixed 1,000 requests/s over keep-alive connections:
//! **direct**; **two hops, plaintext** (client → proxy → proxy → upstream, as two sidecars);
//! **two hops, mutual TLS** (the same, with the client-side proxy originating the mesh's TLS
//! and the server-side one terminating it in STRICT mode). It reports each path's p50 and p99
//! and what the hops add over the direct path. The legs take turns in rounds, so the machine's
//! noise falls on all of them alike. Then it counts TLS handshakes per second on one core
//! (the server's share of each: ECDSA P-256 certificates, client certificate verified, no
//! resumption), done in memory so that only the cryptography and the TLS machine count.
//!
//! The proxies run in this process, on one 2-thread runtime shared with the load generator
//! (the `trellis-proxy` binary gives each worker a thread of its own); the upstream is
//! `trellis-testkit`'s. A measurement, not a test.

#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::client::Resumption;
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, ServerConnection};
use tokio::sync::watch;
use trellis_identity::{Ca, SpiffeId, new_workload_key};
use trellis_proxy::Proxy;
use trellis_proxy::identity::Certified;
use trellis_proxy::tls::{Alpn, MeshTls};
use trellis_proxy_config::{
    Action, Cluster, Config, Endpoint, Forward, Listener, ListenerProtocol, LoadBalancer, PeerMtls,
    Route, RouteTable, UpstreamProtocol, UpstreamTls, VirtualHost, WeightedCluster,
};
use trellis_testkit::{Upstream, UpstreamConfig};

const RATE: u64 = 1_000;
const CONNECTIONS: u64 = 4;
const ROUNDS: usize = 5;
const ROUND: Duration = Duration::from_secs(4);
const HANDSHAKES: u32 = 2_000;

const SERVER_ID: &str = "spiffe://cluster.local/ns/default/sa/reviews";
const CLIENT_ID: &str = "spiffe://cluster.local/ns/default/sa/productpage";

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let ca = Ca::ephemeral().expect("a CA");
    let (legs, _keep) = runtime.block_on(legs(&ca));
    let mut latencies: Vec<Vec<Duration>> = vec![Vec::new(); legs.len()];
    for round in 0..ROUNDS {
        for turn in 0..legs.len() {
            let leg = (round + turn) % legs.len();
            let measured = runtime.block_on(fixed_rate(legs[leg].1));
            latencies[leg].extend(measured);
        }
    }
    println!(
        "{} requests/s over {CONNECTIONS} keep-alive connections, {ROUNDS} rounds of {ROUND:?} per path\n",
        RATE
    );
    println!("| path | requests | p50 ms | p99 ms | added p50 ms | added p99 ms |");
    println!("|---|--:|--:|--:|--:|--:|");
    let direct = summary(&mut latencies[0]);
    for (i, (name, _)) in legs.iter().enumerate() {
        let (p50, p99) = summary(&mut latencies[i]);
        println!(
            "| {name} | {} | {:.3} | {:.3} | {:.3} | {:.3} |",
            latencies[i].len(),
            ms(p50),
            ms(p99),
            ms(p50) - ms(direct.0),
            ms(p99) - ms(direct.1),
        );
    }
    let (plain, mutual) = (summary(&mut latencies[1]), summary(&mut latencies[2]));
    println!(
        "\nmutual TLS over plaintext, two hops: p50 {:+.3} ms, p99 {:+.3} ms",
        ms(mutual.0) - ms(plain.0),
        ms(mutual.1) - ms(plain.1)
    );

    let (server, both) = handshakes(&ca);
    println!(
        "\nTLS handshakes on one core ({HANDSHAKES}, mutual, P-256, no resumption): \
         {server:.0}/s counting the server's work, {both:.0}/s counting both sides'"
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// p50 and p99.
fn summary(latencies: &mut [Duration]) -> (Duration, Duration) {
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    (at(0.50), at(0.99))
}

/// The paths, by name and the address a client sends to; and what must live while they run.
async fn legs(ca: &Ca) -> (Vec<(&'static str, SocketAddr)>, Vec<Box<dyn std::any::Any>>) {
    let upstream = Upstream::spawn(UpstreamConfig::default())
        .await
        .expect("the upstream starts");
    let app = upstream.addr();
    let mut keep: Vec<Box<dyn std::any::Any>> = vec![Box::new(upstream)];
    let mut legs = vec![("direct", app)];
    for (name, mtls) in [
        ("two hops, plaintext", false),
        ("two hops, mutual TLS", true),
    ] {
        let server = proxy(
            config(app, mtls.then_some(PeerMtls::Strict), None),
            certify(ca, SERVER_ID),
            &mut keep,
        )
        .await;
        let tls = mtls.then(|| UpstreamTls::Mesh {
            identities: vec![SERVER_ID.to_owned()],
            automatic: false,
            sni: None,
        });
        let client = proxy(config(server, None, tls), certify(ca, CLIENT_ID), &mut keep).await;
        legs.push((name, client));
    }
    (legs, keep)
}

/// Starts a proxy with `config` and `certified`; its listener's address.
async fn proxy(
    config: Config,
    certified: Certified,
    keep: &mut Vec<Box<dyn std::any::Any>>,
) -> SocketAddr {
    let proxy = Proxy::new(config);
    proxy
        .certificates
        .store(certified)
        .expect("the certificate is usable");
    let (drain, draining) = watch::channel(false);
    let bound = trellis_proxy::start(&proxy, draining)
        .await
        .expect("the listener binds");
    keep.push(Box::new((proxy, drain)));
    bound[0].address
}

/// One listener on `127.0.0.1:0` forwarding everything to `to`.
fn config(to: SocketAddr, mtls: Option<PeerMtls>, tls: Option<UpstreamTls>) -> Config {
    let route = Route {
        name: "all".into(),
        matches: Vec::new(),
        action: Action::Forward(Forward {
            destinations: vec![WeightedCluster {
                cluster: "next".into(),
                weight: 100,
                headers: Default::default(),
            }],
            rewrite: None,
            timeout: None,
            retry: None,
            mirrors: Vec::new(),
        }),
        headers: Default::default(),
        fault: None,
        cors: None,
        rate_limit: None,
        source: None,
    };
    let cluster = Cluster {
        name: "next".into(),
        load_balancer: LoadBalancer::RoundRobin,
        endpoints: vec![Endpoint::new(to)],
        protocol: UpstreamProtocol::Http1,
        connect_timeout: None,
        idle_timeout: None,
        service: None,
        outlier_detection: None,
        limits: None,
        tcp_keepalive: None,
        health_check: None,
        tls,
        source: None,
    };
    Config {
        listeners: vec![Listener {
            name: "in".into(),
            address: "127.0.0.1:0".parse().expect("an address"),
            protocol: ListenerProtocol::Http {
                route_table: "routes".into(),
            },
            mtls,
            inbound: mtls.is_some(),
            captured: false,
        }],
        routes: BTreeMap::from([(
            "routes".to_owned(),
            RouteTable {
                name: "routes".into(),
                on_demand: false,
                virtual_hosts: vec![VirtualHost {
                    name: "any".into(),
                    domains: vec!["*".into()],
                    routes: vec![route],
                }],
            },
        )]),
        clusters: BTreeMap::from([("next".to_owned(), cluster)]),
    }
}

fn certify(ca: &Ca, identity: &str) -> Certified {
    let id: SpiffeId = identity.parse().expect("a SPIFFE id");
    let key = new_workload_key(&id).expect("a key");
    let issued = ca
        .sign(&key.csr, &id, Duration::from_secs(3600))
        .expect("a certificate");
    Certified::from_chain(&id, issued.chain, key.key.serialize_pem()).expect("a usable chain")
}

/// Requests to `address` at [`RATE`] for [`ROUND`], spread over [`CONNECTIONS`] connections;
/// each one's latency. A warm-up request per connection is not counted.
async fn fixed_rate(address: SocketAddr) -> Vec<Duration> {
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(address)
                .await
                .expect("the path accepts");
            let _ = stream.set_nodelay(true);
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
                    .await
                    .expect("an HTTP/1.1 connection");
            tokio::spawn(connection);
            let request = || {
                http::Request::get("/")
                    .header("host", "bench")
                    .body(Empty::new())
                    .expect("a request")
            };
            let mut latencies = Vec::new();
            let mut first = true;
            let mut ticks =
                tokio::time::interval(Duration::from_micros(1_000_000 * CONNECTIONS / RATE));
            let ends = Instant::now() + ROUND;
            while Instant::now() < ends {
                ticks.tick().await;
                let started = Instant::now();
                let response = sender.send_request(request()).await.expect("a response");
                assert_eq!(response.status(), 200, "the path answers 200");
                response.into_body().collect().await.expect("a body");
                if !std::mem::take(&mut first) {
                    latencies.push(started.elapsed());
                }
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("the load task"));
    }
    all
}

/// Full mutual handshakes in memory on this thread: (per second counting the server's calls
/// only, per second counting both sides).
fn handshakes(ca: &Ca) -> (f64, f64) {
    let server = MeshTls::new(&certify(ca, SERVER_ID)).expect("server TLS");
    let client = MeshTls::new(&certify(ca, CLIENT_ID)).expect("client TLS");
    let mut client_config = (**client.client(Alpn::Http1)).clone();
    client_config.resumption = Resumption::disabled();
    let client_config = Arc::new(client_config);
    let name = ServerName::try_from("reviews").expect("a name");
    let mut server_time = Duration::ZERO;
    let started = Instant::now();
    let mut wire = Vec::new();
    for _ in 0..HANDSHAKES {
        let mut c = ClientConnection::new(client_config.clone(), name.clone()).expect("client");
        let mut s = ServerConnection::new(server.server.clone()).expect("server");
        while c.is_handshaking() || s.is_handshaking() {
            wire.clear();
            while c.wants_write() {
                c.write_tls(&mut wire).expect("client writes");
            }
            let at = Instant::now();
            let mut read = &wire[..];
            while !read.is_empty() {
                s.read_tls(&mut read).expect("server reads");
                s.process_new_packets()
                    .expect("the server accepts the client");
            }
            let mut back = Vec::new();
            while s.wants_write() {
                s.write_tls(&mut back).expect("server writes");
            }
            server_time += at.elapsed();
            let mut read = &back[..];
            while !read.is_empty() {
                c.read_tls(&mut read).expect("client reads");
                c.process_new_packets()
                    .expect("the client accepts the server");
            }
        }
    }
    let both = started.elapsed();
    (
        f64::from(HANDSHAKES) / server_time.as_secs_f64(),
        f64::from(HANDSHAKES) / both.as_secs_f64(),
    )
}
