//! Compiles weft's own orderer services (node-to-node and admin).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let descriptors = protox::compile(["weft_orderer.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_transport(true)
        .compile_fds(descriptors)?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
