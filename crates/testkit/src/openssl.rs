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
