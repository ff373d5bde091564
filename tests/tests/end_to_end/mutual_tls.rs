//! Issue 19, must-show 1: agents and the control plane speak mutual TLS (every test in this
//! suite does: the harness issues each control plane and agent a certificate). Here: an agent
//! whose certificate comes from another CA is refused at the handshake; an agent speaking for a
//! node its certificate does not name is refused with PERMISSION_DENIED, counted, and logged
//! once; and certificates rotated on disk — the agent's, then the whole CA — are picked up by
//! both sides while events flow, with none lost.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use vigil_proto::v1::{self, agent_ingest_client::AgentIngestClient};
use vigil_tests::{
    pki::{Credentials, Pki},
    require_root, wait_for, Agent, AgentOptions, ControlPlane,
};

fn refused(api: &vigil_tests::Api, reason: &str) -> f64 {
    api.metric("vigil_ingest_refused_total", &[("reason", reason)])
        .unwrap_or(0.0)
}

fn known_nodes(api: &vigil_tests::Api) -> Vec<String> {
    api.get("/api/v1/nodes")
        .as_array()
        .map(|nodes| {
            nodes
                .iter()
                .filter_map(|n| n["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn agents_with_another_cas_certificate_or_another_nodes_name_are_refused() {
    require_root();
    let dir = tempfile::tempdir().expect("tempdir");
    let cp = ControlPlane::start(dir.path());
    assert!(cp.endpoint().starts_with("https://"), "{}", cp.endpoint());
    let api = cp.api();
    let honest = Agent::start(
        dir.path(),
        &cp.endpoint(),
        &api,
        &AgentOptions::new("tls-honest"),
    );

    // A certificate from a CA the control plane does not trust (the agent trusts the
    // control plane's: the refusal is the server's).
    let other_ca = Pki::new();
    let foreign = other_ca.issue("agent", "tls-intruder", &[]);
    let mut intruder = AgentOptions::new("tls-intruder");
    intruder.tls = Some(Credentials {
        ca: Pki::shared().ca(),
        ..foreign
    });
    let intruder = Agent::spawn(dir.path(), &cp.endpoint(), &intruder);

    // A valid certificate naming the honest node, on an agent calling itself another node.
    let mut impostor = AgentOptions::new("tls-victim");
    impostor.tls = Some(Pki::shared().issue("agent", "tls-honest", &[]));
    let impostor = Agent::spawn(dir.path(), &cp.endpoint(), &impostor);

    wait_for(
        Duration::from_secs(20),
        "both refusals counted, several times",
        || {
            (refused(&api, "tls_handshake") >= 3.0 && refused(&api, "identity") >= 3.0)
                .then_some(())
        },
    );
    let nodes = known_nodes(&api);
    assert!(nodes.contains(&"tls-honest".to_string()), "{nodes:?}");
    assert!(
        !nodes
            .iter()
            .any(|n| n == "tls-intruder" || n == "tls-victim"),
        "a refused agent got in: {nodes:?}"
    );
    assert!(api.events("node=tls-victim").is_empty());
    assert!(api.events("node=tls-intruder").is_empty());
    intruder.assert_running();
    impostor.assert_running();
    // The impostor is told why, naming its certificate and the node it claimed.
    let said = impostor.log();
    assert!(
        said.contains("does not have permission")
            && said.contains("an agent may send only its own node's data"),
        "{said}"
    );
    assert!(
        said.contains("tls-honest") && said.contains("tls-victim"),
        "{said}"
    );
    // Logged once by the control plane, however often it retried.
    let log = cp.log();
    let lines = log
        .lines()
        .filter(|l| l.contains("refused an agent speaking for a node"))
        .count();
    assert_eq!(lines, 1, "{log}");
    assert!(log.contains("TLS handshake refused"), "{log}");
    drop(honest);
}

/// Copies /bin/true to a unique path so its exec events can be counted exactly.
fn marker(dir: &Path) -> PathBuf {
    let path = dir.join("vigil-marker-rotation");
    std::fs::copy("/bin/true", &path).expect("copy /bin/true");
    path
}

fn exec_count(api: &vigil_tests::Api, node: &str, path: &Path) -> usize {
    api.events(&format!("kind=process_exec&node={node}"))
        .iter()
        .filter(|e| e["kind"]["filename"] == path.to_string_lossy().as_ref())
        .count()
}

/// Puts `text` at `path` the way a Secret update or cert-manager does: whole, by rename.
fn install(path: &Path, text: &[u8]) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).expect("read")
}

/// The files both sides' configs name, in `dir`.
struct Installed {
    server: (PathBuf, PathBuf),
    client_ca: PathBuf,
    agent: Credentials,
}

impl Installed {
    fn new(dir: &Path) -> Self {
        Self {
            server: (dir.join("server.pem"), dir.join("server.key")),
            client_ca: dir.join("client-ca.pem"),
            agent: Credentials {
                ca: dir.join("agent-ca.pem"),
                cert: dir.join("agent.pem"),
                key: dir.join("agent.key"),
            },
        }
    }

    fn server(&self, c: &Credentials) {
        // The key first, as `vigil certs` writes them: a reader meeting the new certificate
        // with the old key refuses the pair and retries.
        install(&self.server.1, &read(&c.key));
        install(&self.server.0, &read(&c.cert));
    }

    fn agent(&self, c: &Credentials) {
        install(&self.agent.key, &read(&c.key));
        install(&self.agent.cert, &read(&c.cert));
    }

    /// Both sides trust `cas`.
    fn trust(&self, cas: &[&Pki]) {
        let bundle: Vec<u8> = cas.iter().flat_map(|p| read(&p.ca())).collect();
        install(&self.client_ca, &bundle);
        install(&self.agent.ca, &bundle);
    }
}

fn reconnects(agent: &Agent) -> usize {
    agent
        .log()
        .matches("the TLS certificates changed on disk: reconnecting")
        .count()
}

/// Whether a client holding `cert` (trusting `ca`) is let in.
fn admitted(endpoint: &str, ca: &Pki, cert: Credentials, node: &str) -> bool {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let client = Credentials {
            ca: ca.ca(),
            ..cert
        };
        let Ok(channel) = client.connect(endpoint).await else {
            return false;
        };
        AgentIngestClient::new(channel)
            .hello(v1::NodeHello {
                node_name: node.into(),
                kernel_release: "test".into(),
                agent_version: "test".into(),
                protocol_version: vigil_proto::PROTOCOL_VERSION,
                probes: vec![],
            })
            .await
            .is_ok()
    })
}

#[test]
fn rotated_certificates_and_a_rotated_ca_are_picked_up_with_no_event_lost() {
    require_root();
    let dir = tempfile::tempdir().expect("tempdir");
    let tls = dir.path().join("tls");
    std::fs::create_dir(&tls).expect("tls dir");
    let node = "tls-rotation-node";
    let (old, new) = (Pki::new(), Pki::new());
    let files = Installed::new(&tls);
    files.trust(&[&old]);
    files.server(&old.issue("server", "localhost", &["127.0.0.1"]));
    files.agent(&old.issue("agent", node, &[]));

    let cp = ControlPlane::start_with(
        dir.path(),
        &format!(
            "[tls]\nreload_interval_secs = 1\n[tls.grpc]\ncert_file = {:?}\nkey_file = {:?}\nclient_ca_file = {:?}\n",
            files.server.0, files.server.1, files.client_ca
        ),
    );
    let api = cp.api();
    let mut options = AgentOptions::new(node);
    options.tls = Some(files.agent.clone());
    let agent = Agent::start(dir.path(), &cp.endpoint(), &api, &options);

    // Events flow the whole time.
    let path = marker(dir.path());
    let (stop, ran) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let runner = {
        let (stop, ran, path) = (stop.clone(), ran.clone(), path.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let status = Command::new(&path).status().expect("run marker");
                assert!(status.success());
                ran.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    std::thread::sleep(Duration::from_secs(2));

    // 1. The agent's certificate is reissued by the same CA.
    files.agent(&old.issue("agent", node, &[]));
    wait_for(
        Duration::from_secs(10),
        "the agent to reconnect with its new certificate",
        || (reconnects(&agent) >= 1).then_some(()),
    );

    // 2. A new CA: trusted beside the old one, then every certificate reissued by it, then
    //    the old one dropped.
    files.trust(&[&old, &new]);
    std::thread::sleep(Duration::from_secs(3));
    files.server(&new.issue("server", "localhost", &["127.0.0.1"]));
    files.agent(&new.issue("agent", node, &[]));
    std::thread::sleep(Duration::from_secs(3));
    files.trust(&[&new]);
    let endpoint = cp.endpoint();
    let (old_cert, new_cert) = (
        old.issue("agent", "tls-probe-old", &[]),
        new.issue("agent", "tls-probe-new", &[]),
    );
    wait_for(
        Duration::from_secs(10),
        "the control plane to trust the new CA only",
        || {
            let refuses_old = !admitted(&endpoint, &new, old_cert.clone(), "tls-probe-old");
            (refuses_old && admitted(&endpoint, &new, new_cert.clone(), "tls-probe-new"))
                .then_some(())
        },
    );
    assert!(reconnects(&agent) >= 2, "{}", agent.log());
    std::thread::sleep(Duration::from_secs(2));

    stop.store(true, Ordering::Relaxed);
    runner.join().expect("marker runner");
    let ran = ran.load(Ordering::Relaxed);
    assert!(ran > 100, "only {ran} markers ran");
    wait_for(
        Duration::from_secs(20),
        "every marker's exec stored",
        || {
            let n = exec_count(&api, node, &path);
            assert!(n <= ran, "{n} execs stored for {ran} runs: duplicates");
            (n == ran).then_some(())
        },
    );
    // Sequence numbers 1..=max, each exactly once, and nothing dropped on the way.
    let events = api.events(&format!("node={node}"));
    let mut seqs: Vec<u64> = events.iter().filter_map(|e| e["seq"].as_u64()).collect();
    seqs.sort_unstable();
    seqs.dedup();
    let max = *seqs.last().expect("some events");
    assert_eq!(seqs.len() as u64, max, "gaps in 1..={max}");
    let nodes = api.get("/api/v1/nodes");
    let me = nodes
        .as_array()
        .and_then(|n| n.iter().find(|n| n["name"] == node))
        .expect("the node")
        .clone();
    assert_eq!(me["stats"]["buffer_dropped"], 0, "{me:#}");
    assert_eq!(me["stats"]["kernel_dropped"], 0, "{me:#}");
}
