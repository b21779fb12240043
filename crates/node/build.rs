//! Compiles weft's node administration service (shared by peers and orderers).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let descriptors = protox::compile(["weft_admin.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_transport(true)
        .compile_fds(descriptors)?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
