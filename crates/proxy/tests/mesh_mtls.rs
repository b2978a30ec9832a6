//! The mesh's mutual TLS from configuration to wire: a control plane whose files say
//! `PeerAuthentication` STRICT for the namespace, and two real `trellis-proxy` sidecars that get
//! their certificates from its CA with bootstrap tokens. productpage's sidecar reaches reviews
//! over mutual TLS (automatic: reviews has a sidecar); reviews' inbound port, as `openssl
//! s_client` sees it, shows a chain from the control plane's root naming reviews' SPIFFE id, and
//! refuses a plaintext client and a client whose certificate another CA issued. The metrics of
//! both sidecars name the other's principal.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use support::*;
use trellis_identity::pem::{Pem, certificate};
use trellis_identity::{Ca, SpiffeId, new_workload_key};
use trellis_testkit::openssl::{first_certificate, s_client};

const PRODUCTPAGE: &str = "127.0.0.50";
const REVIEWS: &str = "127.0.0.51";
const REVIEWS_APP: &str = "127.0.0.52";
const REVIEWS_ID: &str = "spiffe://cluster.local/ns/default/sa/reviews";
const PRODUCTPAGE_ID: &str = "spiffe://cluster.local/ns/default/sa/productpage";

fn mesh(port: u16) -> String {
    format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: reviews, namespace: default}}
spec: {{selector: {{app: reviews}}, ports: [{{name: http, port: 9080, targetPort: {port}}}]}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: productpage, namespace: default}}
spec:
  address: {PRODUCTPAGE}
  serviceAccount: productpage
  labels: {{app: productpage, security.istio.io/tlsMode: istio}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: reviews, namespace: default}}
spec:
  address: {REVIEWS}
  serviceAccount: reviews
  labels: {{app: reviews, security.istio.io/tlsMode: istio}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {{name: default, namespace: default}}
spec: {{mtls: {{mode: STRICT}}}}
"#
    )
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("trellis-mesh-mtls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A bootstrap token for `account` in `default`, written to a file.
async fn token(debug: SocketAddr, dir: &Path, account: &str) -> PathBuf {
    let request = http::Request::post(format!("http://{debug}/tokens"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(format!(
            r#"{{"namespace": "default", "service_account": "{account}"}}"#
        ))))
        .unwrap();
    let got = send(&client(), request).await;
    assert_eq!(got.status, 200, "{}", got.body);
    let path = dir.join(format!("{account}.token"));
    std::fs::write(&path, got.json()["token"].as_str().unwrap()).unwrap();
    path
}

/// The sum of the `istio_requests_total` series of the admin at `admin` with all `labels`.
async fn requests_total(admin: &str, labels: &[(&str, &str)]) -> u64 {
    let text = get(&format!("http://{admin}/stats/prometheus"), &[])
        .await
        .body;
    text.lines()
        .filter(|line| line.starts_with("istio_requests_total{"))
        .filter(|line| {
            labels
                .iter()
                .all(|(name, value)| line.contains(&format!("{name}=\"{value}\"")))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

const REQUEST: &str = "GET /reviews/1 HTTP/1.1\r\nhost: reviews\r\nconnection: close\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_peer_authentication_from_the_files_holds_on_the_wire() {
    let dir = scratch();
    let app = upstream(REVIEWS_APP, 0, "reviews").await;
    let port = app.addr().port();
    let config = dir.join("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("mesh.yaml"), mesh(port)).unwrap();
    let (_control, xds, debug) = control_plane(&config, None);

    let reviews_token = token(debug, &dir, "reviews").await;
    let productpage_token = token(debug, &dir, "productpage").await;
    let (_reviews, _) = sidecar_with("reviews", xds, REVIEWS, REVIEWS_APP, Some(&reviews_token));
    let (_productpage, outbound) = sidecar_with(
        "productpage",
        xds,
        PRODUCTPAGE,
        "127.0.0.1",
        Some(&productpage_token),
    );

    // Through productpage's sidecar, over mutual TLS to reviews' sidecar (which takes nothing
    // else), to the application.
    let url = format!("http://{outbound}/reviews/1");
    let mut answered = 0;
    for _ in 0..600 {
        let got = get(&url, &[("host", "reviews:9080")]).await;
        if got.status == 200 {
            answered += 1;
            if answered == 3 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(answered, 3, "requests through the mesh are answered");

    let inbound = format!("{REVIEWS}:{port}");
    let reviews_admin = format!("{REVIEWS}:{ADMIN_PORT}");
    let productpage_admin = format!("{PRODUCTPAGE}:{ADMIN_PORT}");
    let certs = get(&format!("http://{reviews_admin}/certs"), &[])
        .await
        .json();
    let root = certs["roots"][0].as_str().unwrap().to_owned();
    std::fs::write(dir.join("root.pem"), &root).unwrap();

    // What an outside client sees on reviews' inbound port.
    let foreign = Ca::ephemeral().unwrap();
    let foreign_client = |name: &str| {
        // A client certificate from another CA, naming a mesh identity all the same.
        let id: SpiffeId = PRODUCTPAGE_ID.parse().unwrap();
        let key = new_workload_key(&id).unwrap();
        let issued = foreign
            .sign(&key.csr, &id, Duration::from_secs(600))
            .unwrap();
        std::fs::write(dir.join(format!("{name}-cert.pem")), issued.chain.concat()).unwrap();
        std::fs::write(dir.join(format!("{name}-key.pem")), key.key.serialize_pem()).unwrap();
    };
    foreign_client("foreign");
    let (shown, refused) = {
        let (dir, inbound) = (dir.clone(), inbound.clone());
        tokio::task::spawn_blocking(move || {
            let shown = s_client(&dir, &inbound, &["-CAfile", "root.pem"], "");
            let refused = s_client(
                &dir,
                &inbound,
                &[
                    "-CAfile",
                    "root.pem",
                    "-cert",
                    "foreign-cert.pem",
                    "-key",
                    "foreign-key.pem",
                ],
                REQUEST,
            );
            (shown, refused)
        })
        .await
        .unwrap()
    };
    assert!(shown.contains("Verify return code: 0 (ok)"), "{shown}");
    let leaf = first_certificate(&shown).expect("a certificate is shown");
    let info = certificate(&Pem::one(&leaf, "CERTIFICATE").unwrap().der).unwrap();
    assert_eq!(
        info.uris,
        [REVIEWS_ID],
        "the inbound port shows reviews' identity"
    );
    assert!(
        !refused.contains("HTTP/1.1"),
        "another CA's client was answered: {refused}"
    );

    let inbound: SocketAddr = inbound.parse().unwrap();
    let plaintext = exchange_raw(inbound, REQUEST.as_bytes().to_vec()).await;
    assert!(
        plaintext.is_empty(),
        "a plaintext client was answered: {}",
        String::from_utf8_lossy(&plaintext)
    );

    let destination = [
        ("reporter", "destination"),
        ("source_principal", PRODUCTPAGE_ID),
        ("connection_security_policy", "mutual_tls"),
        ("response_code", "200"),
    ];
    assert!(requests_total(&reviews_admin, &destination).await >= 3);
    let source = [
        ("reporter", "source"),
        ("destination_principal", REVIEWS_ID),
        ("response_code", "200"),
    ];
    assert!(requests_total(&productpage_admin, &source).await >= 3);
}
