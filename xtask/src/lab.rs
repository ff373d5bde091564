//! `cargo xtask lab`: Vigil (control plane + agent) watching the fault lab run every
//! scenario; the report lands in `--out`.

use std::{path::Path, process::Command};

use anyhow::Context as _;
use vigil_tests::{bin_path, Agent, AgentOptions, ControlPlane};

use crate::process::{step, workspace_root};

/// Detection on 1 s windows, and resource limits that must hold for seconds rather than the
/// production defaults' minutes: the lab's faults last seconds.
pub const LAB_DETECTION: &str =
    "[detection]\nwindow_ms = 1000\ngrace_ms = 1500\nlearning_windows = 60\nshape_training_windows = 120\n\
     consecutive_windows = 3\n\
     [pressure]\nmemory_hold_secs = 10\nthrottled_hold_secs = 3\nrepeat_secs = 5\n\
     [certificates]\nactive_check = true\ninterval_secs = 2\n";
/// Vigil acts on the lab through the local runtime, every class it can carry out there on
/// its own (autonomous) but one: the lab measures what Vigil's actions do, within every
/// guardrail. Restarting a process stays observed: the supervisor restarts a killed process
/// by itself, and a restart by Vigil would take the target's lock (one remediation per
/// target) before the action that fixes the cause (a rollback, a restored file). The window,
/// cooldown and verification delay are the lab's time scale (a scenario every half minute on
/// the same few workloads, detection on 1 s windows), not a production setting.
pub const LAB_REMEDIATION: &str = "[remediation]\nruntime = \"local\"\nverify_after_secs = 8\n\
     window_secs = 10\ncooldown_secs = 5\n\
     [remediation.phases]\nraise_memory_limit = \"autonomous\"\nchange_cpu_quota = \"autonomous\"\n\
     rollback = \"autonomous\"\nrestore_file_mode = \"autonomous\"\n\
     reapply_credential = \"autonomous\"\nrotate_log = \"autonomous\"\nrestart_dns = \"autonomous\"\n\
     add_replica = \"autonomous\"\nremove_replica = \"autonomous\"\nrenew_certificate = \"autonomous\"\nraise_bandwidth_limit = \"autonomous\"\n";
/// The lab's services that write logs, each to `<state>/testbed/<service>.log`.
const LOGGING_SERVICES: [&str; 6] = ["dns", "redis", "postgres", "app1", "app2", "web"];

/// The control plane's config for watching the lab whose state is in `state`: its detection
/// settings, and the lab's log files as the workloads' logs (what an operator would point
/// `[diagnosis.logs]` at on a host).
pub fn lab_config(state: &Path) -> String {
    config_with(state, LAB_REMEDIATION)
}

/// `lab_config` with another `[remediation]` section.
pub fn config_with(state: &Path, remediation: &str) -> String {
    let logs: String = LOGGING_SERVICES
        .iter()
        .map(|s| {
            let file = state.join("testbed").join(format!("{s}.log"));
            format!(
                "\"cgroup/vigil-lab-{s}\" = {:?}\n",
                file.display().to_string()
            )
        })
        .collect();
    // The testbed's supervisor answers the local runtime here (vigil-lab's socket).
    let socket = state.join("supervisor.sock");
    format!(
        "{LAB_DETECTION}{remediation}[remediation.local]\nsupervisor = {:?}\n[diagnosis.logs]\n{logs}",
        socket.display().to_string()
    )
}

/// Healthy load before the first fault: past `learning_windows`.
pub const LAB_WARMUP_SECS: u64 = 75;

pub fn run(out: &Path, duration: Option<u64>, soak: u64, only: Option<&str>) -> anyhow::Result<()> {
    anyhow::ensure!(
        nix::unistd::geteuid().is_root(),
        "the lab creates namespaces and cgroups and loads eBPF programs: run it as root"
    );
    std::env::set_var("VIGIL_BIN_DIR", workspace_root().join("target/debug"));
    let dir = workspace_root().join("target/lab");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    step("Vigil: control plane and agent");
    let state = dir.join("state");
    let cp = ControlPlane::start_with(&dir, &lab_config(&state));
    let api = cp.api();
    let _agent = Agent::start(&dir, &cp.endpoint(), &api, &AgentOptions::new("lab-node"));
    step(&format!(
        "fault lab: every scenario, then a {soak}s healthy soak"
    ));
    let out = if out.is_absolute() {
        out.to_path_buf()
    } else {
        workspace_root().join(out)
    };
    let mut c = Command::new(bin_path("vigil-lab"));
    c.arg("run");
    match only {
        Some(list) => c.args(["--only", list]),
        None => c.arg("--all"),
    };
    c.args(["--api", &api.base, "--out"])
        .arg(&out)
        .args(["--soak", &soak.to_string()])
        .args(["--warmup", &LAB_WARMUP_SECS.to_string()])
        .env("VIGIL_LAB_STATE", &state)
        .env("VIGIL_TOKEN_FILE", cp.token_file());
    if let Some(d) = duration {
        c.args(["--duration", &d.to_string()]);
    }
    let status = c.status().context("starting vigil-lab")?;
    anyhow::ensure!(status.success(), "vigil-lab failed ({status})");
    Ok(())
}
