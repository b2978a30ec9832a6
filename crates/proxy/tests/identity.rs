//! The proxy's certificate from an in-process control plane's CA: requested with a bootstrap
//! token, verified by `openssl verify` under the control plane's root, and renewed at half its
//! lifetime (four seconds here) with a new key each time.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use trellis_identity::SpiffeId;
use trellis_proxy::identity::{Certificates, IdentityOptions, run};

#[tokio::test]
async fn the_proxy_gets_its_certificate_and_renews_it_at_half_life() {
    let dir = std::env::temp_dir().join(format!("trellis-proxy-identity-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let options = trellis_control::Options {
        max_cert_ttl: Duration::from_secs(4),
        ..trellis_control::Options::new(dir.clone())
    };
    let (_stop, stopped) = watch::channel(false);
    let plane = trellis_control::ControlPlane::start(&options, stopped.clone()).unwrap();
    let address = plane
        .spawn_xds("127.0.0.1:0".parse().unwrap(), stopped.clone())
        .await
        .unwrap();

    let reviews: SpiffeId = "spiffe://cluster.local/ns/default/sa/reviews"
        .parse()
        .unwrap();
    let token = plane
        .identity
        .tokens
        .issue(&reviews, Duration::from_secs(600));
    let certificates = Arc::new(Certificates::default());
    let mut renewals = certificates.renewals();
    tokio::spawn(run(
        IdentityOptions {
            address: format!("http://{address}"),
            token,
            lifetime: Duration::ZERO,
        },
        certificates.clone(),
        stopped,
    ));

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen: Vec<Arc<trellis_proxy::identity::Certified>> = Vec::new();
    while seen.len() < 3 {
        assert!(
            Instant::now() < deadline,
            "{} certificates within 20 s",
            seen.len()
        );
        let _ = tokio::time::timeout(Duration::from_secs(1), renewals.changed()).await;
        if let Some(current) = certificates.current()
            && seen.last().is_none_or(|c| c.chain[0] != current.chain[0])
        {
            seen.push(current);
        }
    }
    let first = &seen[0];
    assert_eq!(first.identity, reviews.uri());
    assert!(first.not_after - first.not_before <= 4 + 60);
    // Each renewal is a new key, certified anew.
    assert_ne!(seen[0].key, seen[1].key);
    assert!(seen[2].not_after > seen[0].not_after);

    trellis_testkit::openssl::verify(&dir, &first.roots[0], &[], &seen[2].chain[0]).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The `trellis-proxy` binary with `--token-file`: its admin port shows the certificate.
#[tokio::test]
async fn the_proxy_binary_shows_its_certificate_at_certs() {
    const ADMIN: &str = "127.0.0.61:15000";
    let dir = std::env::temp_dir().join(format!("trellis-proxy-certs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (_stop, stopped) = watch::channel(false);
    let plane = trellis_control::ControlPlane::start(
        &trellis_control::Options::new(dir.clone()),
        stopped.clone(),
    )
    .unwrap();
    let address = plane
        .spawn_xds("127.0.0.1:0".parse().unwrap(), stopped)
        .await
        .unwrap();
    let id: SpiffeId = "spiffe://cluster.local/ns/default/sa/productpage"
        .parse()
        .unwrap();
    let token = dir.join("token");
    std::fs::write(
        &token,
        plane.identity.tokens.issue(&id, Duration::from_secs(600)),
    )
    .unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_trellis-proxy"))
        .args(["--xds", &address.to_string(), "--workload", "productpage"])
        .args([
            "--outbound-address",
            "127.0.0.61:0",
            "--admin-address",
            ADMIN,
        ])
        .arg("--token-file")
        .arg(&token)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let certs = loop {
        let answer = tokio::task::spawn_blocking(|| admin_get(ADMIN, "/certs"))
            .await
            .unwrap();
        if let Some(body) = answer {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "no certificate at /certs within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    let certs: serde_json::Value = serde_json::from_str(&certs).unwrap();
    assert_eq!(certs["identity"], id.uri());
    assert!(
        certs["chain"][0]
            .as_str()
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    );
    assert!(certs.get("key").is_none(), "the key is not shown");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The body of a 200 answer to `GET path`, if there is one.
fn admin_get(address: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
}
