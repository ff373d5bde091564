//! Loss is counted and reported, never silent: records the kernel could not put into a full
//! ring buffer, and events the agent dropped from its bounded buffer while the control plane
//! was away, both reach the control plane's node stats.

use std::{process::Command, time::Duration};

use nix::sys::signal::Signal;
use vigil_tests::{wait_for, AgentOptions, Api, Stack};

fn node_stats(api: &Api, node: &str) -> Option<serde_json::Value> {
    let nodes = api.try_get("/api/v1/nodes")?;
    nodes
        .as_array()?
        .iter()
        .find(|n| n["name"] == node)
        .map(|n| n["stats"].clone())
}

fn exec_storm(n: usize) {
    for _ in 0..n {
        let status = Command::new("/bin/true").status().expect("run /bin/true");
        assert!(status.success());
    }
}

#[test]
fn a_full_ring_buffer_is_counted_in_the_kernel_and_reported() {
    let mut options = AgentOptions::new("ring-node");
    // One page: about 20 exec records.
    options.ring_buffer_bytes = 4096;
    let Stack {
        dir: _dir,
        cp: _cp,
        api,
        agent,
    } = Stack::start(&options);

    // Other work on the host (tests in parallel) may already overflow so small a ring: count
    // from what was reported before the stall.
    let before = node_stats(&api, "ring-node")
        .and_then(|s| s["kernel_dropped"].as_u64())
        .unwrap_or(0);
    // A stalled agent cannot drain the ring; the kernel must count what did not fit.
    agent.signal(Signal::SIGSTOP);
    exec_storm(200);
    agent.signal(Signal::SIGCONT);
    // Events after the stall carry the updated counters.
    exec_storm(5);
    // 200 execs make ~400 records (exec and exit); at most ~20 fit.
    let stats = wait_for(
        Duration::from_secs(15),
        "the storm's kernel drops in the node stats",
        || {
            node_stats(&api, "ring-node")
                .filter(|s| s["kernel_dropped"].as_u64().unwrap_or(0) >= before + 150)
        },
    );
    assert!(
        stats["kernel_dropped"].as_u64().unwrap_or(0) >= before + 150,
        "expected most of the storm dropped (before it: {before}), got {stats}"
    );
    assert!(
        agent.log().contains("kernel ring buffer was full"),
        "the agent must log the loss"
    );
}

#[test]
fn a_full_agent_buffer_drops_oldest_and_reports_it() {
    let mut options = AgentOptions::new("buffer-node");
    options.buffer_max_events = 64;
    options.batch_max_events = 16;
    let Stack {
        dir: _dir,
        mut cp,
        api,
        agent,
    } = Stack::start(&options);

    cp.stop();
    exec_storm(100);
    agent.assert_running();
    cp.restart();
    exec_storm(5);
    // At least 100 exec + 100 exit events happened while only 64 fit. The counters are
    // cumulative and ride on every batch: under load the agent may still be reading the
    // ring when its first batch after the outage goes, so wait for the count to get there.
    let stats = wait_for(
        Duration::from_secs(20),
        "at least 100 buffer drops in the node stats",
        || {
            node_stats(&api, "buffer-node")
                .filter(|s| s["buffer_dropped"].as_u64().unwrap_or(0) >= 100)
        },
    );
    assert_eq!(
        stats["kernel_dropped"], 0,
        "the kernel side did not overflow: {stats}"
    );
    // What survived was delivered, and new events flow again. (Other tests' floods may
    // keep the 64-event buffer churning for a moment: keep making events until some land.)
    wait_for(
        Duration::from_secs(20),
        "exec events after the outage",
        || {
            exec_storm(2);
            (!api.events("kind=process_exec&node=buffer-node").is_empty()).then_some(())
        },
    );
}
