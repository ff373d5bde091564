//! The agent's start-up errors name the cause and the fix instead of a misleading one.

use std::{os::unix::process::CommandExt, process::Command};

use vigil_tests::{bin_path, require_root};

#[test]
fn unprivileged_agent_says_it_needs_root() {
    // Root is needed to drop to an unprivileged user for the check.
    require_root();
    let out = Command::new(bin_path("vigil-agent"))
        .uid(65534)
        .gid(65534)
        .env("RUST_LIB_BACKTRACE", "0")
        .output()
        .expect("run the agent as nobody");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("must run as root"),
        "the error should say why and what to do:\n{stderr}"
    );
    assert!(
        !stderr.contains("does not exist"),
        "not a missing tracepoint:\n{stderr}"
    );
}
