//! Checks with the `openssl` command, as an operator would run them.

use std::path::Path;
use std::process::Command;

/// Whether `openssl verify` accepts `leaf` (PEM) under `root` (PEM), with `chain` (PEM
/// certificates between them, possibly none) as untrusted intermediates; the files go in
/// `dir`. The error is what openssl said.
pub fn verify(dir: &Path, root: &str, chain: &[String], leaf: &str) -> Result<(), String> {
    std::fs::write(dir.join("verify-root.pem"), root).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("verify-chain.pem"), chain.concat()).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("verify-leaf.pem"), leaf).map_err(|e| e.to_string())?;
    let mut command = Command::new("openssl");
    command
        .args(["verify", "-CAfile", "verify-root.pem"])
        .current_dir(dir);
    if !chain.is_empty() {
        command.args(["-untrusted", "verify-chain.pem"]);
    }
    let output = command
        .arg("verify-leaf.pem")
        .output()
        .map_err(|e| format!("openssl: {e}"))?;
    match output.status.success() {
        true => Ok(()),
        false => Err(String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr)),
    }
}

/// `openssl s_client` connected to `address` (`host:port`) with `extra` arguments (run in
/// `dir`, where their files are), showing the server's certificates and sending `input` once
/// connected; everything it printed. It runs until the server closes the connection.
pub fn s_client(dir: &Path, address: &str, extra: &[&str], input: &str) -> String {
    use std::io::Write;
    use std::process::Stdio;

    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", address, "-showcerts", "-ign_eof"])
        .args(extra)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl runs");
    if let Some(mut stdin) = child.stdin.take() {
        // A server that closes first leaves the pipe broken; what it printed still tells.
        let _ = stdin.write_all(input.as_bytes());
    }
    let output = child.wait_with_output().expect("openssl ends");
    String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
}

/// The first certificate (PEM) in what `openssl s_client -showcerts` printed: the server's.
pub fn first_certificate(shown: &str) -> Option<String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let body = shown.split(BEGIN).nth(1)?.split(END).next()?;
    Some(format!("{BEGIN}{body}{END}\n"))
}
