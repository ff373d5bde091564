//! Is the testbed healthy: the name resolves, requests succeed end to end through nginx, and
//! latency is near the baseline.

use std::{
    net::UdpSocket,
    path::Path,
    time::{Duration, Instant},
};

use super::net;
use crate::error::LabError;

/// The entry URL, reached from the host through the bridge.
pub fn entry_url() -> String {
    format!("http://{}/", net::ip(10))
}

/// web's HTTPS server, by `host` (a name or its address).
pub fn tls_url(host: &str) -> String {
    format!("https://{host}/tls/")
}

/// Asks the lab DNS for `name`; true when it answers NOERROR with at least one record.
pub fn resolves(name: &str) -> bool {
    let Ok(socket) = UdpSocket::bind("0.0.0.0:0") else {
        return false;
    };
    if socket.connect(format!("{}:53", net::ip(53))).is_err()
        || socket
            .set_read_timeout(Some(Duration::from_secs(1)))
            .is_err()
    {
        return false;
    }
    let mut q = vec![0x4c, 0x41, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    let mut buf = [0u8; 512];
    socket.send(&q).is_ok()
        && socket.recv(&mut buf).is_ok_and(|n| {
            n >= 12 && buf[3] & 0x0f == 0 && u16::from_be_bytes([buf[6], buf[7]]) > 0
        })
}

/// One request through nginx: its latency when it answered 200.
pub fn request(client: &reqwest::blocking::Client) -> Option<Duration> {
    request_url(client, &entry_url())
}

/// One request to `url`: its latency when it answered 200.
pub fn request_url(client: &reqwest::blocking::Client, url: &str) -> Option<Duration> {
    let start = Instant::now();
    let r = client.get(url).send().ok()?;
    r.status().is_success().then(|| start.elapsed())
}

/// The lab's client: plain HTTP, and HTTPS trusting only the lab CA at `ca_pem`.
pub fn client(ca_pem: &Path) -> crate::error::Result<reqwest::blocking::Client> {
    let pem =
        std::fs::read(ca_pem).map_err(LabError::io(format!("reading {}", ca_pem.display())))?;
    let ca = reqwest::Certificate::from_pem(&pem)
        .map_err(|e| LabError::Invalid(format!("the lab CA {}: {e}", ca_pem.display())))?;
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(2))
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .build()
        .map_err(|e| LabError::Invalid(format!("building the lab's HTTP client: {e}")))
}

/// Median latency of `n` consecutive successful requests, or the first failure.
pub fn probe(client: &reqwest::blocking::Client, n: usize) -> Result<Duration, String> {
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        match request(client) {
            Some(d) => lat.push(d),
            None => return Err(format!("request {} of {n} through nginx failed", i + 1)),
        }
    }
    lat.sort();
    Ok(lat[lat.len() / 2])
}

/// Healthy: DNS answers, `n` requests succeed, the median is within 3× baseline + 20 ms.
pub fn check(client: &reqwest::blocking::Client, baseline: Duration) -> Result<Duration, String> {
    if !resolves("redis.lab") {
        return Err("redis.lab does not resolve".into());
    }
    let median = probe(client, 5)?;
    let limit = baseline * 3 + Duration::from_millis(20);
    if median > limit {
        return Err(format!("median latency {median:?} above {limit:?}"));
    }
    Ok(median)
}
