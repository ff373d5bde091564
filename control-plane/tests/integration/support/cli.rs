//! The `vigil` CLI run against a test's control plane, as an operator runs it.

use std::process::Output;

use super::plane::Plane;

/// `vigil --api <plane> --token-file <its admin token> args…`.
pub async fn vigil(plane: &Plane, args: &[&str]) -> Output {
    vigil_as(plane, plane.token_file(), args).await
}

/// `vigil` with another token's file.
pub async fn vigil_as(plane: &Plane, token_file: &std::path::Path, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["--api", &plane.base()])
        .arg("--token-file")
        .arg(token_file)
        .env_remove("VIGIL_TOKEN")
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

/// A new token `name` with `role`, made by the admin with `vigil tokens create`, in a file
/// beside the store: the path to give `vigil_as`.
pub async fn issue_token(plane: &Plane, name: &str, role: &str) -> std::path::PathBuf {
    let secret = ok(&vigil(plane, &["tokens", "create", name, "--role", role]).await);
    let path = plane.dir().join(format!("{name}.token"));
    std::fs::write(&path, secret.trim()).expect("write the token");
    path
}
