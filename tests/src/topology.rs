//! Network namespaces joined by veth pairs, and real services placed in them: the test bed
//! for flows, the service graph and network faults.
//!
//! `ServiceChain` is `client (wrk) → nginx → app (vigil-lab-app) → redis`, each in its
//! own namespace and cgroup-v2 group, one /24 per link. Addresses are unique per chain
//! (a random second octet), so chains of parallel tests never share an address.

use std::{
    ffi::OsStr,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::Duration,
};

use crate::{bin_path, unique_name, wait_for, Cgroup};

/// Runs `command`, panicking with its output when it fails.
pub fn run(command: &mut Command) -> Output {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn create(name: &str) -> Self {
        run(Command::new("ip").args(["netns", "add", name]));
        let ns = Self {
            name: name.to_string(),
        };
        ns.run(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// `program` to be run inside the namespace.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// Runs a command inside the namespace, checked.
    pub fn run(&self, argv: &[&str]) -> Output {
        let mut c = self.command(argv[0]);
        c.args(&argv[1..]);
        run(&mut c)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// Joins `a` and `b` with a veth pair and gives each end an address in `/24`.
pub fn link(a: &Netns, a_ip: &str, b: &Netns, b_ip: &str, name: &str) {
    let (ea, eb) = (format!("{name}a"), format!("{name}b"));
    run(Command::new("ip").args([
        "link", "add", &ea, "netns", &a.name, "type", "veth", "peer", "name", &eb, "netns", &b.name,
    ]));
    for (ns, dev, ip) in [(a, &ea, a_ip), (b, &eb, b_ip)] {
        ns.run(&["ip", "addr", "add", &format!("{ip}/24"), "dev", dev]);
        ns.run(&["ip", "link", "set", dev, "up"]);
    }
}

/// A process in its own cgroup-v2 group inside a namespace; killed (with the whole group)
/// on drop.
pub struct Workload {
    pub cgroup: Cgroup,
    child: Option<Child>,
    pub log: PathBuf,
}

impl Workload {
    pub fn spawn(ns: &Netns, role: &str, dir: &Path, argv: &[&str]) -> Self {
        let mut command = ns.command(argv[0]);
        command.args(&argv[1..]);
        Self::spawn_command(command, role, dir)
    }

    /// `argv` in the host's network namespace.
    pub fn spawn_host(role: &str, dir: &Path, argv: &[&str]) -> Self {
        let mut command = Command::new(argv[0]);
        command.args(&argv[1..]);
        Self::spawn_command(command, role, dir)
    }

    fn spawn_command(mut command: Command, role: &str, dir: &Path) -> Self {
        let cgroup = Cgroup::unified(&unique_name(role));
        let log = dir.join(format!("{role}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        command
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log clone"))
            .stderr(file);
        cgroup.place(&mut command);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        Self {
            cgroup,
            child: Some(child),
            log,
        }
    }

    /// The workload key the agent derives from the cgroup.
    pub fn key(&self) -> String {
        format!("cgroup{}", self.cgroup.path())
    }

    /// Waits for the process to exit; its log.
    pub fn wait(&mut self, timeout: Duration) -> String {
        let mut child = self.child.take().expect("not waited before");
        wait_for(timeout, "a workload to finish", || {
            child.try_wait().ok().flatten()
        });
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills every process of the workload.
    pub fn kill(&mut self) {
        for pid in self.cgroup.pids() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until something accepts TCP connections on `addr` inside `ns`.
pub fn wait_listening(ns: &Netns, addr: &str) {
    let (ip, port) = addr.rsplit_once(':').expect("ip:port");
    wait_for(
        Duration::from_secs(10),
        &format!("{addr} to listen"),
        || {
            let out = ns
                .command("ss")
                .args(["-Htln", &format!("src {ip} and sport = :{port}")])
                .output()
                .ok()?;
            (!out.stdout.is_empty()).then_some(())
        },
    );
}

/// client → nginx → app → redis.
pub struct ServiceChain {
    pub dir: PathBuf,
    /// The app's switches file (`vigil-lab-app --switches`): written to inject its faults.
    pub switches: PathBuf,
    /// Second octet of every address of this chain.
    pub net: u8,
    pub redis: Workload,
    /// With [`ServiceChain::with_postgres`]: the app also runs a query per request.
    pub postgres: Option<Postgres>,
    pub app: Workload,
    pub nginx: Workload,
    pub client_ns: Netns,
    pub web_ns: Netns,
    pub app_ns: Netns,
    pub db_ns: Netns,
}

impl ServiceChain {
    pub fn start(dir: &Path) -> Self {
        Self::start_with(dir, false)
    }

    /// client → nginx → app → redis and PostgreSQL (on the database namespace's address,
    /// port 5432, password [`PG_PASSWORD`]).
    pub fn with_postgres(dir: &Path) -> Self {
        Self::start_with(dir, true)
    }

    fn start_with(dir: &Path, with_postgres: bool) -> Self {
        let id = format!("{:05x}", rand::random::<u32>() & 0xf_ffff);
        let net = 100 + (rand::random::<u8>() % 150);
        let ns = |role: &str| Netns::create(&format!("vt{id}{role}"));
        let (client_ns, web_ns, app_ns, db_ns) = (ns("c"), ns("w"), ns("a"), ns("d"));
        let ip = |l: u8, h: u8| format!("10.{net}.{l}.{h}");
        link(
            &client_ns,
            &ip(1, 1),
            &web_ns,
            &ip(1, 2),
            &format!("v{id}1"),
        );
        link(&web_ns, &ip(2, 1), &app_ns, &ip(2, 2), &format!("v{id}2"));
        link(&app_ns, &ip(3, 1), &db_ns, &ip(3, 2), &format!("v{id}3"));
        // nginx and the app open a connection per request: let TIME_WAIT ports be reused so
        // long runs do not run out of ephemeral ports (which would look like a fault).
        for ns in [&client_ns, &web_ns, &app_ns] {
            ns.run(&["sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1"]);
            ns.run(&["sysctl", "-qw", "net.ipv4.ip_local_port_range=10000 65000"]);
        }

        let redis_addr = format!("{}:6379", ip(3, 2));
        let redis = Workload::spawn(
            &db_ns,
            "redis",
            dir,
            &[
                "redis-server",
                "--bind",
                &ip(3, 2),
                "--port",
                "6379",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
                "--dir",
                &dir.to_string_lossy(),
            ],
        );
        wait_listening(&db_ns, &redis_addr);
        let postgres = with_postgres.then(|| Postgres::start(Some(&db_ns), dir, &ip(3, 2), 5432));
        let app_addr = format!("{}:8080", ip(2, 2));
        let service = bin_path("vigil-lab-app");
        let switches = dir.join(format!("app-switches-{id}"));
        let service = service.to_string_lossy();
        let switches_arg = switches.to_string_lossy();
        let mut argv = vec![
            &*service,
            "--listen",
            &app_addr,
            "--redis",
            &redis_addr,
            "--switches",
            &*switches_arg,
        ];
        if let Some(pg) = &postgres {
            argv.extend(["--postgres", &pg.addr, "--pg-password", PG_PASSWORD]);
        }
        let app = Workload::spawn(&app_ns, "app", dir, &argv);
        wait_listening(&app_ns, &app_addr);
        let conf = dir.join("nginx.conf");
        std::fs::write(
            &conf,
            fault_lab::testbed::nginx_conf(
                dir,
                &format!("{}:80", ip(1, 2)),
                std::slice::from_ref(&app_addr),
                None,
            ),
        )
        .expect("nginx.conf");
        let nginx = Workload::spawn(
            &web_ns,
            "nginx",
            dir,
            &[
                "nginx",
                "-c",
                &conf.to_string_lossy(),
                "-p",
                &dir.to_string_lossy(),
            ],
        );
        wait_listening(&web_ns, &format!("{}:80", ip(1, 2)));
        Self {
            dir: dir.to_path_buf(),
            switches,
            net,
            redis,
            postgres,
            app,
            nginx,
            client_ns,
            web_ns,
            app_ns,
            db_ns,
        }
    }

    /// Holds back everything Redis sends by `ms` (an NFQUEUE rule in its namespace and the
    /// lab's delayer on `queue`) until the returned guard is dropped.
    pub fn delay_redis(&self, queue: u16, ms: u64) -> RedisDelay<'_> {
        let mut delay = RedisDelay {
            ns: &self.db_ns,
            queue: queue.to_string(),
            delayer: None,
        };
        delay.rule("-A");
        let lab = bin_path("vigil-lab");
        let delayer = Workload::spawn(
            &self.db_ns,
            "delay",
            &self.dir,
            &[
                &lab.to_string_lossy(),
                "nfq-delay",
                "--queue",
                &delay.queue,
                "--ms",
                &ms.to_string(),
            ],
        );
        delay.delayer = Some(delayer);
        delay
    }

    pub fn ip(&self, link: u8, host: u8) -> String {
        format!("10.{}.{link}.{host}", self.net)
    }

    /// Runs wrk against nginx for `seconds` in the client namespace, in its own workload.
    /// Returns the finished workload (its key names the client in the graph) and wrk's report.
    pub fn load(&self, seconds: u32, connections: u32) -> (Workload, String) {
        let url = format!("http://{}/", self.ip(1, 2));
        let mut wrk = Workload::spawn(
            &self.client_ns,
            "client",
            &self.dir,
            &[
                "wrk",
                "-t1",
                &format!("-c{connections}"),
                &format!("-d{seconds}s"),
                "--timeout",
                "5s",
                &url,
            ],
        );
        let report = wrk.wait(Duration::from_secs(u64::from(seconds) + 30));
        (wrk, report)
    }
}

/// Added delay on Redis's packets; removed on drop.
pub struct RedisDelay<'a> {
    ns: &'a Netns,
    queue: String,
    delayer: Option<Workload>,
}

impl RedisDelay<'_> {
    /// Adds (`-A`) or deletes (`-D`) the NFQUEUE rule.
    fn rule(&self, op: &str) {
        self.ns.run(&[
            "iptables",
            op,
            "OUTPUT",
            "-p",
            "tcp",
            "--sport",
            "6379",
            "-j",
            "NFQUEUE",
            "--queue-num",
            &self.queue,
        ]);
    }
}

impl Drop for RedisDelay<'_> {
    fn drop(&mut self) {
        if let Some(mut d) = self.delayer.take() {
            d.kill();
        }
        self.rule("-D");
    }
}

// ---- PostgreSQL ----
//
// A real PostgreSQL 15 (Debian's) for the end-to-end tests: its own data directory, password
// authentication (scram-sha-256) over TCP, trust on its Unix socket, run as `postgres` in a
// network namespace or on the host.

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
/// The role the lab app and the tests log in as.
pub const PG_USER: &str = "vigil";
/// Its password at start.
pub const PG_PASSWORD: &str = "secret";

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
        std::fs::write(&pwfile, format!("{PG_PASSWORD}\n")).expect("pwfile");
        for p in [dir, root.as_path(), socket_dir.as_path(), pwfile.as_path()] {
            run(Command::new("chown").args(["postgres:postgres", &p.to_string_lossy()]));
        }
        let initdb = Path::new(PG_BIN).join("initdb");
        as_postgres(&[
            &initdb.to_string_lossy(),
            "--no-sync",
            "-D",
            &data.to_string_lossy(),
            "-U",
            PG_USER,
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
        let postgres = Path::new(PG_BIN).join("postgres");
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
                wait_for(Duration::from_secs(30), "PostgreSQL listening", || {
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
        let sql = format!("ALTER USER {PG_USER} PASSWORD '{password}'");
        run(Command::new("psql").args([
            "-h",
            &self.socket_dir.to_string_lossy(),
            "-p",
            &self.port,
            "-U",
            PG_USER,
            "-d",
            "postgres",
            "-qc",
            &sql,
        ]));
    }
}
