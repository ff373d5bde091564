//! `[api]` limits on a running control plane: each refusal with its own status and the
//! setting that made it — 413 for a body past `max_body_bytes` (declared or chunked), 431 for
//! headers past `max_header_bytes`, 408 for a client that sends its body too slowly, 429 with
//! `Retry-After` for a token past its rate (another token unaffected) — and a bad setting
//! refused at start.

use std::time::Duration;

use control_plane::config::ControlPlaneConfig;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{
    config::local_config,
    running::{client_with, Running},
};

fn config(dir: &std::path::Path) -> ControlPlaneConfig {
    let mut config = local_config(dir);
    config.api.max_body_bytes = 1024;
    config.api.max_header_bytes = 2048;
    config.api.request_timeout_secs = 1;
    config.api.requests_per_second = 2.0;
    config.api.burst = 5;
    config
}

/// Sends `head` (and then `body` parts with pauses) on a raw connection; the status line and
/// body of the answer.
async fn raw(addr: std::net::SocketAddr, head: String, parts: &[(&[u8], u64)]) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(head.as_bytes()).await.expect("head");
    for (bytes, pause_ms) in parts {
        if s.write_all(bytes).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(*pause_ms)).await;
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_limit_refuses_with_its_own_status_and_names_its_setting() {
    let dir = tempfile::tempdir().expect("dir");
    let plane = Running::start(config(dir.path())).await;
    let (base, token) = (plane.base(), plane.admin_token());
    let addr = plane.bound.http;
    let client = client_with(&token);

    let big = vec![b'x'; 4096];
    let r = client
        .post(format!("{base}/api/v1/alertmanager"))
        .body(big.clone())
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(r.text().await.expect("body").contains("max_body_bytes"));

    // Chunked: no length to read up front; refused by the body limit, with the same words.
    let head = format!(
        "POST /api/v1/alertmanager HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    let chunk = format!("800\r\n{}\r\n", "y".repeat(0x800));
    let answer = raw(
        addr,
        head,
        &[
            (chunk.as_bytes(), 0),
            (chunk.as_bytes(), 0),
            (b"0\r\n\r\n", 0),
        ],
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("max_body_bytes"), "{answer}");

    let r = client
        .get(format!("{base}/api/v1/incidents"))
        .header("x-padding", "p".repeat(4096))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert!(r.text().await.expect("body").contains("max_header_bytes"));

    // A body promised and sent too slowly: cut off at the request timeout (1 s here).
    let head = format!(
        "POST /api/v1/alertmanager HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\nConnection: close\r\n\r\n"
    );
    let answer = raw(addr, head, &[(b"{\"ver", 2_500)]).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout_secs"), "{answer}");

    // The admin's bucket is spent by now (burst 5, 2/s); another token's is not.
    let viewer = {
        let issue = || {
            client
                .post(format!("{base}/api/v1/tokens"))
                .json(&serde_json::json!({ "name": "victor", "role": "viewer" }))
                .send()
        };
        let mut r = issue().await.expect("issue");
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            // Refilled at 2/s.
            tokio::time::sleep(Duration::from_secs(3)).await;
            r = issue().await.expect("issue");
        }
        assert_eq!(r.status(), StatusCode::CREATED);
        let body: serde_json::Value = r.json().await.expect("json");
        client_with(body["token"].as_str().expect("secret"))
    };
    let mut refused = None;
    for _ in 0..12 {
        let r = client
            .get(format!("{base}/api/v1/whoami"))
            .send()
            .await
            .expect("get");
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(r);
            break;
        }
    }
    let r = refused.expect("a token past its burst is refused");
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .expect("text")
        .parse()
        .expect("seconds");
    assert!((1..=3).contains(&retry), "{retry}");
    assert!(r
        .text()
        .await
        .expect("body")
        .contains("requests_per_second"));
    let r = viewer
        .get(format!("{base}/api/v1/whoami"))
        .send()
        .await
        .expect("get");
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "another token has its own bucket"
    );
    // Public paths are not metered.
    for _ in 0..10 {
        let r = reqwest::get(format!("{base}/healthz")).await.expect("get");
        assert_eq!(r.status(), StatusCode::OK);
    }
    plane.stop().await;
}

#[test]
fn a_limit_of_zero_is_refused_naming_the_setting() {
    for (toml, says) in [
        ("[api]\nburst = 0\n", "api.burst"),
        ("[api]\nmax_body_bytes = 0\n", "api.max_body_bytes"),
        (
            "[api]\nrequests_per_second = -1.0\n",
            "api.requests_per_second",
        ),
    ] {
        let err = ControlPlaneConfig::from_toml(toml, "cp.toml").expect_err(toml);
        let text = vigil_config_file::error_chain(&err);
        assert!(text.contains(says), "{toml}: {text}");
    }
}
