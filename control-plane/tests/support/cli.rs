//! The `vigil` CLI run against a test's control plane, as an operator runs it.

use std::process::Output;

use super::plane::Plane;

pub async fn vigil(plane: &Plane, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["--api", &plane.base()])
        .args(args)
        .output()
        .await
        .expect("run vigil")
}

/// Its standard output, after it succeeded.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Its standard error, after it failed.
pub fn refused(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}
