//! Resource pressure from the cgroup files, on the real kernel: a workload held near its
//! memory limit is warned about before the OOM killer acts, and a workload throttled by its
//! CPU quota shows its throttled ratio and opens a throttling incident (while one with room
//! to spare does not).

use std::{
    process::{Child, Command},
    time::Duration,
};

use serde_json::Value;
use vigil_tests::{bin_path, unique_name, wait_for, AgentOptions, Api, Cgroup, Stack};

/// The rules' hold times, short for a test (the defaults are 5 minutes and 30 s).
const CONTROL_PLANE: &str =
    "[pressure]\nmemory_hold_secs = 3\nthrottled_hold_secs = 3\nrepeat_secs = 5\n";

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(groups: &[&Cgroup], program: &str, args: &[&str]) -> Running {
    let mut command = Command::new(program);
    command.args(args);
    Cgroup::place_in_all(groups, &mut command);
    Running(command.spawn().expect("start the workload"))
}

fn incidents_of(api: &Api, kind: &str, key: &str) -> Vec<Value> {
    api.incidents()
        .into_iter()
        .filter(|i| i["kind"] == kind && i["workload_key"] == key)
        .collect()
}

fn resource_samples(api: &Api, key: &str) -> Vec<Value> {
    api.list(&format!(
        "/api/v1/samples?kind=resource&workload={key}&limit=1000"
    ))
}

#[test]
fn memory_held_near_its_limit_warns_before_any_oom_kill() {
    let Stack {
        dir: _dir,
        cp: _cp,
        api,
        agent: _agent,
    } = Stack::start_with(&AgentOptions::new("memory-node"), CONTROL_PLANE);
    let name = unique_name("near-limit");
    let memory = Cgroup::memory_v1(&name, Some(64 << 20));
    let unified = Cgroup::unified(&name);
    // 56 MiB held of a 64 MiB limit: 88 % and more with the runtime's own pages.
    let _hog = start(
        &[&memory, &unified],
        &bin_path("vigil-test-hog").to_string_lossy(),
        &["4", "20", "56"],
    );
    let key = format!("cgroup{}", unified.path());
    let warning = wait_for(
        Duration::from_secs(30),
        "the memory-pressure warning",
        || {
            incidents_of(&api, "memory_pressure", &key)
                .into_iter()
                .next()
        },
    );
    assert_eq!(warning["severity"], "warning", "{warning:#}");
    let ratio = warning["attributes"]["value"].as_f64().unwrap_or(0.0);
    assert!(
        (0.85..1.0).contains(&ratio),
        "working set over limit {ratio}: {warning:#}"
    );
    assert_eq!(
        warning["attributes"]["readings"]["memory_limit_bytes"].as_f64(),
        Some((64u64 << 20) as f64)
    );
    let title = warning["title"].as_str().unwrap_or("");
    assert!(title.contains("of 64 MiB"), "{title}");
    // Before any OOM kill: the workload is alive and the kernel killed nothing in it.
    assert!(
        api.events(&format!("kind=oom_kill&workload={key}"))
            .is_empty(),
        "warned only after an OOM kill"
    );
    // The readings behind it are stored.
    let samples = resource_samples(&api, &key);
    assert!(
        samples.iter().any(|s| {
            s["sample"]["memory_limit_bytes"].as_u64() == Some(64 << 20)
                && s["sample"]["memory_working_set_bytes"]
                    .as_u64()
                    .unwrap_or(0)
                    > 50 << 20
        }),
        "{samples:#?}"
    );
}

#[test]
fn a_cpu_throttled_workload_shows_its_ratio_and_opens_a_throttling_incident() {
    let Stack {
        dir: _dir,
        cp: _cp,
        api,
        agent: _agent,
    } = Stack::start_with(&AgentOptions::new("cpu-node"), CONTROL_PLANE);
    // A busy loop allowed 20 ms per 100 ms period: throttled in nearly every period.
    let tight = unique_name("throttled");
    let (tight_cpu, tight_v2) = (Cgroup::cpu_v1(&tight, 20_000), Cgroup::unified(&tight));
    let _spin = start(
        &[&tight_cpu, &tight_v2],
        "sh",
        &["-c", "while :; do :; done"],
    );
    // A light load with a whole CPU to spare: never throttled.
    let roomy = unique_name("roomy");
    let (roomy_cpu, roomy_v2) = (Cgroup::cpu_v1(&roomy, 100_000), Cgroup::unified(&roomy));
    let _light = start(
        &[&roomy_cpu, &roomy_v2],
        "sh",
        &["-c", "while :; do sleep 0.05; done"],
    );

    let key = format!("cgroup{}", tight_v2.path());
    let incident = wait_for(Duration::from_secs(30), "the throttling incident", || {
        incidents_of(&api, "cpu_throttling", &key)
            .into_iter()
            .next()
    });
    let ratio = incident["attributes"]["value"].as_f64().unwrap_or(0.0);
    assert!(ratio > 0.8, "throttled ratio {ratio}: {incident:#}");
    let samples = resource_samples(&api, &key);
    let throttled: Vec<f64> = samples
        .iter()
        .filter_map(|s| {
            let p = s["sample"]["cpu_periods"].as_f64()?;
            (p > 0.0).then(|| s["sample"]["cpu_throttled_periods"].as_f64().unwrap_or(0.0) / p)
        })
        .collect();
    assert!(
        throttled.iter().any(|r| *r > 0.8),
        "throttled ratios {throttled:?}"
    );
    let roomy_key = format!("cgroup{}", roomy_v2.path());
    assert!(
        incidents_of(&api, "cpu_throttling", &roomy_key).is_empty(),
        "a workload with room to spare is not throttled"
    );
    assert!(
        resource_samples(&api, &roomy_key)
            .iter()
            .all(|s| s["sample"]["cpu_throttled_periods"].as_u64().unwrap_or(0) == 0),
        "no throttled periods with a whole CPU of quota"
    );
}

/// A filesystem filled at a steady 2 MiB/s: once past 80 % its disk_pressure warning
/// projects the time to full, within 30 % of the truth (what is left at that rate).
#[test]
fn a_disk_filled_at_a_steady_rate_projects_its_time_to_full() {
    let Stack {
        dir,
        cp: _cp,
        api,
        agent: _agent,
    } = Stack::start_with(&AgentOptions::new("disk-node"), CONTROL_PLANE);
    let mount = dir.path().join("data");
    std::fs::create_dir_all(&mount).expect("mount point");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64m", "vigil-test-data"])
        .arg(&mount)
        .status()
        .expect("run mount");
    assert!(mounted.success(), "mount a tmpfs");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mount.clone());
    const RATE: f64 = 2.0 * 1024.0 * 1024.0;
    let file = mount.join("fill");
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let mut f = std::fs::File::create(&file).expect("fill file");
        let chunk = vec![0xa5u8; 512 << 10];
        let start = std::time::Instant::now();
        for i in 1..=120u32 {
            if f.write_all(&chunk).is_err() {
                break;
            }
            let due = Duration::from_millis(250 * u64::from(i));
            std::thread::sleep(due.saturating_sub(start.elapsed()));
        }
    });
    let key = format!("filesystem/{}", mount.display());
    let incident = wait_for(Duration::from_secs(60), "the disk warning", || {
        api.incidents()
            .into_iter()
            .find(|i| i["kind"] == "disk_pressure" && i["workload_key"] == key.as_str())
    });
    let r = &incident["attributes"]["readings"];
    let eta = r["seconds_to_full"].as_f64().unwrap_or(0.0);
    let truth = r["available_bytes"].as_f64().unwrap_or(0.0) / RATE;
    eprintln!(
        "disk: projected {eta:.1} s to full, truth {truth:.1} s: {}",
        incident["title"]
    );
    assert!(
        truth > 0.0 && (eta - truth).abs() <= 0.3 * truth,
        "projected {eta:.1} s, truth {truth:.1} s: {incident:#}"
    );
    assert_eq!(incident["severity"], "warning");
    // The same projection is a gauge for dashboards and alert rules, while it still fills.
    let mountpoint = mount.to_string_lossy().to_string();
    let at = [("mountpoint", mountpoint.as_str())];
    let full_in = api.metric("vigil_filesystem_full_in_seconds", &at);
    let available = api.metric("vigil_filesystem_available_bytes", &at);
    eprintln!("disk: /metrics full_in {full_in:?} s, available {available:?} B");
    let (Some(full_in), Some(available)) = (full_in, available) else {
        panic!("no filesystem gauges for {mountpoint} on /metrics");
    };
    let truth = available / RATE;
    assert!(
        available > 0.0 && (full_in - truth).abs() <= 0.3 * truth,
        "gauge {full_in:.1} s to full, truth {truth:.1} s"
    );
    let _ = writer.join();
}
