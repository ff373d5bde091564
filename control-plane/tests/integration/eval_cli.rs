//! `vigil-eval rca` as a user runs it: the public layouts, `--json`, and a clear failure when
//! nothing could be scored.

use std::{path::Path, process::Command};

fn eval() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vigil-eval"))
}

/// A case where `cause`'s latency and CPU rise at row 100 of 140 and everything else is
/// steady noise.
fn csv(services: &[&str], cause: &str) -> String {
    let mut s = String::from("time");
    for svc in services {
        s.push_str(&format!(",{svc}_latency-90,{svc}_cpu"));
    }
    s.push('\n');
    for t in 0..140u32 {
        s.push_str(&format!("{}", 1_700_000_000 + t));
        for (i, svc) in services.iter().enumerate() {
            let j = f64::from((t * 7919 + i as u32 * 31) % 13) / 13.0;
            let hit = *svc == cause && t >= 100;
            let latency = if hit { 400.0 } else { 20.0 + 2.0 * j };
            let cpu = if hit { 0.95 } else { 0.2 + 0.05 * j };
            s.push_str(&format!(",{latency},{cpu}"));
        }
        s.push('\n');
    }
    s
}

fn write(dir: &Path, file: &str, text: &str) {
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(dir.join(file), text).expect("write");
}

#[test]
fn public_layouts_are_read_and_json_prints_every_service_of_every_case() {
    let root = tempfile::tempdir().expect("tmp");
    let services = ["front-end", "carts", "orders", "user"];
    // RCAEval's: the truth in the directory name, `simple_data.csv`, `inject_time.txt`.
    let a = root.path().join("carts_cpu/1");
    write(&a, "simple_data.csv", &csv(&services, "carts"));
    write(&a, "inject_time.txt", "1700000100\n");
    // The truth in `label.json`, under a directory that names no service.
    let b = root.path().join("case-7");
    write(&b, "data.csv", &csv(&services, "orders"));
    write(&b, "inject_time.txt", "1700000100");
    write(&b, "label.json", r#"{"root_cause": "orders"}"#);
    let out = eval()
        .args(["rca", "--json", "--cases"])
        .arg(root.path())
        .output()
        .expect("run vigil-eval");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    for (case, truth) in [("carts_cpu/1", "carts"), ("case-7", "orders")] {
        let line = lines
            .iter()
            .find(|l| l["case"] == case)
            .unwrap_or_else(|| panic!("{case} missing: {lines:?}"));
        assert_eq!(line["truth"], truth);
        assert_eq!(line["rank"], 1, "{line}");
        let ranking = line["ranking"].as_array().expect("ranking");
        assert_eq!(ranking.len(), services.len(), "every service: {line}");
        assert!(ranking[0]["metric"]
            .as_str()
            .is_some_and(|m| m.starts_with(truth)));
    }
}

#[test]
fn no_scorable_case_fails_naming_what_is_missing() {
    let root = tempfile::tempdir().expect("tmp");
    let a = root.path().join("carts_cpu/1");
    write(&a, "data.csv", &csv(&["carts", "user"], "carts"));
    let out = eval()
        .args(["rca", "--cases"])
        .arg(root.path())
        .output()
        .expect("run vigil-eval");
    assert!(!out.status.success(), "0 cases scored must not pass");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no case") && stderr.contains("inject_time.txt"),
        "{stderr}"
    );
}

/// A series of `rows` noisy points, with a labelled level shift at `at` when given.
fn labelled(rows: usize, at: Option<usize>) -> String {
    let mut s = String::from("TimeStamp,Value,Label\n");
    for t in 0..rows {
        let j = ((t * 7919) % 13) as f64 / 13.0;
        let hit = at.is_some_and(|a| t >= a && t < a + 20);
        let v = if hit { 500.0 } else { 100.0 + 5.0 * j };
        // Quoted as some public files are, one value missing.
        let v = if t == 77 {
            String::new()
        } else {
            format!("{v}")
        };
        s.push_str(&format!(
            "\"2018-04-25T00:{:02}:00Z\",{v},{}\n",
            t % 60,
            u8::from(hit)
        ));
    }
    s
}

#[test]
fn series_labelled_point_by_point_are_scored_with_nab_windows_from_their_labels() {
    let root = tempfile::tempdir().expect("tmp");
    write(
        &root.path().join("a"),
        "shifted.csv",
        &labelled(2_000, Some(1_500)),
    );
    write(&root.path().join("b"), "quiet.csv", &labelled(2_000, None));
    let out = eval()
        .args([
            "nab",
            "--layout",
            "per-point",
            "--title",
            "two series",
            "--data",
        ])
        .arg(root.path())
        .output()
        .expect("run vigil-eval");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("2 series, 4000 rows, 1 labelled windows"),
        "{stdout}"
    );
    let standard: f64 = stdout
        .lines()
        .find(|l| l.starts_with("| standard |"))
        .and_then(|l| l.split('|').nth(2))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no standard score: {stdout}"));
    // Catching the one shift early with no false alarm scores near 100; missing it, 0.
    assert!(standard > 50.0, "{stdout}");

    write(root.path(), "bad.csv", "time,value\n1,2\n");
    let out = eval()
        .args(["nab", "--layout", "per-point", "--data"])
        .arg(root.path())
        .output()
        .expect("run vigil-eval");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.csv") && stderr.contains("label"),
        "{stderr}"
    );
}
