//! Issue 19, crash safety: the control plane's store on a filesystem that fills up. Ingest
//! refuses with UNAVAILABLE naming the cause and asking for a retry, the control plane keeps
//! serving, and once space is back the agent's retry of the refused batch is stored — every
//! event exactly once, nothing acknowledged lost.

use std::{path::PathBuf, process::Command, time::Duration};

use tonic::Code;
use vigil_proto::v1::{self, agent_ingest_client::AgentIngestClient};
use vigil_tests::{require_root, ControlPlane};

/// A small tmpfs mounted for the test, unmounted on drop.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: PathBuf, size: &str) -> Self {
        std::fs::create_dir_all(&at).expect("mount point");
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "vigil-test-full",
            ])
            .arg(&at)
            .status()
            .expect("mount")
            .success();
        assert!(ok, "mounting a tmpfs at {} failed", at.display());
        Self(at)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn batch(from_seq: u64, n: u64) -> v1::EventBatch {
    let t = vigil_tests::now_unix_ns();
    v1::EventBatch {
        node_name: "full-node".into(),
        events: (from_seq..from_seq + n)
            .map(|seq| v1::Event {
                seq,
                kernel_time_ns: seq,
                time_unix_ns: t,
                task: Some(v1::Task {
                    pid: 1000 + seq as u32,
                    tgid: 1000 + seq as u32,
                    comm: "filler".into(),
                    ..Default::default()
                }),
                workload: Some(v1::Workload {
                    kind: v1::WorkloadKind::Host as i32,
                    key: "host/filler".into(),
                    ..Default::default()
                }),
                kind: Some(v1::event::Kind::Exec(v1::ProcessExec {
                    filename: format!("/usr/bin/filler-{seq}-{}", "x".repeat(200)),
                })),
            })
            .collect(),
        stats: None,
    }
}

/// Fills `dir`'s filesystem with a file until it refuses more.
fn fill(dir: &std::path::Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).expect("filler");
    let block = vec![0u8; 64 << 10];
    while f.write_all(&block).is_ok() {}
    let _ = f.flush();
    path
}

#[test]
fn a_full_disk_refuses_ingest_naming_it_and_the_retry_stores_every_event_once() {
    require_root();
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = SmallDisk::mount(dir.path().join("store"), "16m");
    let cp = ControlPlane::start(&disk.0);
    let api = cp.api();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let total = runtime.block_on(async {
        let mut client = AgentIngestClient::new(cp.channel("full-node").await);
        client
            .push_events(batch(1, 100))
            .await
            .expect("stored while there is room");

        let filler = fill(&disk.0);
        // The store's pages may still have room for a batch or two: push until refused.
        let mut seq = 101;
        let refused = loop {
            match client.push_events(batch(seq, 200)).await {
                Ok(_) => seq += 200,
                Err(status) => break status,
            }
            assert!(seq < 100_000, "the store never ran out of space");
        };
        println!("refused at seq {seq}: {}", refused.message());
        assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
        assert!(
            refused.message().contains("retry later") && refused.message().contains("full"),
            "the refusal names the cause: {refused:?}"
        );
        // Still serving, and still refusing while full.
        let health = reqwest::get(format!("http://{}/healthz", cp.http))
            .await
            .expect("healthz");
        assert!(health.status().is_success(), "still serving while full");
        let again = client
            .push_events(batch(seq, 200))
            .await
            .expect_err("still full");
        assert_eq!(again.code(), Code::Unavailable);

        std::fs::remove_file(&filler).expect("free the space");
        // The agent's retry of the refused batch, then more.
        let mut retried = None;
        for _ in 0..50 {
            match client.push_events(batch(seq, 200)).await {
                Ok(_) => {
                    retried = Some(());
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        retried.expect("stored once space is back");
        client
            .push_events(batch(seq + 200, 50))
            .await
            .expect("and what follows");
        seq + 200 + 50 - 1
    });
    let events = api.events("node=full-node");
    let mut seqs: Vec<u64> = events.iter().filter_map(|e| e["seq"].as_u64()).collect();
    seqs.sort_unstable();
    let expected: Vec<u64> = (1..=total).collect();
    assert_eq!(seqs.len(), expected.len(), "every event exactly once");
    assert_eq!(seqs, expected, "no gap, no duplicate");
    assert!(
        !cp.log().contains("panicked"),
        "the control plane did not crash:\n{}",
        cp.log()
    );
    drop(cp);
    drop(disk);
}
