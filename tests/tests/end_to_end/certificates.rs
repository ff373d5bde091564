//! Certificate expiry, end to end: a real TLS server (`openssl s_server`) serving a
//! certificate 10 days from its end, real clients (curl, through the OpenSSL uprobes) calling
//! it; the control plane learns the endpoint from their TLS requests, checks it actively and
//! warns naming the endpoint and the date.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use vigil_tests::{unique_name, wait_for, AgentOptions, Cgroup, Stack};

const CONTROL_PLANE: &str = "[certificates]\nactive_check = true\ninterval_secs = 2\n";

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[test]
fn a_certificate_ten_days_from_its_end_warns_naming_the_endpoint_and_the_date() {
    let Stack {
        dir,
        cp: _cp,
        api,
        agent: _agent,
    } = Stack::start_with(&AgentOptions::new("cert-node"), CONTROL_PLANE);
    let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "10",
        ])
        .args(["-subj", "/CN=shop.vigil.test", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("run openssl req");
    assert!(made.success(), "openssl could not make the certificate");
    let port = free_port();
    let server_cg = Cgroup::unified(&unique_name("tls-server"));
    let mut server = Command::new("openssl");
    server
        .args([
            "s_server",
            "-quiet",
            "-www",
            "-accept",
            &format!("127.0.0.1:{port}"),
        ])
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    server_cg.place(&mut server);
    let _server = Running(server.spawn().expect("start openssl s_server"));
    std::thread::sleep(Duration::from_millis(500));
    // Clients over TLS: curl's OpenSSL is what the uprobes see.
    let client = Running(
        Command::new("sh")
            .args([
                "-c",
                &format!(
                    "while :; do curl -sk --max-time 2 -o /dev/null https://127.0.0.1:{port}/; sleep 0.2; done"
                ),
            ])
            .spawn()
            .expect("start the clients"),
    );
    let endpoint = format!("127.0.0.1:{port}");
    let incident = wait_for(Duration::from_secs(60), "the certificate warning", || {
        api.incidents().into_iter().find(|i| {
            i["kind"] == "certificate_expiry" && i["attributes"]["endpoint"] == endpoint.as_str()
        })
    });
    drop(client);
    assert_eq!(incident["severity"], "warning", "{incident:#}");
    let days = incident["attributes"]["days_left"].as_f64().unwrap_or(0.0);
    assert!(
        (9.0..=10.01).contains(&days),
        "days left {days}: {incident:#}"
    );
    // The date it names is 10 days from now (UTC), to the day.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let until = incident["attributes"]["not_after"].as_str().unwrap_or("");
    let expected: Vec<String> = [now + 10 * 86_400 - 3600, now + 10 * 86_400 + 3600]
        .iter()
        .map(|t| vigil_tests::utc_date(*t))
        .collect();
    assert!(
        expected.iter().any(|d| d == until),
        "not_after {until}, expected {expected:?}"
    );
    let title = incident["title"].as_str().unwrap_or("");
    assert!(
        title.contains(&endpoint) && title.contains(until) && title.contains("CN=shop.vigil.test"),
        "{title}"
    );
    let not_after = api.metric(
        "vigil_certificate_not_after_timestamp_seconds",
        &[("endpoint", endpoint.as_str())],
    );
    assert!(
        not_after.is_some_and(|t| (t - (now + 10 * 86_400) as f64).abs() <= 3600.0),
        "vigil_certificate_not_after_timestamp_seconds for {endpoint}: {not_after:?}"
    );
    let listed = api.get("/api/v1/certificates");
    assert!(
        listed["certificates"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["endpoint"] == endpoint.as_str())),
        "{listed:#}"
    );
}
