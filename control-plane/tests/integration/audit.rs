//! The audit log as an operator checks it: a real control plane writes its diagnoses, the
//! decisions remediation takes on them and an operator's verdict to the log and signs
//! checkpoints; `vigil audit verify` (the real CLI,
//! over the API) finds it intact, then names each tampering done to the store's rows behind
//! its back: an edited record, two records swapped, and a tail cut off after a checkpoint —
//! with the control plane's own checkpoints, and with them deleted too, against checkpoints
//! exported earlier.

use std::{path::Path, time::Duration};

use crate::support::{
    cli::{issue_token, ok, refused, vigil, vigil_as},
    plane::Plane,
};
use serde_json::Value;

/// What the store's file says, changed by another writer (the attacker with the disk).
fn tamper(dir: &Path, sql: &str) {
    let conn = rusqlite::Connection::open(dir.join("vigil.db")).expect("open the store");
    conn.busy_timeout(Duration::from_secs(5)).expect("timeout");
    conn.execute_batch(sql).expect("tamper");
}

fn record_json(dir: &Path, seq: i64) -> String {
    let conn = rusqlite::Connection::open(dir.join("vigil.db")).expect("open the store");
    conn.query_row("SELECT record FROM audit WHERE seq = ?1", [seq], |r| {
        r.get(0)
    })
    .expect("a record")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vigil_audit_verify_names_every_tampering() {
    let workloads = ["cgroup/a", "cgroup/b", "cgroup/c", "cgroup/d", "cgroup/e"];
    let plane = Plane::start_with(&workloads, |c| {
        c.audit.checkpoint_every_records = 2;
        c.audit.checkpoint_every_secs = 3_600;
    })
    .await;
    let dir = plane.dir().to_path_buf();
    let key = dir.join("audit-ed25519.key.pub");
    let key = key.to_str().expect("utf-8");

    // The first admin token installed, five diagnoses, the five decisions remediation took
    // on them (observe phase: logged only), alice's token issued and her verdict: thirteen
    // records, checkpoints at 2, 4, … 12.
    let alice = issue_token(&plane, "alice", "approver").await;
    ok(&vigil_as(&plane, &alice, &["incident", "1", "confirm"]).await);
    let mut page = Value::Null;
    for _ in 0..100 {
        page = plane
            .client()
            .get(format!("{}/api/v1/audit", plane.base()))
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("JSON");
        if page["records"].as_array().map_or(0, Vec::len) >= 13 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let records = page["records"].as_array().expect("records");
    assert_eq!(records.len(), 13, "{page:#}");
    let count = |kind: &str| records.iter().filter(|r| r["kind"] == kind).count();
    assert_eq!(
        (count("diagnosis"), count("decision"), count("access")),
        (5, 5, 2),
        "{page:#}"
    );
    assert!(
        !page.to_string().contains("vigil_"),
        "no token's secret is in the log"
    );
    let verdict = records
        .iter()
        .find(|r| r["kind"] == "feedback")
        .expect("the verdict");
    assert_eq!(
        (verdict["actor"].as_str(), verdict["incident"].as_i64()),
        (Some("alice"), Some(1))
    );
    let sizes: Vec<u64> = page["checkpoints"]
        .as_array()
        .expect("checkpoints")
        .iter()
        .filter_map(|c| c["size"].as_u64())
        .collect();
    assert_eq!(sizes, [2, 4, 6, 8, 10, 12]);

    let listed = ok(&vigil(&plane, &["audit"]).await);
    assert!(
        listed.contains("alice") && listed.contains("diagnosed as oom_kill"),
        "{listed}"
    );
    let intact = ok(&vigil(&plane, &["audit", "verify", "--public-key-file", key]).await);
    assert!(
        intact.contains("intact: 13 records, 6 checkpoints, signed through record 12"),
        "{intact}"
    );
    let exported = ok(&vigil(&plane, &["audit", "checkpoints"]).await);
    let exported_path = dir.join("exported-checkpoints.json");
    std::fs::write(&exported_path, &exported).expect("export");
    let exported_path = exported_path.to_str().expect("utf-8");

    // 1. One record edited in place.
    let original = record_json(&dir, 3);
    tamper(
        &dir,
        "UPDATE audit SET record = json_set(record, '$.summary', 'nothing happened') WHERE seq = 3",
    );
    let e = refused(&vigil(&plane, &["audit", "verify", "--public-key-file", key]).await);
    assert!(e.contains("record 3 was edited"), "{e}");
    let conn = rusqlite::Connection::open(dir.join("vigil.db")).expect("open");
    conn.execute("UPDATE audit SET record = ?1 WHERE seq = 3", [&original])
        .expect("restore");
    ok(&vigil(&plane, &["audit", "verify", "--public-key-file", key]).await);

    // 2. Two records swapped.
    tamper(
        &dir,
        "UPDATE audit SET seq = -1 WHERE seq = 4; UPDATE audit SET seq = 4 WHERE seq = 5; \
         UPDATE audit SET seq = 5 WHERE seq = -1;",
    );
    let e = refused(&vigil(&plane, &["audit", "verify", "--public-key-file", key]).await);
    assert!(e.contains("record 4") && e.contains("record 5"), "{e}");
    tamper(
        &dir,
        "UPDATE audit SET seq = -1 WHERE seq = 4; UPDATE audit SET seq = 4 WHERE seq = 5; \
         UPDATE audit SET seq = 5 WHERE seq = -1;",
    );
    ok(&vigil(&plane, &["audit", "verify", "--public-key-file", key]).await);

    // 3. The tail after checkpoint 4 cut off: the control plane's own checkpoint shows it…
    tamper(&dir, "DELETE FROM audit WHERE seq > 4");
    let e = refused(&vigil(&plane, &["audit", "verify", "--public-key-file", key]).await);
    assert!(
        e.contains("has 4 records but a signed checkpoint counted 12"),
        "{e}"
    );
    // …and with that checkpoint deleted too, only the exported copy does.
    tamper(&dir, "DELETE FROM audit_checkpoints WHERE size > 4");
    ok(&vigil(&plane, &["audit", "verify", "--public-key-file", key]).await);
    let e = refused(
        &vigil(
            &plane,
            &[
                "audit",
                "verify",
                "--public-key-file",
                key,
                "--checkpoints",
                exported_path,
            ],
        )
        .await,
    );
    assert!(e.contains("tail was removed"), "{e}");

    // A key that is not the log's own signs nothing here.
    let other = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    let e = refused(&vigil(&plane, &["audit", "verify", "--public-key", other]).await);
    assert!(e.contains("not signed by the trusted key"), "{e}");

    plane.stop().await;
}
