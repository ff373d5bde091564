//! Must-show 1: a real OOM kill in a v1 memory cgroup becomes an incident, via the agent's
//! gRPC stream, with the right workload and victim.

use std::{process::Command, time::Duration};

use vigil_tests::{bin_path, unique_name, wait_for, AgentOptions, Cgroup, Stack};

#[test]
fn oom_kill_opens_an_attributed_incident() {
    let Stack {
        dir: _dir,
        cp: _cp,
        api,
        agent: _agent,
    } = Stack::start(&AgentOptions::new("oom-node"));

    let cgroup = Cgroup::memory_v1(&unique_name("oom"), Some(48 << 20));
    let mut command = Command::new(bin_path("vigil-test-hog"));
    command.args(["1", "3"]);
    cgroup.place(&mut command);
    let mut hog = command.spawn().expect("start the memory hog");
    let victim_pid = hog.id();
    let status = hog.wait().expect("wait for the hog");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "the kernel should have OOM-killed the hog: {status}"
    );

    let workload_key = format!("cgroup{}", cgroup.path());
    let incident = wait_for(Duration::from_secs(15), "the OOM incident", || {
        api.incidents()
            .into_iter()
            .find(|i| i["kind"] == "oom_kill" && i["workload_key"] == workload_key.as_str())
    });
    assert_eq!(incident["status"], "open");
    assert_eq!(incident["node"], "oom-node");
    assert_eq!(
        incident["attributes"]["victim"]["victim_pid"], victim_pid,
        "{incident:#}"
    );
    assert_eq!(
        incident["attributes"]["victim"]["victim_comm"],
        "vigil-test-hog"
    );
    assert_eq!(
        incident["attributes"]["workload"]["cgroup_path"],
        cgroup.path().as_str()
    );
    assert_eq!(incident["attributes"]["workload"]["kind"], "cgroup");
    let anon_kb = incident["attributes"]["victim"]["anon_rss_kb"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        (30_000..=60_000).contains(&anon_kb),
        "anon RSS near the 48 MiB limit, got {anon_kb} KiB"
    );

    // The evidence is the kernel's oom:mark_victim event, and the victim's exit by SIGKILL
    // was seen too.
    let detail = api.get(&format!("/api/v1/incidents/{}", incident["id"]));
    let evidence = detail["evidence"].as_array().cloned().unwrap_or_default();
    assert_eq!(evidence.len(), 1, "{detail:#}");
    assert_eq!(evidence[0]["kind"]["type"], "oom_kill");
    // The kill lands after the OOM event, possibly in a later batch.
    let exit = wait_for(Duration::from_secs(10), "the victim's exit event", || {
        api.events(&format!("kind=process_exit&workload={workload_key}"))
            .into_iter()
            .find(|e| e["task"]["tgid"] == victim_pid)
    });
    assert_eq!(exit["kind"]["signal"], 9, "killed by SIGKILL: {exit:#}");
    // Exactly one incident for one kill.
    let count = api
        .incidents()
        .iter()
        .filter(|i| i["workload_key"] == workload_key.as_str())
        .count();
    assert_eq!(count, 1);
}
