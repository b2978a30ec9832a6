//! The CA against OpenSSL: what it issues verifies with `openssl verify`, its own root or an
//! operator's intermediate (made with `openssl`, as operators do) alike.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use crate::{Ca, CaError, SpiffeId, new_workload_key};

fn dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("trellis-ca-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn openssl(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "openssl {args:?}: {text}");
    text
}

fn reviews() -> SpiffeId {
    "spiffe://cluster.local/ns/default/sa/reviews"
        .parse()
        .unwrap()
}

/// Issues a certificate for `reviews` and checks it with OpenSSL against `root`.
fn issue_and_verify(ca: &Ca, dir: &Path, root: &str) {
    let key = new_workload_key(&reviews()).unwrap();
    let issued = ca
        .sign(&key.csr, &reviews(), Duration::from_secs(3600))
        .unwrap();
    let left = issued.not_after.duration_since(SystemTime::now()).unwrap();
    assert!(left > Duration::from_secs(3500) && left <= Duration::from_secs(3600));
    std::fs::write(dir.join("leaf.pem"), &issued.chain[0]).unwrap();
    std::fs::write(dir.join("chain.pem"), issued.chain[1..].concat()).unwrap();
    let verified = openssl(
        dir,
        &[
            "verify",
            "-CAfile",
            root,
            "-untrusted",
            "chain.pem",
            "leaf.pem",
        ],
    );
    assert!(verified.contains("leaf.pem: OK"), "{verified}");
    let text = openssl(dir, &["x509", "-in", "leaf.pem", "-noout", "-text"]);
    assert!(
        text.contains("URI:spiffe://cluster.local/ns/default/sa/reviews"),
        "{text}"
    );
    assert!(text.contains("TLS Web Server Authentication, TLS Web Client Authentication"));
    assert!(
        text.contains("X509v3 Subject Alternative Name: critical"),
        "{text}"
    );
}

#[test]
fn a_self_signed_root_is_made_once_kept_and_signs_what_openssl_verifies() {
    let dir = dir("self");
    let ca = Ca::load_or_create(&dir).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("ca-key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let again = Ca::load_or_create(&dir).unwrap();
    assert_eq!(ca.root_pem(), again.root_pem(), "the root is kept");
    issue_and_verify(&again, &dir, "root-cert.pem");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_request_for_another_identity_is_refused() {
    let dir = dir("other");
    let ca = Ca::load_or_create(&dir).unwrap();
    let ratings: SpiffeId = "spiffe://cluster.local/ns/default/sa/ratings"
        .parse()
        .unwrap();
    let key = new_workload_key(&ratings).unwrap();
    let refused = ca.sign(&key.csr, &reviews(), Duration::from_secs(60));
    assert!(
        matches!(&refused, Err(CaError::NotYours { asked, .. }) if asked == &ratings.uri()),
        "{refused:?}"
    );
    let broken = ca.sign("not a CSR", &reviews(), Duration::from_secs(60));
    assert!(matches!(broken, Err(CaError::BadRequest(_))), "{broken:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_plugged_in_intermediate_signs_under_the_operators_root() {
    let dir = dir("plugged");
    // A root and an intermediate, as an operator makes them with OpenSSL.
    std::fs::write(
        dir.join("ext.cnf"),
        "[ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\n",
    )
    .unwrap();
    for args in [
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "root-key.sec1",
        ][..],
        &[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            "root-key.sec1",
            "-out",
            "root-key.pem",
        ],
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "root-key.pem",
            "-subj",
            "/O=Example/CN=Example Root",
            "-days",
            "3650",
            "-out",
            "root-cert.pem",
            "-extensions",
            "ca",
            "-config",
            "ext.cnf",
        ],
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "ca-key.sec1",
        ],
        &[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            "ca-key.sec1",
            "-out",
            "ca-key.pem",
        ],
        &[
            "req",
            "-new",
            "-key",
            "ca-key.pem",
            "-subj",
            "/O=Example/CN=Mesh Intermediate",
            "-out",
            "ca.csr",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "ca.csr",
            "-CA",
            "root-cert.pem",
            "-CAkey",
            "root-key.pem",
            "-CAcreateserial",
            "-days",
            "730",
            "-out",
            "ca-cert.pem",
            "-extfile",
            "ext.cnf",
            "-extensions",
            "ca",
        ],
    ] {
        openssl(&dir, args);
    }
    let root = std::fs::read_to_string(dir.join("root-cert.pem")).unwrap();
    let intermediate = std::fs::read_to_string(dir.join("ca-cert.pem")).unwrap();
    std::fs::write(dir.join("cert-chain.pem"), format!("{intermediate}{root}")).unwrap();
    // The operator's root is not in the CA's directory for signing; only its certificate is.
    std::fs::remove_file(dir.join("root-key.pem")).unwrap();

    let ca = Ca::load_or_create(&dir).unwrap();
    assert_eq!(ca.root_pem().trim(), root.trim());
    issue_and_verify(&ca, &dir, "root-cert.pem");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_broken_ca_directory_is_refused_naming_the_file() {
    let dir = dir("broken");
    Ca::load_or_create(&dir).unwrap();
    std::fs::remove_file(dir.join("cert-chain.pem")).unwrap();
    let error = Ca::load_or_create(&dir).unwrap_err().to_string();
    assert!(error.contains("cert-chain.pem: is missing"), "{error}");

    // Another CA's key.
    let other = rcgen::KeyPair::generate().unwrap().serialize_pem();
    std::fs::copy(dir.join("ca-cert.pem"), dir.join("cert-chain.pem")).unwrap();
    std::fs::write(dir.join("ca-key.pem"), other).unwrap();
    let error = Ca::load_or_create(&dir).unwrap_err().to_string();
    assert!(
        error.contains("ca-key.pem: is not the key of ca-cert.pem"),
        "{error}"
    );

    std::fs::write(
        dir.join("ca-key.pem"),
        "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----\n",
    )
    .unwrap();
    let error = Ca::load_or_create(&dir).unwrap_err().to_string();
    assert!(
        error.contains("ca-key.pem: not a PKCS #8 private key"),
        "{error}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_trust_bundle_of_two_roots_travels_at_the_end_of_every_chain() {
    let (old, new) = (dir("bundle-old"), dir("bundle-new"));
    let old_root = Ca::load_or_create(&old).unwrap().root_pem().to_owned();
    let new_root = Ca::load_or_create(&new).unwrap().root_pem().to_owned();
    // The new root joins the bundle while the CA still signs under the old one.
    let bundle = format!("{old_root}{new_root}");
    std::fs::write(old.join("root-cert.pem"), &bundle).unwrap();
    let ca = Ca::load_or_create(&old).unwrap();
    assert_eq!(ca.root_pem(), bundle);
    let key = new_workload_key(&reviews()).unwrap();
    let issued = ca
        .sign(&key.csr, &reviews(), Duration::from_secs(600))
        .unwrap();
    assert_eq!(issued.chain.len(), 2, "the certificate, then the bundle");
    assert_eq!(issued.chain[1], bundle);
    issue_and_verify(&ca, &old, "root-cert.pem");

    // A chain whose root the bundle lacks is refused.
    std::fs::write(old.join("root-cert.pem"), &new_root).unwrap();
    let error = Ca::load_or_create(&old).unwrap_err().to_string();
    assert!(
        error.contains("cert-chain.pem: does not end with a certificate of root-cert.pem"),
        "{error}"
    );
    let _ = std::fs::remove_dir_all(&old);
    let _ = std::fs::remove_dir_all(&new);
}
