//! Embeds the eBPF object built by `cargo xtask build-ebpf` so the agent ships as one binary.
//!
//! The object is compiled separately (nightly, `bpfel-unknown-none`, `-Z build-std=core`) and
//! this script only points the agent at it: one build path, owned by xtask.
use std::{env, path::PathBuf};

fn main() {
    let object = match env::var_os("VIGIL_EBPF_OBJECT") {
        Some(path) => PathBuf::from(path),
        None => {
            let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
            manifest_dir.join("../target/ebpf/bpfel-unknown-none/release/node-agent-ebpf")
        }
    };
    println!("cargo:rerun-if-env-changed=VIGIL_EBPF_OBJECT");
    println!("cargo:rerun-if-changed={}", object.display());
    if !object.exists() {
        panic!(
            "the eBPF object {} does not exist: run `cargo xtask build-ebpf` (or `cargo xtask setup` \
             on a fresh machine) before building the agent",
            object.display()
        );
    }
    println!(
        "cargo:rustc-env=VIGIL_EBPF_OBJECT_PATH={}",
        object.display()
    );
}
