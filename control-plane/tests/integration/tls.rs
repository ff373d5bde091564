//! Issue 19: TLS on the REST API and console by config (`[tls.api]`), the `vigil` CLI over it
//! with `--ca-file`, and TLS files that do not load stopping the start with their names.

use std::path::Path;

use control_plane::{
    adapters::tls::mint::{self, Role},
    app,
    config::{ApiTls, GrpcTls},
};
use vigil_config_file::error_chain as chain;

use crate::support::{config::local_config, running::Running};

fn pki(dir: &Path) -> (mint::Issued, mint::Issued) {
    let ca = mint::init(dir, 30).expect("CA");
    let server = mint::issue(dir, Role::Server, "localhost", &["127.0.0.1".into()], 30)
        .expect("server certificate");
    (ca, server)
}

#[tokio::test]
async fn the_api_and_console_are_served_over_tls_when_configured() {
    let dir = tempfile::tempdir().expect("dir");
    let (ca, server) = pki(&dir.path().join("pki"));
    let mut config = local_config(dir.path());
    config.tls.api = Some(ApiTls {
        cert_file: server.cert.clone(),
        key_file: server.key.clone(),
    });
    let running = Running::start(config).await;
    let port = running.bound.http.port();
    let base = format!("https://localhost:{port}");
    let pem = std::fs::read(&ca.cert).expect("ca");
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("pem"))
        .build()
        .expect("client");
    let answer = client
        .get(format!("{base}/api/v1/incidents"))
        .bearer_auth(running.admin_token())
        .send()
        .await
        .expect("an https request");
    assert_eq!(answer.status(), 200);
    let console = client
        .get(format!("{base}/console/login"))
        .send()
        .await
        .expect("the console over https");
    assert_eq!(console.status(), 200);
    // Signing in over TLS sets a `Secure` session cookie.
    let signed_in = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("pem"))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .post(format!("{base}/console/login"))
        .header("origin", &base)
        .form(&[
            ("token", running.admin_token()),
            ("next", "/console".into()),
        ])
        .send()
        .await
        .expect("sign in");
    let cookie = signed_in
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        cookie.contains("vigil_token=") && cookie.contains("; Secure"),
        "{cookie:?} ({})",
        signed_in.status()
    );

    // Plaintext to the TLS port gets no answer; a client that does not trust the CA is refused.
    let plain = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await;
    assert!(plain.is_err() || !plain.expect("answer").status().is_success());
    let untrusting = reqwest::Client::new()
        .get(format!("{base}/healthz"))
        .send()
        .await;
    assert!(
        untrusting.is_err(),
        "a client not trusting the CA got through"
    );

    // The CLI, trusting the CA with --ca-file.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["--api", &base, "--ca-file"])
        .arg(&ca.cert)
        .arg("--token-file")
        .arg(&running.token_file)
        .env_remove("VIGIL_TOKEN")
        .arg("incidents")
        .output()
        .await
        .expect("run vigil");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    running.stop().await;
}

#[tokio::test]
async fn tls_files_that_do_not_load_stop_the_start_naming_them() {
    let dir = tempfile::tempdir().expect("dir");
    let (ca, server) = pki(&dir.path().join("pki"));
    let other =
        mint::issue(&dir.path().join("pki"), Role::Server, "other", &[], 30).expect("other");
    let cases = [
        (
            GrpcTls {
                cert_file: dir.path().join("missing.pem"),
                key_file: server.key.clone(),
                client_ca_file: ca.cert.clone(),
                fleet_identities: vec![],
            },
            vec!["missing.pem", "tls.grpc.cert_file"],
        ),
        (
            GrpcTls {
                cert_file: server.cert.clone(),
                key_file: other.key.clone(),
                client_ca_file: ca.cert.clone(),
                fleet_identities: vec![],
            },
            vec!["localhost.pem", "other.key", "tls.grpc"],
        ),
        (
            GrpcTls {
                cert_file: server.cert.clone(),
                key_file: server.key.clone(),
                client_ca_file: server.key.clone(),
                fleet_identities: vec![],
            },
            vec!["localhost.key", "tls.grpc.client_ca_file", "CERTIFICATE"],
        ),
    ];
    for (grpc, says) in cases {
        let mut config = local_config(dir.path());
        config.tls.grpc = Some(grpc);
        let error = app::run(config, async {}, |_| {})
            .await
            .expect_err("a control plane with TLS files that do not load");
        let text = chain(&error);
        for s in says {
            assert!(text.contains(s), "{s:?} not in: {text}");
        }
    }
}

/// Hello as `node` from a client holding `cert`, trusting `ca`: the status code.
async fn hello_as(endpoint: &str, ca: &Path, cert: &mint::Issued, node: &str) -> tonic::Code {
    use vigil_proto::v1::{agent_ingest_client::AgentIngestClient, NodeHello};
    let read = |p: &Path| std::fs::read(p).expect("read");
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(read(ca)))
        .identity(tonic::transport::Identity::from_pem(
            read(&cert.cert),
            read(&cert.key),
        ));
    let channel = tonic::transport::Endpoint::from_shared(endpoint.to_string())
        .expect("endpoint")
        .tls_config(tls)
        .expect("tls")
        .connect()
        .await
        .expect("connect");
    let answer = AgentIngestClient::new(channel)
        .hello(NodeHello {
            node_name: node.into(),
            kernel_release: "test".into(),
            agent_version: "test".into(),
            protocol_version: vigil_proto::PROTOCOL_VERSION,
            probes: vec![],
        })
        .await;
    answer.map_or_else(|s| s.code(), |_| tonic::Code::Ok)
}

#[tokio::test]
async fn a_fleet_identity_speaks_for_any_node_only_when_configured() {
    let dir = tempfile::tempdir().expect("dir");
    let pki_dir = dir.path().join("pki");
    let (ca, server) = pki(&pki_dir);
    let shared = mint::issue(&pki_dir, Role::Agent, "vigil-agent", &[], 30).expect("agent");
    for (fleet, expected) in [
        (vec![], tonic::Code::PermissionDenied),
        (vec!["vigil-agent".to_string()], tonic::Code::Ok),
    ] {
        let store = tempfile::tempdir().expect("store");
        let mut config = local_config(store.path());
        config.tls.grpc = Some(GrpcTls {
            cert_file: server.cert.clone(),
            key_file: server.key.clone(),
            client_ca_file: ca.cert.clone(),
            fleet_identities: fleet.clone(),
        });
        let running = Running::start(config).await;
        let endpoint = format!("https://localhost:{}", running.bound.grpc.port());
        assert_eq!(
            hello_as(&endpoint, &ca.cert, &shared, "node-7").await,
            expected,
            "fleet {fleet:?}"
        );
        // Its own name is always allowed.
        assert_eq!(
            hello_as(&endpoint, &ca.cert, &shared, "vigil-agent").await,
            tonic::Code::Ok
        );
        running.stop().await;
    }
}
