//! Must-show 2: crashes and exit codes from the kernel, and one crash-loop incident for a
//! service restarted three times — but none for a script's commands failing by the hundred.

use std::{os::unix::process::ExitStatusExt, process::Command, time::Duration};

use vigil_tests::{
    bin_path, run_crash_helper as run_in, unique_name, wait_for, AgentOptions, Cgroup, Stack,
};

/// A service is a workload one of whose processes ran this long (the default is 30 s; the
/// test keeps it short).
const SERVICE_UPTIME: &str = "[rules]\ncrash_loop_service_uptime_secs = 1\n";

/// The workload's long-running process, stopped after 1.5 s (as for a restart).
fn run_service_once(cgroup: &Cgroup) {
    let mut command = Command::new(bin_path("vigil-test-crash"));
    command
        .args(["exit", "0"])
        .env("VIGIL_CRASH_DELAY_MS", "1500");
    cgroup.place(&mut command);
    let status = command.status().expect("run the service");
    assert!(status.success());
}

#[test]
fn segfault_and_exit_code_are_reported_and_three_restarts_make_one_crash_loop() {
    let Stack {
        dir: _dir,
        cp: _cp,
        api,
        agent: _agent,
    } = Stack::start_with(&AgentOptions::new("crash-node"), SERVICE_UPTIME);

    // A SIGSEGV and an exit(3), each in its own workload.
    let segv_cg = Cgroup::memory_v1(&unique_name("segv"), None);
    let (segv_pid, status) = run_in(&segv_cg, &["segv"]);
    assert_eq!(status.signal(), Some(libc::SIGSEGV));
    let exit_cg = Cgroup::memory_v1(&unique_name("exit"), None);
    let (exit_pid, status) = run_in(&exit_cg, &["exit", "3"]);
    assert_eq!(status.code(), Some(3));

    let segv = wait_for(Duration::from_secs(10), "the SIGSEGV exit event", || {
        api.events(&format!(
            "kind=process_exit&workload=cgroup{}",
            segv_cg.path()
        ))
        .into_iter()
        .find(|e| e["task"]["tgid"] == segv_pid)
    });
    assert_eq!(segv["kind"]["signal"], 11, "{segv:#}");
    assert!(
        segv["kind"].get("exit_code").is_none(),
        "killed by a signal, no exit code: {segv:#}"
    );
    assert_eq!(segv["workload"]["is_root_process"], true);
    // It slept 50 ms before crashing: the agent knows how long it ran.
    let lived = segv["kind"]["lifetime_ms"].as_u64().unwrap_or(0);
    assert!(
        (40..10_000).contains(&lived),
        "lifetime {lived} ms: {segv:#}"
    );
    assert_eq!(
        segv["task"]["comm"], "vigil-test-cras",
        "comm is TASK_COMM_LEN-truncated"
    );

    let exit = wait_for(Duration::from_secs(10), "the exit(3) event", || {
        api.events(&format!(
            "kind=process_exit&workload=cgroup{}",
            exit_cg.path()
        ))
        .into_iter()
        .find(|e| e["task"]["tgid"] == exit_pid)
    });
    assert_eq!(exit["kind"]["exit_code"], 3, "{exit:#}");
    assert!(exit["kind"].get("signal").is_none());
    // One crash each is not a loop. (Only this test's workloads: the agent sees the whole
    // host, where other tests may be crashing things on purpose.)
    let me = format!("-{}-", std::process::id());
    let ours = |i: &serde_json::Value| {
        i["workload_key"]
            .as_str()
            .is_some_and(|k| k.contains("vigil-test-") && k.contains(&me))
    };
    assert!(
        api.incidents()
            .iter()
            .filter(|i| ours(i))
            .all(|i| i["kind"] != "crash_loop"),
        "{:#?}",
        api.incidents()
    );

    // A service, then the same workload restarted three times in a row.
    let loop_cg = Cgroup::memory_v1(&unique_name("loop"), None);
    run_service_once(&loop_cg);
    let mut pids = Vec::new();
    for _ in 0..3 {
        let (pid, status) = run_in(&loop_cg, &["exit", "1"]);
        assert_eq!(status.code(), Some(1));
        pids.push(pid);
    }
    let key = format!("cgroup{}", loop_cg.path());
    let incident = wait_for(Duration::from_secs(10), "the crash-loop incident", || {
        api.incidents()
            .into_iter()
            .find(|i| i["kind"] == "crash_loop" && i["workload_key"] == key.as_str())
    });
    assert_eq!(
        incident["attributes"]["restarts_in_window"], 3,
        "{incident:#}"
    );
    let detail = api.get(&format!("/api/v1/incidents/{}", incident["id"]));
    let mut evidence_pids: Vec<u64> = detail["evidence"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["task"]["tgid"].as_u64())
        .collect();
    evidence_pids.sort_unstable();
    let mut expected: Vec<u64> = pids.iter().map(|p| u64::from(*p)).collect();
    expected.sort_unstable();
    assert_eq!(evidence_pids, expected);

    // Give any late duplicate a chance to appear, then require exactly one.
    std::thread::sleep(Duration::from_millis(500));
    let loops: Vec<_> = api
        .incidents()
        .into_iter()
        .filter(|i| i["kind"] == "crash_loop" && ours(i))
        .collect();
    assert_eq!(
        loops.len(),
        1,
        "exactly one crash-loop incident: {loops:#?}"
    );

    // A fourth restart updates the same incident instead of opening another.
    run_in(&loop_cg, &["exit", "1"]);
    let updated = wait_for(Duration::from_secs(10), "the incident update", || {
        let i = api.get(&format!("/api/v1/incidents/{}", incident["id"]));
        (i["occurrences"] == 2).then_some(i)
    });
    assert_eq!(updated["status"], "open");
    assert_eq!(
        api.incidents()
            .iter()
            .filter(|i| i["kind"] == "crash_loop" && ours(i))
            .count(),
        1
    );
}

/// What host tooling does (pyenv's shims run `readlink` on every `python3`): short commands
/// answering "no" with a non-zero exit, hundreds of times a minute. The kernel sees every
/// exit; none of them is a service dying, so no crash loop opens.
#[test]
fn a_script_running_failing_commands_hundreds_of_times_opens_no_crash_loop() {
    let Stack {
        dir: _dir,
        cp: _cp,
        api,
        agent: _agent,
    } = Stack::start(&AgentOptions::new("script-node"));
    let missing = format!("/nonexistent/{}", unique_name("path"));
    let script = format!(
        "for i in $(seq 150); do readlink {missing}; grep -q vigil /dev/null; test -e {missing}; done; exit 0"
    );
    let status = Command::new("bash")
        .args(["-c", &script])
        .status()
        .expect("run the script");
    assert!(status.success());
    // The agent saw them: the failing exits are stored, under whatever workload this test
    // runs in (on a bare host, one per command).
    let exits = || -> Vec<serde_json::Value> {
        api.events("kind=process_exit")
            .into_iter()
            .filter(|e| {
                ["readlink", "grep", "test"].contains(&e["task"]["comm"].as_str().unwrap_or(""))
                    && e["kind"]["exit_code"].as_i64() == Some(1)
            })
            .collect()
    };
    let seen = wait_for(Duration::from_secs(20), "the commands' exits", || {
        let e = exits();
        (e.len() >= 200).then_some(e)
    });
    let keys: std::collections::BTreeSet<String> = seen
        .iter()
        .filter_map(|e| e["workload"]["key"].as_str().map(str::to_string))
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let loops: Vec<_> = api
        .incidents()
        .into_iter()
        .filter(|i| {
            i["kind"] == "crash_loop" && keys.contains(i["workload_key"].as_str().unwrap_or(""))
        })
        .collect();
    assert!(
        loops.is_empty(),
        "no crash loop from a script ({} failing exits in {keys:?}): {loops:#?}",
        seen.len()
    );
}

/// A supervised service's main process killed by another process opens one incident that
/// names the sender, read in the kernel where the signal was sent; a process dying of its own
/// signal is no kill.
#[test]
fn a_service_killed_by_another_process_opens_one_incident_naming_the_sender() {
    let Stack {
        dir: _dir,
        cp: _cp,
        api,
        agent: _agent,
    } = Stack::start_with(&AgentOptions::new("kill-node"), SERVICE_UPTIME);
    let cg = Cgroup::memory_v1(&unique_name("killed"), None);
    run_service_once(&cg);
    let mut command = Command::new("sleep");
    command.arg("600");
    cg.place(&mut command);
    let mut service = command.spawn().expect("start the service");
    std::thread::sleep(Duration::from_millis(1500));
    let mut killer = Command::new("/bin/kill")
        .args(["-TERM", &service.id().to_string()])
        .spawn()
        .expect("run kill");
    let killer_pid = killer.id();
    assert!(killer.wait().expect("kill ran").success());
    let status = service.wait().expect("the service ended");
    assert_eq!(status.signal(), Some(libc::SIGTERM));

    let key = format!("cgroup{}", cg.path());
    let incident = wait_for(Duration::from_secs(10), "the kill incident", || {
        api.incidents()
            .into_iter()
            .find(|i| i["kind"] == "process_killed" && i["workload_key"] == key.as_str())
    });
    let by = &incident["attributes"]["killed_by"];
    assert_eq!(by["comm"], "kill", "{incident:#}");
    assert_eq!(by["pid"], killer_pid, "{incident:#}");
    assert_eq!(
        incident["attributes"]["signal"],
        libc::SIGTERM,
        "{incident:#}"
    );
    assert_eq!(incident["severity"], "warning");
    let title = incident["title"].as_str().unwrap_or("");
    assert!(
        title.contains("by kill (pid") && title.contains("SIGTERM"),
        "{title}"
    );
    // The exit event carries the sender too.
    let exit = api
        .events(&format!("kind=process_exit&workload={key}"))
        .into_iter()
        .find(|e| e["task"]["tgid"] == service.id())
        .expect("the service's exit");
    assert_eq!(exit["kind"]["killed_by"]["pid"], killer_pid, "{exit:#}");

    // A process that raises its own fatal signal is a crash, not a kill.
    let own = Cgroup::memory_v1(&unique_name("raised"), None);
    run_service_once(&own);
    run_in(&own, &["abort"]);
    let own_key = format!("cgroup{}", own.path());
    wait_for(Duration::from_secs(10), "the abort's exit", || {
        api.events(&format!("kind=process_exit&workload={own_key}"))
            .into_iter()
            .find(|e| e["kind"]["signal"] == libc::SIGABRT)
    });
    std::thread::sleep(Duration::from_millis(500));
    let kills: Vec<_> = api
        .incidents()
        .into_iter()
        // (Only this test's workloads: the agent sees the whole host.)
        .filter(|i| {
            i["kind"] == "process_killed"
                && [&key, &own_key].contains(&&i["workload_key"].as_str().unwrap_or("").to_string())
        })
        .collect();
    assert_eq!(kills.len(), 1, "one kill, one incident: {kills:#?}");
}

/// A service whose program cannot be executed: the kernel attributes the failed execve of the
/// child its supervisor placed in the workload, and one incident names the file, the error
/// and who tried to start it.
#[test]
fn a_service_that_cannot_exec_opens_an_incident_naming_the_file_and_the_error() {
    let Stack {
        dir,
        cp: _cp,
        api,
        agent: _agent,
    } = Stack::start_with(&AgentOptions::new("exec-node"), SERVICE_UPTIME);
    // In both hierarchies under one name, as runtimes place a workload: the kernel names the
    // cgroup-v2 one, and the child is gone before procfs could be read.
    let name = unique_name("noexec");
    let (cg, unified) = (Cgroup::memory_v1(&name, None), Cgroup::unified(&name));
    let mut service = Command::new(bin_path("vigil-test-crash"));
    service
        .args(["exit", "0"])
        .env("VIGIL_CRASH_DELAY_MS", "1500");
    Cgroup::place_in_all(&[&cg, &unified], &mut service);
    assert!(service.status().expect("run the service").success());
    let bad = dir.path().join("app-bin");
    // Deployed without its execute bit (a file with it would be run by /bin/sh, as execvp
    // falls back to on ENOEXEC).
    std::fs::write(&bad, "not an executable\n").expect("write the bad binary");
    std::fs::set_permissions(&bad, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .expect("chmod");
    for _ in 0..2 {
        let mut command = Command::new(&bad);
        Cgroup::place_in_all(&[&cg, &unified], &mut command);
        let err = command
            .spawn()
            .expect_err("a file without its execute bit does not exec");
        assert_eq!(err.raw_os_error(), Some(libc::EACCES), "{err}");
    }
    let key = format!("cgroup{}", unified.path());
    let incident = wait_for(Duration::from_secs(10), "the exec-failure incident", || {
        api.incidents()
            .into_iter()
            .find(|i| i["kind"] == "exec_failure" && i["workload_key"] == key.as_str())
    });
    assert_eq!(incident["severity"], "critical", "{incident:#}");
    let a = &incident["attributes"];
    assert_eq!(a["errno_name"], "EACCES", "{incident:#}");
    assert_eq!(
        a["filename"],
        bad.to_string_lossy().as_ref(),
        "{incident:#}"
    );
    assert_eq!(a["parent"]["pid"], std::process::id(), "{incident:#}");
    // The failed starts are exec failures, not crashes: no crash loop from them.
    assert!(
        api.incidents()
            .iter()
            .all(|i| !(i["kind"] == "crash_loop" && i["workload_key"] == key.as_str())),
        "{:#?}",
        api.incidents()
    );
    // The incident opens on the first failure; the second may come in the agent's next batch.
    let query = format!("kind=exec_failure&workload={key}");
    let events = wait_for(Duration::from_secs(10), "both exec failures", || {
        let events = api.events(&query);
        (events.len() >= 2).then_some(events)
    });
    std::thread::sleep(Duration::from_secs(1));
    let again = api.events(&query);
    assert_eq!(
        again.len(),
        2,
        "each failure once: {events:#?} then {again:#?}"
    );
}
