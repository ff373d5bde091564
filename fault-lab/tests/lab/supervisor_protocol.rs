//! The testbed's supervisor on its real socket (`vigil-lab up`): the requests Vigil's local
//! runtime sends, against the running services — the fleet it reports, a replica taken out
//! of web's pool and put back (never the last), an egress rate limit raised and written back,
//! web's certificate renewed and the old one served again, redis's deployed password
//! re-applied after it changed.

use std::{
    io::{BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{json, Value};

fn ask(socket: &Path, request: Value) -> Value {
    let mut s = UnixStream::connect(socket).expect("connect");
    let mut line = request.to_string();
    line.push('\n');
    s.write_all(line.as_bytes()).expect("write");
    let mut answer = String::new();
    BufReader::new(&s).read_line(&mut answer).expect("read");
    serde_json::from_str(&answer).expect("a reply")
}

fn apply(socket: &Path, action: &str, workload: &str, params: Value) -> Value {
    ask(
        socket,
        json!({"v": 1, "op": "apply", "action": action, "workload": workload, "params": params}),
    )
}

fn undo(socket: &Path, action: &str, workload: &str, inverse: &Value) -> Value {
    ask(
        socket,
        json!({"v": 1, "op": "undo", "action": action, "workload": workload, "inverse": inverse}),
    )
}

fn serving(socket: &Path, workload: &str) -> bool {
    let fleet = ask(
        socket,
        json!({"v": 1, "op": "fleet", "action": "restart_process", "workload": ""}),
    );
    fleet["workloads"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|w| w["workload"] == workload)
        .map(|w| w["serving"] == true)
        .unwrap_or_else(|| panic!("{workload} not in the fleet: {fleet}"))
}

fn egress_rate(netns: &str) -> u64 {
    let out = Command::new("ip")
        .args([
            "netns", "exec", netns, "tc", "-j", "qdisc", "show", "dev", "eth0",
        ])
        .output()
        .expect("tc");
    let list: Value = serde_json::from_slice(&out.stdout).expect("tc json");
    list.as_array()
        .into_iter()
        .flatten()
        .find(|q| q["kind"] == "tbf")
        .and_then(|q| q["options"]["rate"].as_u64())
        .unwrap_or(0)
}

#[test]
fn the_supervisor_acts_and_undoes_on_the_running_testbed() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the lab needs root (CI runs as root)"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let mut up = Command::new(env!("CARGO_BIN_EXE_vigil-lab"))
        .args(["up", "--for", "20"])
        .env("VIGIL_LAB_STATE", &state)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .spawn()
        .expect("vigil-lab up");
    let socket = state.join("supervisor.sock");
    let until = Instant::now() + Duration::from_secs(60);
    while !socket.exists() {
        assert!(Instant::now() < until, "no supervisor socket after 60 s");
        std::thread::sleep(Duration::from_millis(200));
    }

    // Replicas of one service, both serving.
    assert!(serving(&socket, "vigil-lab-app1") && serving(&socket, "vigil-lab-app2"));
    let out = apply(&socket, "remove_replica", "vigil-lab-app1", json!({}));
    assert_eq!(out["status"], "done", "{out}");
    assert!(!serving(&socket, "vigil-lab-app1"), "out of web's pool");
    let last = apply(&socket, "remove_replica", "vigil-lab-app2", json!({}));
    assert_eq!(last["status"], "refused", "the pool's last replica: {last}");
    let back = undo(&socket, "remove_replica", "vigil-lab-app1", &out["inverse"]);
    assert_eq!(back["status"], "done", "{back}");
    assert!(serving(&socket, "vigil-lab-app1"));

    // An egress limit raised fourfold, and written back.
    let none = apply(
        &socket,
        "raise_bandwidth_limit",
        "vigil-lab-web",
        json!({"factor": 4}),
    );
    assert_eq!(none["status"], "refused", "no limit to raise: {none}");
    let tc = Command::new("ip")
        .args([
            "netns",
            "exec",
            "vigil-lab-web",
            "tc",
            "qdisc",
            "add",
            "dev",
            "eth0",
            "root",
        ])
        .args(["tbf", "rate", "64kbit", "burst", "4kb", "latency", "400ms"])
        .status()
        .expect("tc");
    assert!(tc.success());
    let raised = apply(
        &socket,
        "raise_bandwidth_limit",
        "vigil-lab-web",
        json!({"factor": 4}),
    );
    assert_eq!(raised["status"], "done", "{raised}");
    assert_eq!(egress_rate("vigil-lab-web"), 32_000, "{raised}");
    let back = undo(
        &socket,
        "raise_bandwidth_limit",
        "vigil-lab-web",
        &raised["inverse"],
    );
    assert_eq!(back["status"], "done", "{back}");
    assert_eq!(egress_rate("vigil-lab-web"), 8_000);

    // web's certificate renewed, and the old one back.
    let cert = state.join("testbed/tls/web.pem");
    let before = std::fs::read_to_string(&cert).expect("cert");
    let renewed = apply(&socket, "renew_certificate", "vigil-lab-web", json!({}));
    assert_eq!(renewed["status"], "done", "{renewed}");
    assert_ne!(std::fs::read_to_string(&cert).expect("cert"), before);
    let back = undo(
        &socket,
        "renew_certificate",
        "vigil-lab-web",
        &renewed["inverse"],
    );
    assert_eq!(back["status"], "done", "{back}");
    assert_eq!(std::fs::read_to_string(&cert).expect("cert"), before);

    // redis's deployed password re-applied once it was changed under its clients, and only
    // then.
    let addr = format!(
        "{}:6379",
        fault_lab::testbed::service_ip("redis").expect("redis's address")
    );
    let deployed = fault_lab::testbed::REDIS_PASSWORD;
    let kept = apply(&socket, "reapply_credential", "vigil-lab-redis", json!({}));
    assert_eq!(kept["status"], "refused", "still the deployed one: {kept}");
    fault_lab::redis::set_password(&addr, deployed, "rotated-under-them").expect("rotate");
    assert!(!fault_lab::redis::accepts(&addr, deployed).expect("ask redis"));
    let again = apply(&socket, "reapply_credential", "vigil-lab-redis", json!({}));
    assert_eq!(again["status"], "done", "{again}");
    let until = Instant::now() + Duration::from_secs(10);
    while !fault_lab::redis::accepts(&addr, deployed).unwrap_or(false) {
        assert!(
            Instant::now() < until,
            "redis refuses its deployed password after {again}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Garbage is answered, not crashed on.
    let garbage = ask(&socket, json!({"v": 1, "op": "rm -rf /"}));
    assert_eq!(garbage["ok"], false, "{garbage}");
    assert!(
        serving(&socket, "vigil-lab-web"),
        "the supervisor still answers"
    );

    let status = up.wait().expect("vigil-lab up ends");
    assert!(status.success(), "{status}");
}
