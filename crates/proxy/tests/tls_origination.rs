//! TLS the proxy originates with credentials from files (a DestinationRule's `SIMPLE` and
//! `MUTUAL`), to a real TLS server outside the mesh: `openssl s_server`, with certificates from
//! a test CA. The server's chain is checked against the CA file and its name against the
//! subject alternative names; `MUTUAL` presents the client certificate the server asks for.

mod support;

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use support::*;
use trellis_proxy_config::{LoadBalancer, TlsOrigination, UpstreamTls};

const NAME: &str = "upstream.example";

/// A test CA: its certificate file, and a way to issue certificates under it.
struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    file: PathBuf,
}

impl TestCa {
    fn new(dir: &Path, name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        let file = dir.join(format!("{name}.pem"));
        std::fs::write(&file, cert.pem()).unwrap();
        Self {
            issuer: Issuer::new(params, key),
            file,
        }
    }

    /// A certificate for `names` and its key, as files `<prefix>-cert.pem`, `<prefix>-key.pem`.
    fn issue(&self, dir: &Path, prefix: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        let (cert_file, key_file) = (
            dir.join(format!("{prefix}-cert.pem")),
            dir.join(format!("{prefix}-key.pem")),
        );
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        (cert_file, key_file)
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("trellis-origination-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `openssl s_server` answering HTTP (`-www`) with `cert` and `key`; `client_ca` makes it
/// demand a client certificate issued under that CA.
fn s_server(cert: &Path, key: &Path, client_ca: Option<&Path>) -> (Process, SocketAddr) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut command = Command::new("openssl");
    command
        .args(["s_server", "-www", "-accept", &address.to_string()])
        .arg("-cert")
        .arg(cert)
        .arg("-key")
        .arg(key)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(ca) = client_ca {
        command.args(["-Verify", "1", "-CAfile"]).arg(ca);
    }
    let server = Process(command.spawn().expect("openssl runs"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(address).is_err() {
        assert!(Instant::now() < deadline, "openssl s_server listens");
        std::thread::sleep(Duration::from_millis(20));
    }
    (server, address)
}

/// A proxy forwarding everything to `upstream` with `tls`; the status of a GET through it.
async fn through(upstream: SocketAddr, tls: TlsOrigination) -> Got {
    let mut to_upstream = cluster("external", &[upstream], LoadBalancer::RoundRobin);
    to_upstream.tls = Some(UpstreamTls::Origination(tls));
    let proxy = start(http_config(
        vec![forward("all", vec![], &[("external", 100)])],
        vec![to_upstream],
    ))
    .await;
    get(&proxy.url("/"), &[("host", NAME)]).await
}

fn path(p: &Path) -> Option<String> {
    Some(p.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn simple_tls_checks_the_server_against_the_ca_file_and_the_names() {
    let dir = scratch("simple");
    let ca = TestCa::new(&dir, "test-ca");
    let (cert, key) = ca.issue(&dir, "server", &[NAME]);
    let (_server, address) = s_server(&cert, &key, None);
    let simple = TlsOrigination {
        ca_certificates: path(&ca.file),
        sni: Some(NAME.into()),
        ..TlsOrigination::default()
    };

    let got = through(address, simple.clone()).await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert!(
        got.body.contains("s_server"),
        "openssl answered: {}",
        got.body
    );

    let named = TlsOrigination {
        subject_alt_names: vec![NAME.into()],
        ..simple.clone()
    };
    assert_eq!(through(address, named).await.status, 200);
    let misnamed = TlsOrigination {
        subject_alt_names: vec!["other.example".into()],
        ..simple.clone()
    };
    assert_eq!(through(address, misnamed).await.status, 503);

    let other = TestCa::new(&dir, "other-ca");
    let untrusted = TlsOrigination {
        ca_certificates: path(&other.file),
        ..simple.clone()
    };
    assert_eq!(through(address, untrusted).await.status, 503);
    let skipping = TlsOrigination {
        ca_certificates: None,
        insecure_skip_verify: true,
        ..simple.clone()
    };
    assert_eq!(through(address, skipping).await.status, 200);

    // Without names of its own, the server must carry the name asked for (SNI).
    let asked_another = TlsOrigination {
        sni: Some("other.example".into()),
        ..simple.clone()
    };
    assert_eq!(through(address, asked_another).await.status, 503);
    // A name that is neither a DNS name, an IP address nor a URI makes the TLS unusable
    // (refused), rather than no name checked.
    let unparseable = TlsOrigination {
        subject_alt_names: vec!["not a name".into()],
        ..simple.clone()
    };
    assert_eq!(through(address, unparseable).await.status, 503);

    let missing = TlsOrigination {
        ca_certificates: Some(dir.join("nowhere.pem").to_str().unwrap().to_owned()),
        ..simple
    };
    assert_eq!(through(address, missing).await.status, 503);
}

#[tokio::test]
async fn mutual_tls_presents_the_client_certificate() {
    let dir = scratch("mutual");
    let ca = TestCa::new(&dir, "test-ca");
    let clients = TestCa::new(&dir, "client-ca");
    let (cert, key) = ca.issue(&dir, "server", &[NAME]);
    let (client_cert, client_key) = clients.issue(&dir, "client", &["client.example"]);
    let (_server, address) = s_server(&cert, &key, Some(&clients.file));
    let simple = TlsOrigination {
        ca_certificates: path(&ca.file),
        sni: Some(NAME.into()),
        ..TlsOrigination::default()
    };
    // Without a client certificate the server ends the handshake.
    assert_eq!(through(address, simple.clone()).await.status, 503);
    let mutual = TlsOrigination {
        client_certificate: path(&client_cert),
        private_key: path(&client_key),
        ..simple
    };
    let got = through(address, mutual).await;
    assert_eq!(got.status, 200, "{}", got.body);
}

#[tokio::test]
async fn uri_names_of_any_scheme_are_checked() {
    let dir = scratch("uri");
    let ca = TestCa::new(&dir, "test-ca");
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec![NAME.to_owned()]).unwrap();
    params
        .subject_alt_names
        .push(rcgen::SanType::URI("urn:acme:db".try_into().unwrap()));
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    let (cert_file, key_file) = (dir.join("uri-cert.pem"), dir.join("uri-key.pem"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let (_server, address) = s_server(&cert_file, &key_file, None);
    let with = |name: &str| TlsOrigination {
        ca_certificates: path(&ca.file),
        sni: Some(NAME.into()),
        subject_alt_names: vec![name.into()],
        ..TlsOrigination::default()
    };
    assert_eq!(through(address, with("urn:acme:db")).await.status, 200);
    assert_eq!(through(address, with("urn:acme:cache")).await.status, 503);
}
