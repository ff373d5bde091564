//! Attribution by the kernel's cgroup id: forked children (no exec) that crash and are reaped
//! within milliseconds are gone from procfs before the agent can look, yet belong to their
//! workload.

use std::{process::Command, time::Duration};

use vigil_tests::{unique_name, wait_for, AgentOptions, Cgroup, Stack};

#[test]
fn reaped_forked_children_are_attributed_through_the_cgroup_id() {
    let Stack {
        dir: _dir,
        cp: _cp,
        api,
        agent: _agent,
    } = Stack::start(&AgentOptions::new("fork-node"));

    let cgroup = Cgroup::unified(&unique_name("fork"));
    // Each `( exit 7 )` is a forked subshell that exits 7 and is reaped at once by sh.
    let mut command = Command::new("/bin/sh");
    command.args(["-c", "for i in 1 2 3 4 5 6 7 8; do ( exit 7 ); done; true"]);
    cgroup.place(&mut command);
    let status = command.status().expect("run sh");
    assert!(status.success());

    let key = format!("cgroup{}", cgroup.path());
    let exits = wait_for(
        Duration::from_secs(10),
        "the subshells' exit events",
        || {
            let all = api.events("kind=process_exit&node=fork-node");
            let sevens: Vec<_> = all
                .into_iter()
                .filter(|e| e["kind"]["exit_code"] == 7)
                .collect();
            (sevens.len() >= 8).then_some(sevens)
        },
    );
    let misattributed: Vec<_> = exits
        .iter()
        .filter(|e| e["workload"]["key"] != key.as_str())
        .collect();
    assert!(
        misattributed.is_empty(),
        "every exit 7 belongs to {key}: {misattributed:#?}"
    );
}
