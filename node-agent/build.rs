//! Embeds the eBPF object built by `cargo xtask build-ebpf` so the agent ships as one binary.
//!
//! The object is compiled separately (nightly, `bpfel-unknown-none`, `-Z build-std=core`) and
//! this script only points the agent at it: one build path, owned by xtask. Without the object
//! (a plain `cargo build` on a fresh checkout) the workspace still builds: an empty
//! placeholder is embedded, a warning names the fix, and the agent refuses to start with the
//! same message (`kernel::probes::embedded_object`).
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
    // While the object is missing, cargo reruns this script (and rebuilds the agent, quickly)
    // on every build: a missing rerun-if-changed path counts as changed. So the object is
    // picked up by the first build after `cargo xtask build-ebpf`.
    println!("cargo:rerun-if-changed={}", object.display());
    let embedded = if object.exists() {
        object
    } else {
        println!(
            "cargo:warning=the eBPF object {} does not exist, so this vigil-agent cannot run: \
             run `cargo xtask build-ebpf` (or `cargo xtask build`; `cargo xtask setup` first on \
             a fresh machine) and rebuild",
            object.display()
        );
        let placeholder =
            PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default()).join("no-ebpf-object");
        // Left alone once written (an empty file is all the agent checks for).
        if !std::fs::metadata(&placeholder).is_ok_and(|m| m.len() == 0) {
            std::fs::write(&placeholder, b"").unwrap_or_else(|e| {
                panic!(
                    "cannot write the placeholder {}: {e}",
                    placeholder.display()
                )
            });
        }
        placeholder
    };
    println!(
        "cargo:rustc-env=VIGIL_EBPF_OBJECT_PATH={}",
        embedded.display()
    );
}
