//! Compiles Cloudforet's plugin protocol (`proto/`, vendored from cloudforet-io/api) with
//! protox, a pure-Rust protobuf compiler, so no `protoc` is needed, and generates the
//! prost messages and the tonic server from it. The encoded descriptor set is written
//! beside the code for the gRPC reflection service.

use prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/spaceone/api/inventory/plugin/collector.proto";
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile([proto], ["proto"])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("collector_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
