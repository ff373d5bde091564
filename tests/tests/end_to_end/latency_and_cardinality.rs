//! Run-queue and block-IO latency histograms attributed to the workload, the flow map's
//! cardinality bound (evictions are counted and reported, not silent), and syscall latency
//! that survives thread-id reuse.

use std::time::Duration;

use serde_json::Value;
use vigil_tests::{topology::Workload, wait_for, AgentOptions, Stack};

/// Latency samples of `kind` for `key`, summed: (count, buckets).
fn latency(api: &vigil_tests::Api, key: &str, kind: &str) -> (u64, Vec<u64>) {
    let samples = api.list(&format!(
        "/api/v1/samples?kind=latency&workload={key}&limit=10000"
    ));
    let mut count = 0;
    let mut buckets = vec![0u64; 32];
    for s in samples.iter().filter(|s| s["sample"]["kind"] == kind) {
        let h = &s["sample"]["latency"];
        count += h["count"].as_u64().unwrap_or(0);
        for (i, b) in h["log2_buckets"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            if let Some(slot) = buckets.get_mut(i) {
                *slot += b.as_u64().unwrap_or(0);
            }
        }
    }
    (count, buckets)
}

#[test]
fn run_queue_latency_grows_for_an_oversubscribed_workload() {
    let Stack {
        dir,
        cp: _cp,
        api,
        agent: _agent,
    } = Stack::start(&AgentOptions::new("runq-node"));
    // More busy threads than CPUs: each waits for a CPU behind the others.
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let script = format!(
        "for i in $(seq {}); do (timeout 2 sh -c 'while :; do :; done') & done; wait",
        cpus * 3
    );
    let mut hogs = Workload::spawn_host("spinners", dir.path(), &["sh", "-c", &script]);
    hogs.wait(Duration::from_secs(30));
    let (count, buckets) = wait_for(
        Duration::from_secs(15),
        "run-queue latency for the spinners",
        || {
            let l = latency(&api, &hogs.key(), "run_queue");
            (l.0 > 0).then_some(l)
        },
    );
    // Time slices are milliseconds: with 3 runnable threads per CPU some waits reach ≥ 1 ms
    // (bucket 20 = [2^20, 2^21) ns ≈ 1.05 ms).
    let slow: u64 = buckets[20..].iter().sum();
    assert!(
        slow > 0,
        "no wait of 1 ms or more among {count}: {buckets:?}"
    );
}

#[test]
fn direct_io_latency_is_attributed_to_the_writer() {
    let Stack {
        dir,
        cp: _cp,
        api,
        agent: _agent,
    } = Stack::start(&AgentOptions::new("bio-node"));
    // O_DIRECT on the root filesystem (a real block device): every write is a block request
    // issued by the writer itself. tmpfs would issue none.
    let file = std::path::Path::new("/var/tmp").join(vigil_tests::unique_name("bio"));
    let mut writer = Workload::spawn_host(
        "direct-writer",
        dir.path(),
        &[
            "dd",
            "if=/dev/zero",
            &format!("of={}", file.display()),
            "bs=64k",
            "count=64",
            "oflag=direct,dsync",
        ],
    );
    let out = writer.wait(Duration::from_secs(60));
    let _ = std::fs::remove_file(&file);
    assert!(out.contains("copied"), "dd failed:\n{out}");
    let (count, _) = wait_for(
        Duration::from_secs(15),
        "block IO latency for the writer",
        || {
            let l = latency(&api, &writer.key(), "block_io");
            (l.0 >= 64).then_some(l)
        },
    );
    let samples = api.list(&format!(
        "/api/v1/samples?kind=latency&workload={}&limit=100",
        writer.key()
    ));
    let device = samples
        .iter()
        .find(|s| s["sample"]["kind"] == "block_io")
        .and_then(|s| s["sample"]["device"].as_str())
        .unwrap_or("");
    assert!(
        device.contains(':'),
        "device as major:minor, got {device:?}"
    );
    assert!(
        count >= 64,
        "64 synchronous direct writes, {count} requests seen"
    );
}

#[test]
fn flow_map_evictions_are_counted_and_reported() {
    // A flow map far smaller than the connections opened in one interval.
    let options = AgentOptions {
        telemetry_toml: "[telemetry.maps]\nflows = 128\n".into(),
        telemetry_interval_ms: 2_000,
        ..AgentOptions::new("evict-node")
    };
    let Stack {
        dir: _dir,
        cp: _cp,
        api,
        agent: _agent,
    } = Stack::start(&options);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut open = Vec::new();
    for _ in 0..600 {
        let c = std::net::TcpStream::connect(addr).expect("connect");
        let (s, _) = listener.accept().expect("accept");
        open.push((c, s));
    }
    let flows = wait_for(
        Duration::from_secs(15),
        "the flow map's usage with evictions",
        || {
            let nodes = api.get("/api/v1/nodes");
            let maps = nodes[0]["maps"].as_array()?.clone();
            let flows: Value = maps.into_iter().find(|m| m["name"] == "flows")?;
            (flows["evicted"].as_u64().unwrap_or(0) > 0).then_some(flows)
        },
    );
    drop(open);
    assert_eq!(flows["capacity"], 128, "{flows}");
    let (inserted, evicted, entries) = (
        flows["inserted"].as_u64().unwrap_or(0),
        flows["evicted"].as_u64().unwrap_or(0),
        flows["entries"].as_u64().unwrap_or(0),
    );
    // 600 connections seen from both ends on loopback: about 1200 keys through 128 slots.
    assert!(inserted >= 1000, "{flows}");
    // Our 600 connections stay open, so user space never deletes their ~1200 keys: all but
    // the 128 that fit were evicted. (Other host traffic adds keys, some of them deleted.)
    assert!(entries <= 128 && evicted >= 1200 - 128 - 150, "{flows}");
}

/// Syscall samples of `key`, by name: (count, buckets ≥ 2^31 ns ≈ 2.1 s).
fn syscalls(api: &vigil_tests::Api, key: &str) -> std::collections::BTreeMap<String, (u64, u64)> {
    let mut by_name = std::collections::BTreeMap::new();
    for s in api.list(&format!(
        "/api/v1/samples?kind=syscall&workload={key}&limit=100000"
    )) {
        let h = &s["sample"]["latency"];
        let slow = h["log2_buckets"]
            .as_array()
            .and_then(|b| b.get(31))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let e: &mut (u64, u64) = by_name
            .entry(s["sample"]["name"].as_str().unwrap_or("").to_string())
            .or_default();
        e.0 += h["count"].as_u64().unwrap_or(0);
        e.1 += slow;
    }
    by_name
}

/// Runs alone (its name ends in `alone`): it wraps the host's pid space twice, and tests
/// beside it that tell a live process by its pid (the lab's stale-lock check) would see a
/// dead one's pid handed to another process.
#[test]
fn exits_are_never_timed_even_when_their_thread_ids_are_reused_alone() {
    let Stack {
        dir,
        cp: _cp,
        api,
        agent: _agent,
    } = Stack::start(&AgentOptions::new("churn-node"));
    let churn = vigil_tests::bin_path("vigil-test-churn");
    let mut w = Workload::spawn_host(
        "churn",
        dir.path(),
        &[churn.to_str().expect("utf-8 path"), "2"],
    );
    let log = w.wait(Duration::from_secs(120));
    eprintln!("{log}");
    let key = w.key();
    // The threads' own syscalls arrive: the agent saw the workload.
    let seen = wait_for(
        Duration::from_secs(15),
        "the churn's clone syscalls",
        || {
            let s = syscalls(&api, &key);
            let clones: u64 = ["clone", "clone3"]
                .iter()
                .filter_map(|n| s.get(*n))
                .map(|c| c.0)
                .sum();
            (clones > 60_000).then_some(s)
        },
    );
    // `exit` and `exit_group` never return: a sample of either is a dead task's entry timed
    // into the next owner of its thread id.
    for name in ["exit", "exit_group"] {
        assert!(
            !seen.contains_key(name),
            "{name} was timed: {:?}",
            seen.get(name)
        );
    }
    let slow: Vec<_> = seen.iter().filter(|(_, c)| c.1 > 0).collect();
    assert!(
        slow.is_empty(),
        "syscalls of ≥ 2 s in a busy loop: {slow:?}"
    );
}
