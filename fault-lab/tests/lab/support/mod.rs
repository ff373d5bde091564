//! Running `vigil-lab` from a test with Vigil's API to score against.

use std::{path::Path, process::Command};

use serde_json::Value;

/// `vigil-lab run <args>` against the testbed in `state`, scored through `api`; the run
/// summary it wrote into `out`.
pub fn run_lab(state: &Path, out: &Path, api: &str, token_file: &Path, args: &[&str]) -> Value {
    let o = Command::new(env!("CARGO_BIN_EXE_vigil-lab"))
        .arg("run")
        .args(args)
        .args(["--api", api])
        .arg("--token-file")
        .arg(token_file)
        .arg("--out")
        .arg(out)
        .env("VIGIL_LAB_STATE", state)
        .env("RUST_LOG", "error")
        .output()
        .expect("run vigil-lab");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "vigil-lab failed:\n{text}");
    println!("{text}");
    let summary = std::fs::read_to_string(out.join("summary.json")).expect("summary.json");
    serde_json::from_str(&summary).expect("summary is JSON")
}
