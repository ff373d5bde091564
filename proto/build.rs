//! Generates the tonic/prost code from `proto/` with protox (a Rust protobuf compiler), so a
//! fresh machine needs no `protoc`.
use anyhow::Context as _;

fn main() -> anyhow::Result<()> {
    let file = "proto/vigil/agent/v1/agent.proto";
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile([file], ["proto"]).with_context(|| format!("compiling {file}"))?;
    tonic_prost_build::configure()
        .compile_fds(fds)
        .context("generating Rust code from the agent protocol")?;
    Ok(())
}
