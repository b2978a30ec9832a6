//! The mesh's mutual TLS between two proxies in-process: a client-side proxy whose cluster
//! originates TLS with its workload certificate, and a server-side proxy whose listener
//! terminates it in front of an application. Certificates come from a real CA
//! (`trellis-identity`); `openssl s_client` plays the outside clients: one that looks at the
//! server's chain, one with a certificate from another CA, and one with a mesh certificate.

// The load tests report what they measured.
#![allow(clippy::print_stderr)]

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use support::*;
use trellis_identity::pem::{Pem, certificate};
use trellis_identity::{Ca, SpiffeId, new_workload_key};
use trellis_proxy::identity::Certified;
use trellis_proxy_config::{LoadBalancer, MESH_TLS_LABEL, PeerMtls, UpstreamTls};
use trellis_testkit::openssl::{first_certificate, s_client};

const REVIEWS: &str = "spiffe://cluster.local/ns/default/sa/reviews";
const PRODUCTPAGE: &str = "spiffe://cluster.local/ns/default/sa/productpage";

/// A certificate for `identity` from `ca`, trusting the roots of `trusted`.
fn certify(ca: &Ca, identity: &str, trusted: &[&Ca]) -> Certified {
    let id: SpiffeId = identity.parse().unwrap();
    let key = new_workload_key(&id).unwrap();
    let issued = ca.sign(&key.csr, &id, Duration::from_secs(3600)).unwrap();
    Certified {
        roots: trusted.iter().map(|ca| ca.root_pem().to_owned()).collect(),
        ..Certified::from_chain(&id, issued.chain, key.key.serialize_pem()).unwrap()
    }
}

/// An application, the server-side proxy in front of it (listener in `mode`), and the
/// client-side proxy whose cluster `mesh` goes to the server with `tls`.
struct Mesh {
    client: Running,
    server: Running,
    _app: Upstream,
}

async fn mesh(ca: &Ca, mode: Option<PeerMtls>, tls: Option<UpstreamTls>, sidecar: bool) -> Mesh {
    let app = upstreams("app", 1).await.remove(0);
    let mut server_config = http_config(
        vec![forward("all", vec![], &[("app", 100)])],
        vec![cluster("app", &[app.addr()], LoadBalancer::RoundRobin)],
    );
    server_config.listeners[0].mtls = mode;
    server_config.listeners[0].inbound = true;
    let server = start(server_config).await;
    server
        .proxy
        .certificates
        .store(certify(ca, REVIEWS, &[ca]))
        .unwrap();

    let mut to_server = cluster("mesh", &[server.address], LoadBalancer::RoundRobin);
    to_server.tls = tls;
    if sidecar {
        to_server.endpoints[0]
            .labels
            .insert(MESH_TLS_LABEL.to_owned(), "istio".to_owned());
    }
    let client = start(http_config(
        vec![forward("all", vec![], &[("mesh", 100)])],
        vec![to_server],
    ))
    .await;
    client
        .proxy
        .certificates
        .store(certify(ca, PRODUCTPAGE, &[ca]))
        .unwrap();
    Mesh {
        client,
        server,
        _app: app,
    }
}

fn mesh_tls(identities: &[&str]) -> Option<UpstreamTls> {
    Some(UpstreamTls::Mesh {
        identities: identities.iter().map(|s| s.to_string()).collect(),
        automatic: false,
        sni: None,
    })
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("trellis-mtls-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes a certificate and key for `identity` from `ca` as files for `openssl`.
fn client_files(dir: &Path, name: &str, ca: &Ca, identity: &str) -> (String, String) {
    let certified = certify(ca, identity, &[ca]);
    let cert = format!("{name}-cert.pem");
    let key = format!("{name}-key.pem");
    std::fs::write(dir.join(&cert), certified.chain.concat()).unwrap();
    std::fs::write(dir.join(&key), &certified.key).unwrap();
    (cert, key)
}

const REQUEST: &str = "GET / HTTP/1.1\r\nhost: reviews\r\nconnection: close\r\n\r\n";

#[tokio::test]
async fn requests_cross_the_mesh_over_mutual_tls_and_the_server_shows_its_spiffe_id() {
    let ca = Ca::ephemeral().unwrap();
    let mesh = mesh(&ca, Some(PeerMtls::Strict), mesh_tls(&[REVIEWS]), false).await;
    let got = get(&mesh.client.url("/"), &[]).await;
    assert_eq!(got.status, 200, "{}", got.body);
    // Each side names the other's principal: the server (reporting as the destination) the
    // client's, over mutual TLS; the client (the source) the server's.
    let server_saw = [
        ("reporter", "destination"),
        ("source_principal", PRODUCTPAGE),
        ("source_workload_namespace", "default"),
        ("connection_security_policy", "mutual_tls"),
    ];
    eventually(
        "the server counts the request with its client's principal",
        || mesh.server.requests_total(&server_saw) == 1,
    )
    .await;
    let client_saw = [("reporter", "source"), ("destination_principal", REVIEWS)];
    eventually(
        "the client counts the request with its server's principal",
        || mesh.client.requests_total(&client_saw) == 1,
    )
    .await;

    let dir = scratch("chain");
    std::fs::write(dir.join("root.pem"), ca.root_pem()).unwrap();
    let address = mesh.server.address;
    let shown = tokio::task::spawn_blocking(move || {
        s_client(&dir, &address.to_string(), &["-CAfile", "root.pem"], "")
    })
    .await
    .unwrap();
    assert!(shown.contains("Verify return code: 0 (ok)"), "{shown}");
    let leaf = first_certificate(&shown).expect("a certificate is shown");
    let info = certificate(&Pem::one(&leaf, "CERTIFICATE").unwrap().der).unwrap();
    assert_eq!(info.uris, [REVIEWS]);
}

#[tokio::test]
async fn strict_refuses_plaintext_and_certificates_of_another_ca() {
    let ca = Ca::ephemeral().unwrap();
    let mesh = mesh(&ca, Some(PeerMtls::Strict), mesh_tls(&[]), false).await;
    let address = mesh.server.address;

    let plaintext = exchange_raw(address, REQUEST.as_bytes().to_vec()).await;
    assert!(
        plaintext.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&plaintext)
    );

    let dir = scratch("strict");
    std::fs::write(dir.join("root.pem"), ca.root_pem()).unwrap();
    let foreign = Ca::ephemeral().unwrap();
    let (foreign_cert, foreign_key) = client_files(&dir, "foreign", &foreign, PRODUCTPAGE);
    let (mesh_cert, mesh_key) = client_files(&dir, "mesh", &ca, PRODUCTPAGE);
    let (refused, answered) = tokio::task::spawn_blocking(move || {
        let with = |cert: &str, key: &str| {
            s_client(
                &dir,
                &address.to_string(),
                &["-CAfile", "root.pem", "-cert", cert, "-key", key],
                REQUEST,
            )
        };
        (
            with(&foreign_cert, &foreign_key),
            with(&mesh_cert, &mesh_key),
        )
    })
    .await
    .unwrap();
    assert!(!refused.contains("HTTP/1.1"), "{refused}");
    assert!(answered.contains("HTTP/1.1 200"), "{answered}");
}

#[tokio::test]
async fn permissive_takes_plaintext_and_mutual_tls() {
    let ca = Ca::ephemeral().unwrap();
    let mesh = mesh(&ca, Some(PeerMtls::Permissive), mesh_tls(&[REVIEWS]), false).await;
    assert_eq!(get(&mesh.client.url("/"), &[]).await.status, 200);
    assert_eq!(get(&mesh.server.url("/"), &[]).await.status, 200);
    for (policy, principal) in [("mutual_tls", PRODUCTPAGE), ("none", "unknown")] {
        let labels = [
            ("connection_security_policy", policy),
            ("source_principal", principal),
        ];
        eventually(&format!("a request counted as {policy}"), || {
            mesh.server.requests_total(&labels) == 1
        })
        .await;
    }
}

#[tokio::test]
async fn a_peer_with_another_identity_is_refused() {
    let ca = Ca::ephemeral().unwrap();
    let ratings = "spiffe://cluster.local/ns/default/sa/ratings";
    let mesh = mesh(&ca, Some(PeerMtls::Strict), mesh_tls(&[ratings]), false).await;
    let got = get(&mesh.client.url("/"), &[]).await;
    assert_eq!(got.status, 503, "{}", got.body);
}

#[tokio::test]
async fn automatic_mutual_tls_goes_only_to_endpoints_with_a_sidecar() {
    let ca = Ca::ephemeral().unwrap();
    let automatic = Some(UpstreamTls::Mesh {
        identities: Vec::new(),
        automatic: true,
        sni: None,
    });
    // The server takes only mutual TLS: the endpoint marked as having a sidecar gets it...
    let with = mesh(&ca, Some(PeerMtls::Strict), automatic.clone(), true).await;
    assert_eq!(get(&with.client.url("/"), &[]).await.status, 200);
    // ...and one without the mark gets plaintext, which a strict server refuses.
    let without = mesh(&ca, Some(PeerMtls::Strict), automatic.clone(), false).await;
    assert_eq!(get(&without.client.url("/"), &[]).await.status, 503);
    // Plaintext is what it sends: a server without TLS answers it.
    let plain_server = mesh(&ca, None, automatic, false).await;
    assert_eq!(get(&plain_server.client.url("/"), &[]).await.status, 200);
}

/// Requests through `client` from a few tasks until `stop`; (answered 200, failed).
async fn load(url: String, stop: tokio::sync::watch::Receiver<bool>) -> (u64, Vec<String>) {
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let url = url.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let client = client();
            let (mut ok, mut failed) = (0, Vec::new());
            while !*stop.borrow() {
                let request = http::Request::get(&url)
                    .body(http_body_util::Full::new(bytes::Bytes::new()))
                    .unwrap();
                match client.request(request).await {
                    Ok(response) if response.status() == 200 => ok += 1,
                    Ok(response) => failed.push(format!("status {}", response.status())),
                    Err(error) => failed.push(error.to_string()),
                }
            }
            (ok, failed)
        }));
    }
    let mut total = (0, Vec::new());
    for task in tasks {
        let (ok, failed) = task.await.unwrap();
        total.0 += ok;
        total.1.extend(failed);
    }
    total
}

/// Both proxies get new certificates every 100 ms while requests flow, and the mesh moves to a
/// new root: first both roots are trusted, then the server and the client take certificates
/// of the new root, then the old root is dropped. Requests go over a fresh connection each
/// (every one a handshake under whatever is in force) and over pooled connections made before
/// the changes; none fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_and_the_root_rotate_under_load_without_a_failed_request() {
    let old = Ca::ephemeral().unwrap();
    let new = Ca::ephemeral().unwrap();
    let fresh = mesh(&old, Some(PeerMtls::Strict), mesh_tls(&[REVIEWS]), false).await;
    one_request_per_connection(&fresh.client);
    let pooled = mesh(&old, Some(PeerMtls::Strict), mesh_tls(&[REVIEWS]), false).await;

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let fresh_load = tokio::spawn(load(fresh.client.url("/"), stopped.clone()));
    let pooled_load = tokio::spawn(load(pooled.client.url("/"), stopped));

    let proxies = [
        (&fresh.server, REVIEWS),
        (&fresh.client, PRODUCTPAGE),
        (&pooled.server, REVIEWS),
        (&pooled.client, PRODUCTPAGE),
    ];
    // (server's CA, client's CA, roots trusted), each phase holding for 4 renewals.
    let phases: [(&Ca, &Ca, Vec<&Ca>); 5] = [
        (&old, &old, vec![&old]),
        (&old, &old, vec![&old, &new]),
        (&new, &old, vec![&old, &new]),
        (&new, &new, vec![&old, &new]),
        (&new, &new, vec![&new]),
    ];
    for (server_ca, client_ca, roots) in &phases {
        for _ in 0..4 {
            for (i, (running, identity)) in proxies.iter().enumerate() {
                let ca = if i % 2 == 0 { server_ca } else { client_ca };
                running
                    .proxy
                    .certificates
                    .store(certify(ca, identity, roots))
                    .unwrap();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    stop.send(true).unwrap();
    for (what, running) in [
        ("fresh connections", fresh_load),
        ("pooled connections", pooled_load),
    ] {
        none_failed(what, running.await.unwrap());
    }
    // The old root is gone: a certificate of it is refused now.
    let dir = scratch("rotated");
    std::fs::write(dir.join("root.pem"), new.root_pem()).unwrap();
    let (old_cert, old_key) = client_files(&dir, "old", &old, PRODUCTPAGE);
    let address = fresh.server.address;
    let refused = tokio::task::spawn_blocking(move || {
        s_client(
            &dir,
            &address.to_string(),
            &["-CAfile", "root.pem", "-cert", &old_cert, "-key", &old_key],
            REQUEST,
        )
    })
    .await
    .unwrap();
    assert!(refused.contains("Verify return code: 0 (ok)"), "{refused}");
    assert!(!refused.contains("HTTP/1.1"), "{refused}");
}

/// Certificates that live two seconds, from the control plane's CA through each proxy's own
/// renewal loop (at half the remaining lifetime), while requests flow: every request answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_certificates_renew_under_load_without_a_failed_request() {
    let dir = scratch("renewal");
    let options = trellis_control::Options {
        max_cert_ttl: Duration::from_secs(2),
        ..trellis_control::Options::new(dir.clone())
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let plane = trellis_control::ControlPlane::start(&options, stopped.clone()).unwrap();
    let ca_address = plane
        .spawn_xds("127.0.0.1:0".parse().unwrap(), stopped.clone())
        .await
        .unwrap();
    // Started with certificates of another CA: the renewal loop replaces them, roots and all.
    let bootstrap = Ca::ephemeral().unwrap();
    let mesh = mesh(
        &bootstrap,
        Some(PeerMtls::Strict),
        mesh_tls(&[REVIEWS]),
        false,
    )
    .await;
    let mut renewals = renew_from(&plane, ca_address, &mesh, &stopped);
    // Both on the control plane's CA before the load starts (one side alone would be refused).
    for renewed in &mut renewals {
        tokio::time::timeout(Duration::from_secs(10), renewed.changed())
            .await
            .expect("a certificate from the control plane")
            .unwrap();
    }
    let (load_stop, load_stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(load(mesh.client.url("/"), load_stopped));
    let started = *renewals[0].borrow_and_update();
    tokio::time::sleep(Duration::from_secs(5)).await;
    load_stop.send(true).unwrap();
    let loaded = running.await.unwrap();
    let renewed = *renewals[0].borrow() - started;
    stop.send(true).unwrap();
    assert!(renewed >= 3, "the server renewed {renewed} times in 5 s");
    none_failed(
        &format!("over {renewed} renewals of the server's certificate"),
        loaded,
    );
}

/// TCP through both proxies over the mesh's TLS (no ALPN protocol): the bytes go both ways,
/// and the server's TCP metrics name the client's principal.
#[tokio::test]
async fn tcp_crosses_the_mesh_over_mutual_tls() {
    let ca = Ca::ephemeral().unwrap();
    let app = upstreams("app", 1).await.remove(0);
    let tcp = |cluster: &str| trellis_proxy_config::ListenerProtocol::Tcp {
        cluster: cluster.into(),
    };
    let mut server_config = listener_config(
        tcp("app"),
        Vec::new(),
        vec![cluster("app", &[app.addr()], LoadBalancer::RoundRobin)],
    );
    server_config.listeners[0].mtls = Some(PeerMtls::Strict);
    server_config.listeners[0].inbound = true;
    let server = start(server_config).await;
    server
        .proxy
        .certificates
        .store(certify(&ca, REVIEWS, &[&ca]))
        .unwrap();
    let mut to_server = cluster("mesh", &[server.address], LoadBalancer::RoundRobin);
    to_server.tls = mesh_tls(&[REVIEWS]);
    let client = start(listener_config(tcp("mesh"), Vec::new(), vec![to_server])).await;
    client
        .proxy
        .certificates
        .store(certify(&ca, PRODUCTPAGE, &[&ca]))
        .unwrap();

    let answer = exchange_raw(client.address, REQUEST.as_bytes().to_vec()).await;
    assert_eq!(
        status_of(&answer),
        Some(200),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let opened = |text: String| {
        text.lines().any(|line| {
            line.starts_with("istio_tcp_connections_opened_total{")
                && line.contains("reporter=\"destination\"")
                && line.contains(&format!("source_principal=\"{PRODUCTPAGE}\""))
                && line.contains("connection_security_policy=\"mutual_tls\"")
                && line.ends_with(" 1")
        })
    };
    eventually(
        "the server counts the connection with its client's principal",
        || opened(server.proxy.metrics_text()),
    )
    .await;
}

/// The mesh moves to a new root through its control plane, as an operator does it with plug-in
/// CA files: the new root joins the trust bundle (`root-cert.pem`), then the CA signs under the
/// new root, then the old root leaves the bundle; the control plane restarts at each step and
/// both proxies, renewing four-second certificates, take each step in while requests flow, each
/// over a new connection (a handshake every request). None fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mesh_moves_to_a_new_root_through_the_control_plane_without_a_failed_request() {
    let dir = scratch("root-rotation");
    let (old, new) = (dir.join("old"), dir.join("new"));
    let old_root = Ca::load_or_create(&old).unwrap().root_pem().to_owned();
    let new_root = Ca::load_or_create(&new).unwrap().root_pem().to_owned();
    let both = format!("{old_root}{new_root}");
    // (the CA's files, the trust bundle)
    let steps = [
        (&old, old_root.as_str()),
        (&old, both.as_str()),
        (&new, both.as_str()),
        (&new, new_root.as_str()),
    ];
    let state = dir.join("state");
    let options = trellis_control::Options {
        max_cert_ttl: Duration::from_secs(4),
        state_dir: Some(state.clone()),
        ..trellis_control::Options::new(dir.join("config"))
    };
    std::fs::create_dir_all(dir.join("config")).unwrap();
    let start = |from: &Path, bundle: &str, address: SocketAddr| {
        let ca = state.join("ca");
        std::fs::create_dir_all(&ca).unwrap();
        for file in ["ca-cert.pem", "ca-key.pem", "cert-chain.pem"] {
            std::fs::copy(from.join(file), ca.join(file)).unwrap();
        }
        std::fs::write(ca.join("root-cert.pem"), bundle).unwrap();
        let options = options.clone();
        async move {
            let (stop, stopped) = tokio::sync::watch::channel(false);
            let plane = trellis_control::ControlPlane::start(&options, stopped.clone()).unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            let bound = loop {
                match plane.spawn_xds(address, stopped.clone()).await {
                    Ok(bound) => break bound,
                    Err(error) if std::time::Instant::now() < deadline => {
                        let _ = error;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(error) => panic!("the control plane binds {address}: {error}"),
                }
            };
            (plane, stop, bound)
        }
    };

    let (plane, mut stop, address) =
        start(steps[0].0, steps[0].1, "127.0.0.1:0".parse().unwrap()).await;
    let bootstrap = Ca::ephemeral().unwrap();
    let mesh = mesh(
        &bootstrap,
        Some(PeerMtls::Strict),
        mesh_tls(&[REVIEWS]),
        false,
    )
    .await;
    one_request_per_connection(&mesh.client);
    let (_renewing, renewing) = tokio::sync::watch::channel(false);
    let mut renewals = renew_from(&plane, address, &mesh, &renewing);
    renewed(&mut renewals).await;
    drop(plane);

    let (load_stop, load_stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(load(mesh.client.url("/"), load_stopped));
    for (from, bundle) in &steps[1..] {
        stop.send(true).unwrap();
        let (_plane, next_stop, _) = start(from, bundle, address).await;
        stop = next_stop;
        renewed(&mut renewals).await;
    }
    load_stop.send(true).unwrap();
    none_failed("across the root rotation", running.await.unwrap());
    for running in [&mesh.server, &mesh.client] {
        let certified = running.proxy.certificates.current().unwrap();
        assert_eq!(
            certified.roots,
            std::slice::from_ref(&new_root),
            "only the new root is trusted in the end"
        );
        trellis_testkit::openssl::verify(&dir, &new_root, &[], &certified.chain[0])
            .expect("the certificate in force is the new root's");
    }
}

/// Makes the client-side proxy open a connection (a handshake) for every request.
fn one_request_per_connection(client: &Running) {
    let mut config = client.proxy.config.load().config.as_ref().clone();
    config.clusters.get_mut("mesh").unwrap().limits =
        Some(trellis_proxy_config::ConnectionLimits {
            max_requests_per_connection: Some(1),
            ..Default::default()
        });
    client.proxy.config.update(config);
}

/// Both proxies of `mesh` renewing their certificates from `plane`'s CA at `address` (each with
/// a bootstrap token for its identity) until `stopped`; their renewal signals.
fn renew_from(
    plane: &trellis_control::ControlPlane,
    address: SocketAddr,
    mesh: &Mesh,
    stopped: &tokio::sync::watch::Receiver<bool>,
) -> Vec<tokio::sync::watch::Receiver<u64>> {
    let mut renewals = Vec::new();
    for (running, identity) in [(&mesh.server, REVIEWS), (&mesh.client, PRODUCTPAGE)] {
        let token = plane
            .identity
            .tokens
            .issue(&identity.parse().unwrap(), Duration::from_secs(600));
        let certificates = running.proxy.certificates.clone();
        let mut renewed = certificates.renewals();
        renewed.mark_unchanged();
        tokio::spawn(trellis_proxy::identity::run(
            trellis_proxy::identity::IdentityOptions {
                address: format!("http://{address}"),
                token,
                lifetime: Duration::ZERO,
            },
            certificates,
            stopped.clone(),
        ));
        renewals.push(renewed);
    }
    renewals
}

/// Checks that a [`load`] answered every request, and enough of them; says how many.
fn none_failed(what: &str, (ok, failed): (u64, Vec<String>)) {
    assert!(
        failed.is_empty(),
        "{what}: {} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(ok > 50, "{what}: only {ok} requests");
    eprintln!("{what}: {ok} requests, none failed");
}

/// Waits for every one of `renewals` to see two renewals from now on: the second one was
/// asked for after this call, so it took in whatever the control plane serves now.
async fn renewed(renewals: &mut [tokio::sync::watch::Receiver<u64>]) {
    let from: Vec<u64> = renewals
        .iter_mut()
        .map(|r| *r.borrow_and_update())
        .collect();
    for (renewal, from) in renewals.iter_mut().zip(from) {
        tokio::time::timeout(
            Duration::from_secs(15),
            renewal.wait_for(|n| *n >= from + 2),
        )
        .await
        .expect("two renewals within 15 s")
        .unwrap();
    }
}

/// A server-first protocol (the server speaks before the client, as MySQL's does) through a
/// PERMISSIVE listener: the proxy stops waiting for a first byte after the detection timeout
/// and connects, rather than waiting out the header timeout (here ten minutes).
#[tokio::test]
async fn permissive_does_not_hold_up_a_server_that_speaks_first() {
    let greeting = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = greeting.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = greeting.accept().await {
            use tokio::io::AsyncWriteExt;
            let _ = stream.write_all(b"220 ready\r\n").await;
        }
    });
    let mut config = listener_config(
        trellis_proxy_config::ListenerProtocol::Tcp {
            cluster: "app".into(),
        },
        Vec::new(),
        vec![cluster("app", &[app], LoadBalancer::RoundRobin)],
    );
    config.listeners[0].mtls = Some(PeerMtls::Permissive);
    config.listeners[0].inbound = true;
    let limits = trellis_proxy::listener::Limits {
        header_read_timeout: Duration::from_secs(600),
        ..Default::default()
    };
    let proxy = start_with(config, limits).await;
    let mut client = tokio::net::TcpStream::connect(proxy.address).await.unwrap();
    let mut line = [0u8; 11];
    use tokio::io::AsyncReadExt;
    tokio::time::timeout(Duration::from_secs(60), client.read_exact(&mut line))
        .await
        .expect("the server's greeting comes through")
        .unwrap();
    assert_eq!(&line, b"220 ready\r\n");
}

/// A proxy without its certificate yet fails its requests to mesh endpoints, and does not
/// count that against them: once the certificate comes, the endpoint is there, not ejected.
#[tokio::test]
async fn having_no_certificate_yet_does_not_eject_the_endpoints() {
    let ca = Ca::ephemeral().unwrap();
    let mesh = mesh(&ca, Some(PeerMtls::Strict), mesh_tls(&[REVIEWS]), false).await;
    let mut config = mesh.client.proxy.config.load().config.as_ref().clone();
    config.clusters.get_mut("mesh").unwrap().outlier_detection =
        Some(trellis_proxy_config::OutlierDetection {
            consecutive_5xx: Some(1),
            consecutive_gateway_errors: None,
            interval: trellis_proxy_config::Duration::from_millis(10_000),
            base_ejection_time: trellis_proxy_config::Duration::from_millis(300_000),
            max_ejection_percent: 100,
            min_health_percent: 0,
        });
    // A proxy of its own, which has no certificate.
    let uncertified = start(config).await;
    for _ in 0..3 {
        assert_eq!(get(&uncertified.url("/"), &[]).await.status, 503);
    }
    uncertified
        .proxy
        .certificates
        .store(certify(&ca, PRODUCTPAGE, &[&ca]))
        .unwrap();
    let got = get(&uncertified.url("/"), &[]).await;
    assert_eq!(got.status, 200, "{}", got.body);
}
