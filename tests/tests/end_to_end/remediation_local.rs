//! Issue 16, must-show 2 on the real kernel: a workload OOM-killed in a loop by its v1 memory
//! cgroup has its limit raised by Vigil (local runtime, autonomous phase) and stops dying,
//! which the verifier reads from the kernel's own OOM events; when the kills come faster after
//! the raise, the verifier writes the old limit back by itself.
//!
//! Alone: every agent sees the whole host's OOM kills, so a control plane allowed to act
//! would raise another test's limits (and the other test's plane these ones).

use std::time::Duration;

use vigil_tests::{unique_name, wait_for, AgentOptions, Api, Cgroup, Stack, Supervisor};

const LIMIT: u64 = 48 << 20;

/// Vigil may raise memory limits on its own here, and judges an action 8 s after it ran.
const AUTONOMOUS: &str = "[remediation]\nruntime = \"local\"\nverify_after_secs = 8\n\
                          [remediation.phases]\nraise_memory_limit = \"autonomous\"\n";

fn limit_of(cgroup: &Cgroup) -> u64 {
    std::fs::read_to_string(cgroup.dir.join("memory.limit_in_bytes"))
        .expect("read the limit")
        .trim()
        .parse()
        .expect("a number")
}

/// The one action Vigil took on `workload`, once it is in a state `done` accepts.
fn action_on(
    api: &Api,
    workload: &str,
    within: Duration,
    what: &str,
    done: impl Fn(&str) -> bool,
) -> serde_json::Value {
    wait_for(within, what, || {
        let actions: Vec<_> = api
            .list("/api/v1/actions")
            .into_iter()
            .filter(|a| a["request"]["target"] == workload)
            .collect();
        assert!(actions.len() <= 1, "one action per target: {actions:#?}");
        actions
            .into_iter()
            .find(|a| done(a["state"].as_str().unwrap_or("")))
    })
}

/// Vigil's raise of `workload`'s limit, once it ran (autonomous: no approval to wait for).
fn raised(api: &Api, workload: &str) -> serde_json::Value {
    let ran = action_on(
        api,
        workload,
        Duration::from_secs(40),
        "Vigil raising the limit",
        |s| s != "observed" && s != "pending_approval",
    );
    assert_eq!(ran["step"]["action"], "raise_memory_limit", "{ran:#}");
    ran
}

/// The same action once its verification has ended.
fn verification_of(api: &Api, workload: &str) -> serde_json::Value {
    action_on(
        api,
        workload,
        Duration::from_secs(30),
        "the verification",
        |s| !matches!(s, "verifying" | "observed" | "pending_approval"),
    )
}

/// The raise_memory_limit class's record: (ran, recovered, rolled back, success rate).
fn memory_record(api: &Api) -> (u64, u64, u64, Option<f64>) {
    let record = api.list("/api/v1/actions/record");
    let c = record
        .iter()
        .find(|c| c["class"] == "raise_memory_limit")
        .expect("every class is listed");
    let n = |k: &str| c[k].as_u64().unwrap_or(0);
    (
        n("ran"),
        n("recovered"),
        n("rolled_back"),
        c["success_rate"].as_f64(),
    )
}

/// What the audit log says about `action`'s incident, one line per record.
fn audit_of(api: &Api, action: &serde_json::Value) -> String {
    let incident = &action["request"]["incident"];
    api.get("/api/v1/audit?limit=10000")["records"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["incident"] == *incident)
        .map(|r| format!("{}: {}", r["kind"], r["summary"]))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn an_oom_loop_gets_its_memory_limit_raised_and_stops_alone() {
    let Stack {
        dir: _dir,
        cp: _cp,
        api,
        agent: _agent,
    } = Stack::start_with(&AgentOptions::new("raise-node"), AUTONOMOUS);
    let cgroup = Cgroup::memory_v1(&unique_name("oomloop"), Some(LIMIT));
    let workload = format!("cgroup{}", cgroup.path());
    // 64 MiB of working set under a 48 MiB limit: killed on every start, until 1.5 × 48 = 72.
    let hog = Supervisor::start(&cgroup, Duration::from_millis(300), || {
        ["4", "5", "64"].map(String::from).to_vec()
    });

    let ran = raised(&api, &workload);
    assert_eq!(limit_of(&cgroup), LIMIT * 3 / 2, "{ran:#}");
    let kills_at_raise = hog.kills();
    assert!(kills_at_raise >= 1, "the loop was killed before the raise");

    let verified = verification_of(&api, &workload);
    assert_eq!(verified["state"], "recovered", "{verified:#}");
    assert!(
        verified["outcome"]
            .as_str()
            .is_some_and(|o| o.contains("no new occurrence")),
        "{verified:#}"
    );
    // The kernel agrees: no OOM kill after the raise (at most one already under way), and the
    // workload now holds its working set and lives.
    assert!(
        hog.kills() <= kills_at_raise + 1,
        "{} kills after the raise",
        hog.kills() - kills_at_raise
    );
    let executed = verified["executed_unix_ns"].as_i64().expect("executed");
    let late: Vec<_> = api
        .events(&format!("kind=oom_kill&workload={workload}"))
        .into_iter()
        .filter(|e| e["time_unix_ns"].as_i64().unwrap_or(0) > executed + 1_000_000_000)
        .collect();
    assert!(late.is_empty(), "OOM kills after the raise: {late:#?}");
    assert_eq!(limit_of(&cgroup), LIMIT * 3 / 2, "the raise stands");
    let audit = audit_of(&api, &verified);
    for step in ["decision", "action", "verification"] {
        assert!(audit.contains(step), "{step} missing from:\n{audit}");
    }
    assert_eq!(memory_record(&api), (1, 1, 0, Some(1.0)));
    drop(hog);
}

#[test]
fn a_raise_followed_by_faster_kills_is_rolled_back_alone() {
    let Stack {
        dir: _dir,
        cp: _cp,
        api,
        agent: _agent,
    } = Stack::start_with(&AgentOptions::new("rollback-node"), AUTONOMOUS);
    let cgroup = Cgroup::memory_v1(&unique_name("oomworse"), Some(LIMIT));
    let workload = format!("cgroup{}", cgroup.path());
    // Killed about once a second until the limit moves; then the workload's growth outruns
    // any limit (a leak that takes whatever it is given) and it dies as fast as it restarts.
    let limit_file = cgroup.dir.join("memory.limit_in_bytes");
    let hog = Supervisor::start(&cgroup, Duration::from_millis(50), move || {
        let raised = std::fs::read_to_string(&limit_file)
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
            .is_some_and(|l| l > LIMIT);
        let pause = if raised { "0" } else { "150" };
        ["8", pause, "4096"].map(String::from).to_vec()
    });

    raised(&api, &workload);
    let judged = verification_of(&api, &workload);
    assert_eq!(judged["state"], "rolled_back", "{judged:#}");
    assert!(
        judged["outcome"]
            .as_str()
            .is_some_and(|o| o.starts_with("worse") && o.contains("the inverse ran")),
        "{judged:#}"
    );
    assert_eq!(limit_of(&cgroup), LIMIT, "the old limit is written back");
    let audit = audit_of(&api, &judged);
    assert!(audit.contains("rollback"), "{audit}");
    assert_eq!(memory_record(&api), (1, 0, 1, Some(0.0)));
    drop(hog);
}
