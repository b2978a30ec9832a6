//! Locating `shared/reference/istio`, which sits beside the checkout (or is named by the
//! `TRELLIS_REFERENCE_DIR` environment variable).

#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;

pub fn istio_reference() -> PathBuf {
    if let Ok(dir) = std::env::var("TRELLIS_REFERENCE_DIR") {
        return PathBuf::from(dir);
    }
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    loop {
        let candidate = dir.join("shared/reference/istio");
        if candidate.join("crd-all.gen.yaml").is_file() {
            return candidate;
        }
        assert!(
            dir.pop(),
            "shared/reference/istio not found beside the checkout; set TRELLIS_REFERENCE_DIR to its path"
        );
    }
}
