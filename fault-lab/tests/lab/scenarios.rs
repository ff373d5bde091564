//! Every scenario against the real testbed with Vigil (control plane + agent) watching: each
//! is injected, does what it claims to the end-to-end path, is torn down, and the path is
//! verified healthy again. What Vigil detects is scored, and must be right where it can be.

use vigil_tests::{Agent, AgentOptions, ControlPlane};

#[test]
fn every_scenario_injects_hurts_recovers_and_is_scored() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the lab needs root (CI runs as root)"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    // No warm-up here: the replicas have run seconds, not the default 30 s that makes a
    // workload a service for the crash-loop rule, before the crash-loop scenario.
    let cp = ControlPlane::start_with(dir.path(), "[rules]\ncrash_loop_service_uptime_secs = 2\n[certificates]\nactive_check = true\ninterval_secs = 2\n");
    let api = cp.api();
    let _agent = Agent::start(
        dir.path(),
        &cp.endpoint(),
        &api,
        &AgentOptions::new("lab-ci"),
    );
    let out = dir.path().join("report");
    let summary = crate::support::run_lab(
        &dir.path().join("state"),
        &out,
        &api.base,
        &cp.token_file(),
        &["--all", "--duration", "3", "--soak", "5"],
    );

    let runs = summary["runs"].as_array().expect("runs");
    assert!(
        runs.len() >= 16,
        "at least 16 scenarios, got {}",
        runs.len()
    );
    let by_name = |n: &str| {
        runs.iter()
            .find(|r| r["scenario"] == n)
            .unwrap_or_else(|| panic!("no run of {n}"))
    };
    for r in runs {
        let name = r["scenario"].as_str().unwrap_or("?");
        assert!(r["error"].is_null(), "{name} failed: {}", r["error"]);
        assert!(
            r["recovery_ms"].as_u64().is_some(),
            "{name} never recovered"
        );
        assert!(
            out.join("runs").join(format!("{name}.json")).exists(),
            "no record for {name}"
        );
        assert!(
            out.join("cases").join(name).join("metrics.csv").exists(),
            "no replay case for {name}"
        );
    }
    // The faults that cut a shared dependency fail requests end to end...
    for n in ["dns-failure", "revoked-credential", "replica-scale-down"] {
        let i = &by_name(n)["impact"];
        assert!(
            i["failures"].as_u64().unwrap_or(0) > 0,
            "{n} did not fail any request: {i}"
        );
    }
    // ...those on one replica fail that replica (nginx retries the other one)...
    for n in [
        "permission-denied",
        "disk-full",
        "expired-token",
        "partition",
        "expired-certificate",
    ] {
        let i = &by_name(n)["target_impact"];
        assert!(
            i["failures"].as_u64().unwrap_or(0) > 0,
            "{n} did not fail the target: {i}"
        );
    }
    // ...and the ones that slow a path slow it (a throttled replica: its own requests).
    for (n, view) in [
        ("latency", "impact"),
        ("bandwidth-cap", "impact"),
        ("cpu-throttling", "target_impact"),
    ] {
        let r = by_name(n);
        let (p50, base) = (
            r[view]["p50_ms"].as_f64().unwrap_or(0.0),
            r["baseline_ms"].as_f64().unwrap_or(1.0),
        );
        assert!(
            p50 > base * 3.0 + 20.0,
            "{n}: {view} p50 {p50} ms vs baseline {base} ms"
        );
    }
    // What Vigil can diagnose today it must get right: class and target.
    for n in ["oom", "crash-loop", "expired-certificate"] {
        let r = by_name(n);
        assert!(
            r["detection_latency_ms"].as_u64().is_some(),
            "{n} not detected: {r}"
        );
        assert_eq!(r["classification_correct"], true, "{n}: {r}");
        assert_eq!(r["localization_correct"], true, "{n}: {r}");
    }
    let totals = &summary["totals"];
    assert!(totals["detection_p50_ms"].as_u64().is_some(), "{totals}");
    assert_eq!(
        summary["soak"]["false_positive_incidents"]
            .as_array()
            .map(Vec::len),
        Some(0),
        "healthy soak: {}",
        summary["soak"]
    );
    let html = std::fs::read_to_string(out.join("report.html")).expect("report.html");
    assert!(
        html.contains("<svg") && html.contains("oom"),
        "report has charts and rows"
    );
}
