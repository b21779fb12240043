//! Compiles weft's own peer-to-peer service (private data dissemination).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let descriptors = protox::compile(["weft_peer.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_transport(true)
        .compile_fds(descriptors)?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
