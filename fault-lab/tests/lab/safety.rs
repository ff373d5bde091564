//! The lab's safety rules, enforced in code: targets outside `vigil-lab-` are refused, one
//! run at a time, and a harness killed mid-fault leaves nothing behind once the lab starts
//! again (recorded teardowns replayed, testbed removed).

use std::{
    os::unix::fs::PermissionsExt,
    path::Path,
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

fn lab(state: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vigil-lab"));
    c.env("VIGIL_LAB_STATE", state).env("RUST_LOG", "error");
    c
}

fn output(c: &mut Command) -> Output {
    c.output().expect("run vigil-lab")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn sh(cmd: &str) -> String {
    let o = Command::new("sh").args(["-c", cmd]).output().expect("sh");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn lab_namespaces() -> Vec<String> {
    sh("ip netns list")
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with("vigil-lab-"))
        .map(str::to_string)
        .collect()
}

fn lab_cgroups() -> Vec<String> {
    sh("ls -d /sys/fs/cgroup/memory/vigil-lab-* /sys/fs/cgroup/cpu/vigil-lab-* /sys/fs/cgroup/unified/vigil-lab-* 2>/dev/null")
        .lines()
        .map(str::to_string)
        .collect()
}

/// nftables tables and non-default qdiscs in every lab namespace, and lab tables on the host.
fn lab_network_state() -> Vec<String> {
    let mut found = Vec::new();
    for ns in lab_namespaces() {
        for line in sh(&format!("ip netns exec {ns} nft list tables")).lines() {
            found.push(format!("{ns}: {line}"));
        }
        for line in sh(&format!("ip netns exec {ns} tc qdisc show"))
            .lines()
            .filter(|l| l.contains("tbf"))
        {
            found.push(format!("{ns}: {line}"));
        }
    }
    found.extend(
        sh("nft list tables")
            .lines()
            .filter(|l| l.contains("vigil-lab"))
            .map(str::to_string),
    );
    found
}

fn kill9(child: &mut Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = child.wait();
}

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the lab creates namespaces and cgroups: run as root (CI does)"
    );
}

#[test]
fn targets_outside_the_lab_are_refused() {
    let state = tempfile::tempdir().expect("tempdir");
    for target in [
        "kube-system",
        "vigil-lab-../../memory",
        "redis-prod",
        "vigil-lab-",
    ] {
        let o = output(lab(state.path()).args(["run", "kill", "--target", target]));
        assert!(!o.status.success(), "{target} accepted:\n{}", text(&o));
        assert!(
            text(&o).contains("refusing target") || text(&o).contains("unknown service"),
            "{target}: {}",
            text(&o)
        );
    }
    // A lab service the scenario cannot act on is refused too, naming the allowed ones.
    let o = output(lab(state.path()).args(["run", "dns-failure", "--target", "app1"]));
    assert!(
        !o.status.success() && text(&o).contains("cannot target app1"),
        "{}",
        text(&o)
    );
}

#[test]
fn a_second_run_is_refused_while_one_is_active() {
    require_root();
    let state = tempfile::tempdir().expect("tempdir");
    let mut first = lab(state.path())
        .args(["up", "--for", "60"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("first lab");
    let lock = state.path().join("lab.lock");
    wait_for(
        "the first run to hold the lock",
        Duration::from_secs(20),
        || {
            let pid: u32 = std::fs::read_to_string(&lock).ok()?.trim().parse().ok()?;
            (pid == first.id()).then_some(())
        },
    );
    let o = output(lab(state.path()).args(["run", "kill", "--duration", "1"]));
    kill9(&mut first);
    let cleanup = output(lab(state.path()).arg("cleanup"));
    assert!(!o.status.success(), "second run accepted:\n{}", text(&o));
    assert!(
        text(&o).contains("another lab run holds") && text(&o).contains(&first.id().to_string()),
        "{}",
        text(&o)
    );
    assert!(cleanup.status.success(), "{}", text(&cleanup));
}

#[test]
fn a_killed_harness_leaves_nothing_behind_after_the_next_start() {
    require_root();
    let state = tempfile::tempdir().expect("tempdir");
    let records = state.path().join("faults");
    let secret = state.path().join("testbed").join("app1.token");
    // Three faults of different kinds, each time the harness dies while the fault is in.
    for (scenario, in_effect) in [
        (
            "packet-loss",
            Box::new(|| {
                lab_network_state()
                    .iter()
                    .any(|l| l.contains("vigil-lab-loss"))
            }) as Box<dyn Fn() -> bool>,
        ),
        (
            "bandwidth-cap",
            Box::new(|| lab_network_state().iter().any(|l| l.contains("tbf"))),
        ),
        (
            "permission-denied",
            Box::new(|| {
                std::fs::metadata(&secret).is_ok_and(|m| m.permissions().mode() & 0o777 == 0)
            }),
        ),
    ] {
        let mut harness = lab(state.path())
            .args(["run", scenario, "--duration", "120"])
            .stdout(Stdio::null())
            .spawn()
            .expect("harness");
        wait_for(
            &format!("{scenario} to be in effect"),
            Duration::from_secs(60),
            || in_effect().then_some(()),
        );
        kill9(&mut harness);
        assert!(in_effect(), "{scenario} is still in after the harness died");
        assert_eq!(
            std::fs::read_dir(&records).map(|d| d.count()).unwrap_or(0),
            1,
            "one teardown record persisted"
        );
        assert!(
            !lab_namespaces().is_empty() && !lab_cgroups().is_empty(),
            "the testbed outlives its harness"
        );

        // The next start replays the record and removes the testbed.
        let o = output(lab(state.path()).arg("cleanup"));
        assert!(o.status.success(), "{}", text(&o));
        assert!(
            !in_effect(),
            "{scenario} is still in effect after the next start"
        );
        assert_eq!(
            lab_network_state(),
            Vec::<String>::new(),
            "nft tables / qdiscs left"
        );
        assert_eq!(lab_namespaces(), Vec::<String>::new(), "namespaces left");
        assert_eq!(lab_cgroups(), Vec::<String>::new(), "cgroups left");
        assert_eq!(
            std::fs::read_dir(&records).map(|d| d.count()).unwrap_or(0),
            0,
            "records left"
        );
        assert!(
            sh("ip link show vigil-lab-br0 2>/dev/null").is_empty(),
            "bridge left"
        );
    }
}
