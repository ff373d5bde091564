//! What every task shares: where the workspace and cargo's binaries are, running a command
//! that must succeed, and numbered progress lines.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicUsize, Ordering},
};

use anyhow::{bail, Context as _};

static STEP: AtomicUsize = AtomicUsize::new(0);

pub fn step(what: &str) {
    let n = STEP.fetch_add(1, Ordering::Relaxed) + 1;
    println!("==> [{n}] {what}");
}

pub fn done(detail: &str) {
    println!("    {detail}");
}

pub fn cargo_bin_dir() -> PathBuf {
    cargo_home().join("bin")
}

pub fn cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cargo")
        })
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Runs `command`, failing with its description if it fails.
pub fn run(command: &mut Command, what: &str) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("{what}: cannot start {:?}", command.get_program()))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}
