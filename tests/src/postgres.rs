//! A real PostgreSQL 15 (Debian's) for the end-to-end tests: its own data directory, password
//! authentication (scram-sha-256) over TCP, trust on its Unix socket, run as `postgres` in
//! a network namespace or on the host.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use crate::topology::{run, wait_listening, Netns, Workload};

const BIN: &str = "/usr/lib/postgresql/15/bin";
/// The role the lab app and the tests log in as.
pub const USER: &str = "vigil";
/// Its password at start.
pub const PASSWORD: &str = "secret";

pub struct Postgres {
    pub server: Workload,
    /// `host:port` it listens on.
    pub addr: String,
    socket_dir: PathBuf,
    port: String,
}

/// `argv` as the `postgres` user, checked.
fn as_postgres(argv: &[&str]) {
    let mut c = Command::new("setpriv");
    c.args([
        "--reuid=postgres",
        "--regid=postgres",
        "--clear-groups",
        "--",
    ])
    .args(argv);
    run(&mut c);
}

impl Postgres {
    /// Initialises a cluster under `dir` and starts it on `ip:port`, in `ns` (the host's
    /// namespace when `None`); returns once it accepts connections.
    pub fn start(ns: Option<&Netns>, dir: &Path, ip: &str, port: u16) -> Self {
        let root = dir.join(format!("pg-{port}"));
        let (data, socket_dir, pwfile) = (root.join("data"), root.join("sock"), root.join("pw"));
        std::fs::create_dir_all(&socket_dir).expect("PostgreSQL socket dir");
        std::fs::write(&pwfile, format!("{PASSWORD}\n")).expect("pwfile");
        for p in [dir, root.as_path(), socket_dir.as_path(), pwfile.as_path()] {
            run(Command::new("chown").args(["postgres:postgres", &p.to_string_lossy()]));
        }
        let initdb = Path::new(BIN).join("initdb");
        as_postgres(&[
            &initdb.to_string_lossy(),
            "--no-sync",
            "-D",
            &data.to_string_lossy(),
            "-U",
            USER,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--pwfile",
            &pwfile.to_string_lossy(),
        ]);
        // initdb allows loopback only; the chain's app connects from another namespace.
        let hba = data.join("pg_hba.conf");
        let mut rules = std::fs::read_to_string(&hba).expect("pg_hba.conf");
        rules.push_str("host all all 0.0.0.0/0 scram-sha-256\n");
        std::fs::write(&hba, rules).expect("pg_hba.conf");
        let postgres = Path::new(BIN).join("postgres");
        let port_s = port.to_string();
        let listen = format!("listen_addresses={ip}");
        let argv = [
            "setpriv",
            "--reuid=postgres",
            "--regid=postgres",
            "--clear-groups",
            "--",
            &postgres.to_string_lossy(),
            "-D",
            &data.to_string_lossy(),
            "-p",
            &port_s,
            "-k",
            &socket_dir.to_string_lossy(),
            "-c",
            &listen,
            "-c",
            "fsync=off",
        ];
        let addr = format!("{ip}:{port}");
        let server = match ns {
            Some(ns) => {
                let server = Workload::spawn(ns, "postgres", dir, &argv);
                wait_listening(ns, &addr);
                server
            }
            None => {
                let server = Workload::spawn_host("postgres", dir, &argv);
                crate::wait_for(Duration::from_secs(30), "PostgreSQL listening", || {
                    std::net::TcpStream::connect(addr.as_str()).ok()
                });
                server
            }
        };
        Self {
            server,
            addr,
            socket_dir,
            port: port_s,
        }
    }

    /// Sets the role's password, over the Unix socket (trusted, so it works whatever the
    /// password is now).
    pub fn set_password(&self, password: &str) {
        let sql = format!("ALTER USER {USER} PASSWORD '{password}'");
        run(Command::new("psql").args([
            "-h",
            &self.socket_dir.to_string_lossy(),
            "-p",
            &self.port,
            "-U",
            USER,
            "-d",
            "postgres",
            "-qc",
            &sql,
        ]));
    }
}
