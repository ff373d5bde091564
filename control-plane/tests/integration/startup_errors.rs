//! Start-up failures are errors that name the cause, not strings: the in-memory API server
//! refuses the Lease, and the control plane stops with `AppError::Election`, naming the Lease
//! and keeping the lease manager's error as its source; an LLM key that is not in the
//! environment stops it naming the variable.

use std::{error::Error as _, time::Duration};

use crate::support::{apiserver::ApiServer, config::cluster_config};
use control_plane::app::{self, AppError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_lease_stops_start_up_naming_the_lease_and_the_cause() {
    let api = ApiServer::start().await;
    // Every request about leases is forbidden (RBAC without the Lease rules).
    api.fail("GET", "/leases/vigil-control-plane", 100, 403);
    api.fail("POST", "/leases", 100, 403);
    api.fail("PATCH", "/leases/vigil-control-plane", 100, 403);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = cluster_config(&api, "cp", dir.path());
    let run = app::run(config, std::future::pending(), |_| {});
    let result = tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("start-up gives up within 20 s");
    let err = result.expect_err("a forbidden Lease is fatal");
    assert!(
        matches!(&err, AppError::Election { lease, .. } if lease == "vigil/vigil-control-plane"),
        "{err:?}"
    );
    assert!(err.to_string().contains("RBAC"), "names the fix: {err}");
    assert!(err.source().is_some(), "keeps the lease manager's error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_llm_key_missing_from_the_environment_stops_start_up_naming_the_variable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = control_plane::config::ControlPlaneConfig {
        grpc_listen: "127.0.0.1:0".parse().expect("addr"),
        http_listen: "127.0.0.1:0".parse().expect("addr"),
        store_path: dir.path().join("vigil.db"),
        ..Default::default()
    };
    config.detection.enabled = false;
    config.diagnosis.llm = Some(
        serde_json::from_value(serde_json::json!({
            "provider": "openai", "model": "m", "api_key_env": "VIGIL_TEST_KEY_NOBODY_SET",
        }))
        .expect("llm section"),
    );
    let run = app::run(config, std::future::pending(), |_| {});
    let err = tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("start-up gives up at once")
        .expect_err("a missing key is fatal");
    assert!(
        matches!(&err, AppError::LlmKey { env } if env == "VIGIL_TEST_KEY_NOBODY_SET"),
        "{err:?}"
    );
    assert!(err.to_string().contains("export"), "names the fix: {err}");
}
