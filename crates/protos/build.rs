//! Compiles weft's `.proto` files with protox (no `protoc` needed) and keeps the
//! resulting descriptor set, which the conformance test compares against Fabric's.

use std::path::{Path, PathBuf};

fn proto_files(dir: &Path, found: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            proto_files(&path, found)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            found.push(path);
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new("proto");
    let mut files = Vec::new();
    proto_files(root, &mut files)?;
    files.sort();

    let descriptors = protox::compile(&files, [root])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("weft_descriptor_set.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;

    let grpc = std::env::var_os("CARGO_FEATURE_GRPC").is_some();
    tonic_prost_build::configure()
        .build_server(grpc)
        .build_client(grpc)
        // Fabric's Chaincode service has an rpc named Connect, which would clash
        // with the transport-specific `connect()` constructor.
        .build_transport(false)
        // Maps end up in hashed and signed bytes: keep their order deterministic.
        .btree_map(".")
        .compile_fds(descriptors)?;

    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
