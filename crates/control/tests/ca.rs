//! The CA service through real gRPC: a workload with a bootstrap token (from the debug API)
//! gets a certificate for its own identity, which `openssl verify` accepts under the control
//! plane's root; without a token, with a forged one, or asking for another identity, it gets
//! nothing.

use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::Code;
use tonic::metadata::MetadataValue;
use trellis_control::{ControlPlane, Options};
use trellis_identity::{SpiffeId, TokenKey, new_workload_key};
use trellis_proto::ca::IstioCertificateRequest;
use trellis_proto::ca::istio_certificate_service_client::IstioCertificateServiceClient;

fn post(address: std::net::SocketAddr, path: &str, body: &str) -> serde_json::Value {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    serde_json::from_str(text.split_once("\r\n\r\n").unwrap().1).unwrap()
}

async fn ask(
    address: std::net::SocketAddr,
    token: Option<&str>,
    csr: &str,
    seconds: i64,
) -> Result<Vec<String>, tonic::Status> {
    let mut client = IstioCertificateServiceClient::connect(format!("http://{address}"))
        .await
        .unwrap();
    let mut request = tonic::Request::new(IstioCertificateRequest {
        csr: csr.to_owned(),
        validity_duration: seconds,
    });
    if let Some(token) = token {
        let value: MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
        request.metadata_mut().insert("authorization", value);
    }
    Ok(client
        .create_certificate(request)
        .await?
        .into_inner()
        .cert_chain)
}

#[tokio::test]
async fn a_workload_gets_a_certificate_for_its_own_identity_only() {
    let dir = std::env::temp_dir().join(format!("trellis-ca-service-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("config")).unwrap();
    let options = Options {
        state_dir: Some(dir.join("state")),
        ..Options::new(dir.join("config"))
    };
    let (_stop, stopped) = watch::channel(false);
    let plane = ControlPlane::start(&options, stopped.clone()).unwrap();
    let address = plane
        .spawn_xds("127.0.0.1:0".parse().unwrap(), stopped)
        .await
        .unwrap();

    let reviews: SpiffeId = "spiffe://cluster.local/ns/default/sa/reviews"
        .parse()
        .unwrap();
    let ratings: SpiffeId = "spiffe://cluster.local/ns/default/sa/ratings"
        .parse()
        .unwrap();
    // The token, as whoever starts the proxy gets it: from the debug API.
    let debug = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let debug_address = debug.local_addr().unwrap();
    let (_stop_debug, debug_stopped) = watch::channel(false);
    tokio::spawn(trellis_control::debug::serve(
        plane.clone(),
        debug,
        debug_stopped,
    ));
    let answer = tokio::task::spawn_blocking(move || {
        post(
            debug_address,
            "/tokens",
            r#"{"namespace": "default", "service_account": "reviews"}"#,
        )
    })
    .await
    .unwrap();
    assert_eq!(answer["identity"], reviews.uri());
    let token = answer["token"].as_str().unwrap().to_owned();

    let key = new_workload_key(&reviews).unwrap();
    let chain = ask(address, Some(&token), &key.csr, 3600).await.unwrap();
    let root = std::fs::read_to_string(dir.join("state/ca/root-cert.pem")).unwrap();
    trellis_testkit::openssl::verify(&dir, &root, &[], &chain[0]).unwrap();
    let info = trellis_identity::pem::Pem::one(&chain[0], "CERTIFICATE").unwrap();
    let info = trellis_identity::pem::certificate(&info.der).unwrap();
    assert_eq!(info.uris, [reviews.uri()]);
    assert!(info.not_after - info.not_before <= 3600 + 60);

    // Another identity's CSR with reviews' token.
    let other = new_workload_key(&ratings).unwrap();
    let refused = ask(address, Some(&token), &other.csr, 3600)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().contains("ratings"), "{refused:?}");
    // No token, and one from another control plane.
    let refused = ask(address, None, &key.csr, 3600).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    let forged = TokenKey::ephemeral().issue(&reviews, std::time::Duration::from_secs(600));
    let refused = ask(address, Some(&forged), &key.csr, 3600)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    let _ = std::fs::remove_dir_all(&dir);
}
