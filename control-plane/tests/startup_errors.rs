//! Start-up failures against the cluster are errors that name the cause, not strings: the
//! in-memory API server refuses the Lease, and the control plane stops with
//! `AppError::Election`, naming the Lease and keeping the lease manager's error as its source.

mod support;

use std::{error::Error as _, time::Duration};

use control_plane::app::{self, AppError};
use support::{apiserver::ApiServer, config::cluster_config};

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
