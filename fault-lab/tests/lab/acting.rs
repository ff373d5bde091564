//! Vigil acting on the real testbed through the local supervisor protocol: the control
//! plane's local runtime asks the lab's supervisor, over its Unix socket, to roll a broken
//! release back. The action runs with the fault still in, the target serves again, and the
//! verifier judges it against the kernel signals.

use vigil_tests::{Agent, AgentOptions, ControlPlane};

#[test]
fn vigil_rolls_back_a_broken_release_through_the_supervisor_with_the_fault_in() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the lab needs root (CI runs as root)"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let socket = state.join("supervisor.sock");
    // Only the class under test acts; everything else is observed (a restart of the
    // killed process would take app1's lock before the rollback that fixes the cause).
    // The acting path is under test, not the diagnosis's confidence (its class is right in
    // every run; a dying process's last retransmits sometimes cast a network vote against
    // it): the test's own playbook takes a bad deploy at the policy's gate.
    let playbooks = dir.path().join("playbooks");
    std::fs::create_dir_all(&playbooks).expect("playbooks dir");
    std::fs::write(
        playbooks.join("bad_deploy.yaml"),
        "class: bad_deploy\ndescription: Back to the deployed release.\nactions:\n  - action: rollback\n    replicas: 1\n",
    )
    .expect("playbook");
    let config = format!(
        "[rules]\ncrash_loop_service_uptime_secs = 2\n\
         [remediation]\nplaybooks = {:?}\nruntime = \"local\"\nverify_after_secs = 5\nwindow_secs = 20\ncooldown_secs = 20\n\
         [remediation.phases]\nrollback = \"autonomous\"\n\
         [remediation.local]\nsupervisor = {:?}\n",
        playbooks.display().to_string(),
        socket.display().to_string()
    );
    let cp = ControlPlane::start_with(dir.path(), &config);
    let api = cp.api();
    let _agent = Agent::start(
        dir.path(),
        &cp.endpoint(),
        &api,
        &AgentOptions::new("lab-acting"),
    );
    let out = dir.path().join("report");
    let summary = crate::support::run_lab(
        &state,
        &out,
        &api.base,
        &cp.token_file(),
        &[
            "--only",
            "exec-failure",
            "--duration",
            "6",
            "--warmup",
            "10",
        ],
    );
    let runs = summary["runs"].as_array().expect("runs");
    let (scenario, action, detail) = (
        "exec-failure",
        "rollback-release",
        "back to its deployed binary",
    );
    let r = runs
        .iter()
        .find(|r| r["scenario"] == scenario)
        .unwrap_or_else(|| panic!("no run of {scenario}"));
    let chosen = &r["chosen"];
    assert_eq!(chosen["action"], action, "{scenario}: {r}");
    assert_eq!(
        chosen["state"], "recovered",
        "{scenario}: Vigil's action did not recover the target: {chosen}"
    );
    assert!(
        r["recovered_by_vigil_ms"].as_u64().is_some(),
        "{scenario}: the target did not serve again after Vigil's action with the fault in: {r}"
    );
    // What the supervisor did is what an action record says it did.
    let actions = api.get("/api/v1/actions");
    assert!(
        actions
            .as_array()
            .into_iter()
            .flatten()
            .any(|a| a["applied"]["detail"]
                .as_str()
                .is_some_and(|d| d.contains(detail))),
        "{scenario}: no action applied {detail:?}: {actions}"
    );
}
