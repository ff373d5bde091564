//! Running system commands (ip, nft, tc) with errors that name the command.

use std::process::{Command, Output};

use crate::error::{LabError, Result};

/// Runs `argv`, failing with its stderr when it exits non-zero.
pub fn run(argv: &[&str]) -> Result<Output> {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .map_err(|e| LabError::Command {
            command: argv.join(" "),
            detail: format!(
                "cannot start {}: {e} (is it installed? `cargo xtask setup`)",
                argv[0]
            ),
        })?;
    if !out.status.success() {
        return Err(LabError::Command {
            command: argv.join(" "),
            detail: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(out)
}

/// Runs `argv` inside network namespace `ns`.
pub fn run_in(ns: &str, argv: &[&str]) -> Result<Output> {
    let mut full = vec!["ip", "netns", "exec", ns];
    full.extend_from_slice(argv);
    run(&full)
}

/// Runs `argv`, ignoring failure (teardown of things that may already be gone).
pub fn try_run(argv: &[&str]) -> bool {
    Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .is_ok_and(|o| o.status.success())
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}
