//! A real PostgreSQL 16 with pgvector (the PyPI wheel `pgserver` bundles both; `cargo xtask
//! setup` installs it), run as the `postgres` user on a loopback port, and an embeddings
//! server scripted by the test speaking OpenAI's `/v1/embeddings` over a real socket.
//!
//! The scripted model is a hashed bag of words (1 + ln tf per word, L2-normalised): texts
//! that share words are near, as a real model's are for these documents, and it is the same
//! on every run.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use axum::{extract::State, routing::post, Json, Router};
use serde_json::{json, Value};

pub const DIMENSIONS: usize = 1024;

/// Where pgserver keeps its PostgreSQL, or why there is none. Under CI a missing one fails.
fn pgserver_bin() -> Result<PathBuf, String> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import importlib.util; print(importlib.util.find_spec('pgserver').submodule_search_locations[0])",
        ])
        .output()
        .map_err(|e| format!("python3: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "the pgserver wheel is not installed (run `cargo xtask setup`, or pip install pgserver): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("pginstall/bin");
    if dir.join("postgres").exists() {
        Ok(dir)
    } else {
        Err(format!(
            "pgserver has no {}",
            dir.join("postgres").display()
        ))
    }
}

/// Whether this process runs as root (its effective uid, from procfs).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(2))
            == Some("0")
    })
}

fn run(c: &mut Command) {
    let out = c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"));
    assert!(
        out.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub struct PgServer {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl PgServer {
    /// Starts one, or says why it cannot (no root to drop to the `postgres` user, no
    /// pgserver). Under `CI=true` there is no excuse: it panics.
    pub fn start() -> Option<Self> {
        let why = if !is_root() {
            Some(
                "PostgreSQL refuses to run as root, and dropping to `postgres` needs root"
                    .to_string(),
            )
        } else {
            pgserver_bin().err()
        };
        if let Some(why) = why {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "the pgvector test cannot run: {why}"
            );
            eprintln!("skipping the pgvector variant: {why}");
            return None;
        }
        let installed = pgserver_bin().ok()?;
        let dir = tempfile::tempdir().expect("tempdir");
        // A copy the `postgres` user can reach (pip put the wheel under root's home), laid
        // out as the wheel is: its binaries find the vendored libraries at
        // `$ORIGIN/../../../pgserver.libs`.
        let pginstall = installed.parent().expect("pginstall");
        let site = pginstall
            .parent()
            .and_then(Path::parent)
            .expect("site-packages");
        let copy = dir.path().join("site");
        std::fs::create_dir_all(copy.join("pgserver")).expect("copy dir");
        run(Command::new("cp")
            .arg("-a")
            .arg(pginstall)
            .arg(copy.join("pgserver")));
        run(Command::new("cp")
            .arg("-a")
            .arg(site.join("pgserver.libs"))
            .arg(&copy));
        let bin = copy.join("pgserver/pginstall/bin");
        let data = dir.path().join("data");
        let sock = dir.path().join("sock");
        std::fs::create_dir_all(&sock).expect("socket dir");
        run(Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path()));
        let as_postgres = |program: &Path| {
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid=postgres",
                "--regid=postgres",
                "--clear-groups",
                "--",
            ])
            .arg(program);
            c
        };
        run(as_postgres(&bin.join("initdb"))
            .args(["--no-sync", "-U", "vigil", "--auth=trust", "-D"])
            .arg(&data));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = as_postgres(&bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(&sock)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start postgres");
        let url = format!("host=127.0.0.1 port={port} user=vigil dbname=postgres");
        let deadline = Instant::now() + Duration::from_secs(30);
        while postgres::Client::connect(&url, postgres::NoTls).is_err() {
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not accept connections in 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(Self {
            child,
            url,
            _dir: dir,
        })
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// FNV-1a: the same bucket for a word on every run and machine.
fn bucket(word: &str) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in word.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % DIMENSIONS as u64) as usize
}

pub fn embed(text: &str) -> Vec<f32> {
    let mut counts = std::collections::HashMap::<String, f32>::new();
    for w in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() > 2)
    {
        *counts.entry(w.to_lowercase()).or_default() += 1.0;
    }
    let mut v = vec![0f32; DIMENSIONS];
    for (w, n) in counts {
        v[bucket(&w)] += 1.0 + n.ln();
    }
    let norm = v
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::EPSILON);
    v.iter().map(|x| x / norm).collect()
}

/// The scripted embeddings endpoint; counts the texts it was asked to embed.
pub struct ScriptedEmbeddings {
    pub url: String,
    pub embedded: Arc<AtomicUsize>,
}

async fn embeddings(State(count): State<Arc<AtomicUsize>>, Json(body): Json<Value>) -> Json<Value> {
    let inputs: Vec<String> = match &body["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    count.fetch_add(inputs.len(), Ordering::SeqCst);
    Json(json!({
        "object": "list",
        "model": body["model"],
        "data": inputs.iter().enumerate().map(|(i, t)| json!({
            "object": "embedding", "index": i, "embedding": embed(t),
        })).collect::<Vec<_>>(),
        "usage": {"prompt_tokens": 0, "total_tokens": 0},
    }))
}

impl ScriptedEmbeddings {
    pub fn start() -> Self {
        let embedded = Arc::new(AtomicUsize::new(0));
        let app = Router::new()
            .route("/v1/embeddings", post(embeddings))
            .with_state(embedded.clone());
        let addr = super::http::serve(app);
        Self {
            url: format!("http://{addr}/v1"),
            embedded,
        }
    }
}
