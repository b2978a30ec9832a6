//! Generates the wire types from `proto/` with protox (a protobuf compiler in Rust, so building
//! needs no `protoc`).

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files = [
        "envoy/service/discovery/v3/delta.proto",
        "trellis/config/v1/config.proto",
        "istio/v1/auth/ca.proto",
    ];
    for file in &files {
        println!("cargo:rerun-if-changed={}", root.join(file).display());
    }
    let descriptors = protox::compile(files, [&root])?;
    tonic_prost_build::configure()
        // Ordered maps, so that a resource always encodes to the same bytes: its version is a
        // hash of them.
        .btree_map(".")
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
