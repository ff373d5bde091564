//! Must-show 3: the control plane is down for 10 s while events happen; after it returns,
//! every buffered event arrives exactly once, with gap-free sequence numbers.

use std::{path::Path, process::Command, time::Duration};

use vigil_tests::{require_root, wait_for, Agent, AgentOptions, ControlPlane};

/// Copies /bin/true to a unique path so its exec events can be counted exactly.
fn marker(dir: &Path, name: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::copy("/bin/true", &path).expect("copy /bin/true");
    path
}

fn run_markers(path: &Path, n: usize) {
    for _ in 0..n {
        let status = Command::new(path).status().expect("run marker");
        assert!(status.success());
    }
}

fn exec_count(api: &vigil_tests::Api, node: &str, path: &Path) -> usize {
    api.events(&format!("kind=process_exec&node={node}"))
        .iter()
        .filter(|e| e["kind"]["filename"] == path.to_string_lossy().as_ref())
        .count()
}

#[test]
fn events_during_a_control_plane_outage_arrive_exactly_once() {
    require_root();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cp = ControlPlane::start(dir.path());
    let api = cp.api();
    let node = "outage-node";
    let agent = Agent::start(dir.path(), &cp.endpoint(), &api, &AgentOptions::new(node));

    let before = marker(dir.path(), "vigil-marker-before");
    run_markers(&before, 20);
    wait_for(Duration::from_secs(10), "events before the outage", || {
        (exec_count(&api, node, &before) == 20).then_some(())
    });

    cp.stop();
    let during = marker(dir.path(), "vigil-marker-during");
    let started = std::time::Instant::now();
    let mut ran = 0;
    // Events keep happening for the whole 10 s outage.
    while started.elapsed() < Duration::from_secs(10) {
        run_markers(&during, 10);
        ran += 10;
        std::thread::sleep(Duration::from_millis(200));
    }
    agent.assert_running();
    cp.restart();

    wait_for(
        Duration::from_secs(30),
        "every buffered event to arrive",
        || {
            let n = exec_count(&api, node, &during);
            assert!(
                n <= ran,
                "{n} exec events stored for {ran} runs: duplicates"
            );
            (n == ran).then_some(())
        },
    );
    // Let any late retry land, then check nothing was stored twice.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(exec_count(&api, node, &during), ran);
    assert_eq!(
        exec_count(&api, node, &before),
        20,
        "events before the outage must not repeat"
    );

    // Sequence numbers 1..=max, each exactly once.
    let events = api.events(&format!("node={node}"));
    let mut seqs: Vec<u64> = events.iter().filter_map(|e| e["seq"].as_u64()).collect();
    seqs.sort_unstable();
    let max = *seqs.last().expect("some events");
    assert_eq!(seqs.first(), Some(&1));
    assert_eq!(seqs.len() as u64, max, "gaps or duplicates in 1..={max}");
    seqs.dedup();
    assert_eq!(seqs.len() as u64, max);

    // Nothing was dropped on the way and the node says so.
    let nodes = api.get("/api/v1/nodes");
    let stats = &nodes[0]["stats"];
    assert_eq!(stats["buffer_dropped"], 0, "{nodes:#}");
    assert_eq!(stats["kernel_dropped"], 0, "{nodes:#}");
}
