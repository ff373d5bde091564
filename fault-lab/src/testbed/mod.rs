//! The testbed: nginx → two app replicas → redis and PostgreSQL, a DNS server and a load
//! generator, each in its own `vigil-lab-` namespace and cgroups, supervised.

pub mod cgroups;
pub mod health;
pub mod net;
pub mod remediation;
pub mod supervisor;
pub mod supervisor_socket;
pub mod tls;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use tracing::info;

use crate::{
    error::{LabError, Result},
    names::LabName,
    state::Records,
    sys,
};
use supervisor::{ServiceSpec, Supervisor};

/// Services and their host number on the lab subnet.
pub const SERVICES: &[(&str, u8)] = &[
    ("dns", 53),
    ("redis", 30),
    ("postgres", 40),
    ("app1", 21),
    ("app2", 22),
    ("web", 10),
    ("load", 100),
];

pub const APP_REPLICAS: &[&str] = &["app1", "app2"];
pub const REDIS_PASSWORD: &str = "vigil-lab-secret";
/// Memory limit of each app replica (its working set is ~10 MiB).
pub const APP_MEMORY_LIMIT: u64 = 96 << 20;

/// `vigil-lab-<service>`.
pub fn service_name(service: &str) -> Result<LabName> {
    if !SERVICES.iter().any(|(s, _)| *s == service) {
        return Err(LabError::UnknownService(service.to_string()));
    }
    LabName::of(service)
}

pub fn service_ip(service: &str) -> Result<String> {
    SERVICES
        .iter()
        .find(|(s, _)| *s == service)
        .map(|(_, h)| net::ip(*h))
        .ok_or_else(|| LabError::UnknownService(service.to_string()))
}

/// Files the services read, which faults change.
#[derive(Debug, Clone)]
pub struct Files {
    pub dir: PathBuf,
    pub dnsmasq_conf: PathBuf,
    /// The lab CA and the certificate web serves on :443.
    pub tls: tls::TlsFiles,
    /// nginx's master writes its pid here (what a reload signals).
    pub nginx_pid: PathBuf,
}

/// One app replica's own files.
#[derive(Debug, Clone)]
pub struct AppFiles {
    pub conf: PathBuf,
    /// A token the app reads on every request.
    pub secret: PathBuf,
    /// A small tmpfs the app writes its request log into.
    pub data: PathBuf,
    /// The binary the supervisor runs (a symlink faults can break).
    pub bin: PathBuf,
}

impl Files {
    pub fn app(&self, app: &str) -> AppFiles {
        AppFiles {
            conf: self.dir.join(format!("{app}.conf")),
            secret: self.dir.join(format!("{app}.token")),
            data: self.dir.join(format!("{app}-data")),
            bin: self.dir.join(format!("{app}-bin")),
        }
    }
}

pub struct Testbed {
    pub files: Files,
    pub supervisor: Supervisor,
    /// What each service was deployed with: what Vigil's rollbacks and restores return to.
    pub release: remediation::Release,
    pub pool: remediation::Pool,
    pub baseline: Duration,
    client: reqwest::blocking::Client,
}

/// Removes everything a previous lab left: replays fault records, kills lab processes,
/// removes lab cgroups, namespaces, the bridge and the data mount.
pub fn clean_leftovers(state: &Path) -> Result<()> {
    let replayed = Records::new(state)?.replay(false);
    if replayed > 0 {
        info!(faults = replayed, "undid faults a previous run left active");
    }
    cgroups::remove_all();
    net::remove_all();
    for app in APP_REPLICAS {
        let data = state.join("testbed").join(format!("{app}-data"));
        sys::try_run(&["umount", "-l", &data.to_string_lossy()]);
    }
    Ok(())
}

fn app_bin_target() -> Result<PathBuf> {
    let exe = std::env::current_exe().map_err(LabError::io("locating vigil-lab"))?;
    let bin = exe.with_file_name("vigil-lab-app");
    if !bin.exists() {
        return Err(LabError::Invalid(format!(
            "{} is missing: build the workspace binaries (`cargo xtask build`)",
            bin.display()
        )));
    }
    Ok(bin)
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(LabError::io(format!("writing {}", path.display())))
}

pub const APP_CONF: &str = "# vigil-lab-app\nworkers = 1\n";

/// A token the app accepts until `expires_unix`.
pub fn token(expires_unix: u64) -> String {
    format!("token = lab\nexpires = {expires_unix}\n")
}

fn dnsmasq_conf(with_redis: bool) -> String {
    let mut c = format!(
        "keep-in-foreground\nlisten-address={}\nbind-interfaces\nno-resolv\nno-hosts\nlocal=/lab/\nuser=root\n",
        net::ip(53)
    );
    for (name, host) in [("web", 10), ("postgres", 40), ("redis", 30)] {
        if name == "redis" && !with_redis {
            continue;
        }
        // host-record, not address=: with `address=` dnsmasq answers AAAA for the name with
        // NXDOMAIN (measured: ~250 NXDOMAIN/s per replica on a healthy lab, every AAAA
        // lookup), which says the name does not exist at all (RFC 8020); host-record answers
        // it NOERROR with no records, as a real zone does.
        c.push_str(&format!("host-record={name}.lab,{}\n", net::ip(host)));
    }
    c
}

pub fn dnsmasq_conf_without_redis() -> String {
    dnsmasq_conf(false)
}

/// A TLS server nginx runs beside the proxy: where it listens and what it serves.
pub struct TlsServer<'a> {
    pub listen: &'a str,
    pub cert: &'a Path,
    pub key: &'a Path,
}

/// An nginx config proxying `listen` to `upstreams` (ip:port), with its files under `dir`.
/// With more than one upstream, a failing one is skipped for 2 s and requests retried on the
/// next; a single upstream is never marked down (nginx ignores `max_fails` then). With `tls`,
/// a second server answers HTTPS there itself (the certificate is what is under test).
pub fn nginx_conf(
    dir: &Path,
    listen: &str,
    upstreams: &[String],
    tls: Option<&TlsServer<'_>>,
) -> String {
    let d = dir.display();
    let tls = tls.map_or(String::new(), |t| {
        format!(
            "server {{ listen {} ssl; ssl_certificate {}; ssl_certificate_key {}; \
             location / {{ return 200 \"ok\\n\"; }} }}\n",
            t.listen,
            t.cert.display(),
            t.key.display()
        )
    });
    let servers: String = upstreams
        .iter()
        .map(|u| format!("server {u} max_fails=1 fail_timeout=2s; "))
        .collect();
    format!(
        "worker_processes 1;\ndaemon off;\nuser root;\nerror_log {d}/nginx-error.log warn;\npid {d}/nginx.pid;\n\
         events {{ worker_connections 1024; }}\nhttp {{\n  access_log off;\n\
         client_body_temp_path {d}/nginx-body;\n  proxy_temp_path {d}/nginx-proxy;\n\
         fastcgi_temp_path {d}/nginx-fcgi;\n  uwsgi_temp_path {d}/nginx-uwsgi;\n  scgi_temp_path {d}/nginx-scgi;\n\
         upstream app {{ {servers}}}\n\
         server {{ listen {listen}; location / {{ proxy_pass http://app; proxy_next_upstream error timeout http_502; \
         proxy_connect_timeout 1s; proxy_read_timeout 5s; }} }}\n{tls}}}\n"
    )
}

fn pg_bin(tool: &str) -> Result<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| {
            LabError::Invalid(
                "PostgreSQL is not installed (/usr/lib/postgresql): `cargo xtask setup`".into(),
            )
        })?
        .flatten()
        .map(|e| e.path().join("bin").join(tool))
        .filter(|p| p.exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .ok_or_else(|| LabError::Invalid(format!("no PostgreSQL {tool} under /usr/lib/postgresql")))
}

/// Creates the database cluster once (as the `postgres` user), trusting the lab subnet.
fn init_postgres(dir: &Path) -> Result<PathBuf> {
    let data = dir.join("pgdata");
    if data.join("PG_VERSION").exists() {
        return Ok(data);
    }
    std::fs::create_dir_all(&data).map_err(LabError::io("creating pgdata"))?;
    sys::run(&[
        "chown",
        "-R",
        "postgres:postgres",
        &dir.join("pgdata").to_string_lossy(),
    ])?;
    let initdb = pg_bin("initdb")?;
    sys::run(&[
        "setpriv",
        "--reuid=postgres",
        "--regid=postgres",
        "--clear-groups",
        "--",
        &initdb.to_string_lossy(),
        "-D",
        &data.to_string_lossy(),
        "-U",
        "vigil",
        "--auth=trust",
        "-E",
        "UTF8",
    ])?;
    let hba = format!(
        "local all all trust\nhost all all {}.0/24 trust\n",
        net::SUBNET
    );
    write(&data.join("pg_hba.conf"), &hba)?;
    sys::run(&[
        "chown",
        "postgres:postgres",
        &data.join("pg_hba.conf").to_string_lossy(),
    ])?;
    Ok(data)
}

impl Testbed {
    /// Builds and starts the testbed under `state`, then waits until it is healthy. On
    /// failure everything it created is removed again.
    pub fn start(state: &Path, progress: &dyn Fn(&str)) -> Result<Self> {
        Self::build(state, progress).inspect_err(|_| {
            let _ = clean_leftovers(state);
        })
    }

    fn build(state: &Path, progress: &dyn Fn(&str)) -> Result<Self> {
        progress("cleaning up what a previous lab left");
        clean_leftovers(state)?;
        let dir = state.join("testbed");
        std::fs::create_dir_all(&dir)
            .map_err(LabError::io(format!("creating {}", dir.display())))?;
        // Services run as `nobody` where they should not be able to read everything.
        sys::run(&["chmod", "0755", &dir.to_string_lossy()])?;
        let web_ip = net::ip(10);
        let files = Files {
            dnsmasq_conf: dir.join("dnsmasq.conf"),
            tls: tls::TlsFiles::create(&dir.join("tls"), vec!["web.lab".into(), web_ip.clone()])?,
            nginx_pid: dir.join("nginx").join("nginx.pid"),
            dir: dir.clone(),
        };
        write(&files.dnsmasq_conf, &dnsmasq_conf(true))?;
        let bin = app_bin_target()?;
        for app in APP_REPLICAS {
            let f = files.app(app);
            write(&f.conf, APP_CONF)?;
            write(&f.secret, &token(u64::MAX / 2))?;
            sys::run(&[
                "chmod",
                "0644",
                &f.secret.to_string_lossy(),
                &f.conf.to_string_lossy(),
            ])?;
            let _ = std::fs::remove_file(&f.bin);
            std::os::unix::fs::symlink(&bin, &f.bin)
                .map_err(LabError::io("linking the app binary"))?;
            std::fs::create_dir_all(&f.data).map_err(LabError::io("creating the data dir"))?;
            let source = format!("vigil-lab-{app}-data");
            sys::run(&[
                "mount",
                "-t",
                "tmpfs",
                "-o",
                "size=4m,mode=1777",
                &source,
                &f.data.to_string_lossy(),
            ])?;
        }
        let nginx_dir = dir.join("nginx");
        std::fs::create_dir_all(&nginx_dir).map_err(LabError::io("creating the nginx dir"))?;
        let nginx = nginx_dir.join("nginx.conf");
        let upstreams: Vec<String> = APP_REPLICAS
            .iter()
            .map(|a| service_ip(a).map(|ip| format!("{ip}:8080")))
            .collect::<Result<_>>()?;
        let pool = remediation::Pool {
            members: std::sync::Mutex::new(APP_REPLICAS.iter().map(|a| a.to_string()).collect()),
            conf: nginx.clone(),
            dir: nginx_dir.clone(),
            listen: format!("{web_ip}:80"),
            tls_listen: format!("{web_ip}:443"),
        };
        write(
            &nginx,
            &nginx_conf(
                &nginx_dir,
                &pool.listen,
                &upstreams,
                Some(&TlsServer {
                    listen: &pool.tls_listen,
                    cert: &files.tls.cert,
                    key: &files.tls.key,
                }),
            ),
        )?;

        let release = remediation::Release::read(&files)?;

        progress("network: bridge and one namespace per service");
        net::ensure_bridge()?;
        for (service, host) in SERVICES {
            let name = LabName::of(service)?;
            let host_if = LabName::of(&format!("h{host}"))?;
            net::add_namespace(&name, &host_if, &net::ip(*host), &net::ip(53))?;
        }

        progress("PostgreSQL cluster");
        let pgdata = init_postgres(&dir)?;
        let postgres = pg_bin("postgres")?;
        let pg_sock = dir.join("pgsock");
        std::fs::create_dir_all(&pg_sock).map_err(LabError::io("creating the pg socket dir"))?;
        sys::run(&["chown", "postgres:postgres", &pg_sock.to_string_lossy()])?;

        let log = |s: &str| dir.join(format!("{s}.log"));
        let spec = |service: &str, argv: Vec<String>| -> Result<ServiceSpec> {
            Ok(ServiceSpec {
                name: LabName::of(service)?,
                netns: LabName::of(service)?,
                argv,
                user: None,
                memory_limit_bytes: None,
                log: log(service),
            })
        };
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let mut specs = vec![
            spec(
                "dns",
                s(&[
                    "dnsmasq",
                    &format!("--conf-file={}", files.dnsmasq_conf.display()),
                ]),
            )?,
            spec(
                "redis",
                s(&[
                    "redis-server",
                    "--bind",
                    &net::ip(30),
                    "--port",
                    "6379",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--requirepass",
                    REDIS_PASSWORD,
                ]),
            )?,
            ServiceSpec {
                user: Some(("postgres".into(), "postgres".into())),
                ..spec(
                    "postgres",
                    s(&[
                        &postgres.to_string_lossy(),
                        "-D",
                        &pgdata.to_string_lossy(),
                        "-c",
                        &format!("listen_addresses={}", net::ip(40)),
                        "-c",
                        &format!("unix_socket_directories={}", pg_sock.display()),
                    ]),
                )?
            },
        ];
        for app in APP_REPLICAS {
            let ip = service_ip(app)?;
            specs.push(ServiceSpec {
                user: Some(("nobody".into(), "nogroup".into())),
                memory_limit_bytes: Some(APP_MEMORY_LIMIT),
                ..spec(
                    app,
                    s(&[
                        &files.app(app).bin.to_string_lossy(),
                        "--listen",
                        &format!("{ip}:8080"),
                        "--redis",
                        "redis.lab:6379",
                        "--redis-password",
                        REDIS_PASSWORD,
                        "--postgres",
                        "postgres.lab:5432",
                        "--pg-user",
                        "vigil",
                        "--secret-file",
                        &files.app(app).secret.to_string_lossy(),
                        "--request-log",
                        &files.app(app).data.join("requests.log").to_string_lossy(),
                        "--config",
                        &files.app(app).conf.to_string_lossy(),
                        "--ballast-mb",
                        "8",
                    ]),
                )?
            });
        }
        specs.push(spec(
            "web",
            s(&[
                "nginx",
                "-c",
                &nginx.to_string_lossy(),
                "-p",
                &nginx_dir.to_string_lossy(),
            ]),
        )?);
        specs.push(spec(
            "load",
            s(&[
                "wrk",
                "-t1",
                "-c2",
                "-d1000000s",
                "--timeout",
                "2s",
                &health::entry_url(),
            ]),
        )?);

        // HTTPS clients beside wrk, in the load namespace: curl verifies web's certificate
        // against the lab CA on every new connection and keeps going after a failed
        // transfer, 5 requests a second over a kept-alive connection.
        specs.push(ServiceSpec {
            netns: LabName::of("load")?,
            ..spec(
                "tls-load",
                s(&[
                    "curl",
                    "-sS",
                    "-o",
                    "/dev/null",
                    "--cacert",
                    &files.tls.ca_cert.to_string_lossy(),
                    "--rate",
                    "5/s",
                    "--connect-timeout",
                    "2",
                    "--max-time",
                    "2",
                    &format!("{}[1-1000000000]", health::tls_url("web.lab")),
                ]),
            )?
        });

        progress("services: dns, redis, postgres, 2 app replicas, nginx, load generators");
        let supervisor = Supervisor::start(specs)?;
        let client = health::client(&files.tls.ca_cert)?;
        progress(
            "waiting for the testbed to be healthy (DNS answers, requests succeed end to end)",
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        let baseline = loop {
            match health::probe(&client, 10) {
                Ok(median) if health::resolves("redis.lab") => break median,
                result => {
                    if Instant::now() > deadline {
                        let why = result.err().unwrap_or_else(|| "DNS does not answer".into());
                        return Err(LabError::Unhealthy(format!(
                            "{why} after 60 s; logs in {}",
                            dir.display()
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(250));
                }
            }
        };
        progress(&format!(
            "healthy: median request {:.1} ms through nginx",
            baseline.as_secs_f64() * 1e3
        ));
        Ok(Self {
            files,
            supervisor,
            release,
            pool,
            baseline,
            client,
        })
    }

    /// Waits until the end-to-end path is healthy again; the time it took.
    pub fn wait_healthy(&self, timeout: Duration) -> Result<Duration> {
        let start = Instant::now();
        let mut consecutive = 0;
        let mut last = String::new();
        while start.elapsed() < timeout {
            match health::check(&self.client, self.baseline) {
                Ok(_) => {
                    consecutive += 1;
                    if consecutive >= 3 {
                        return Ok(start.elapsed());
                    }
                }
                Err(e) => {
                    consecutive = 0;
                    last = e;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(LabError::Unhealthy(format!(
            "still unhealthy after {timeout:?}: {last}"
        )))
    }

    /// Tells nginx's master to re-read its configuration and certificates (SIGHUP): new
    /// connections get the new certificate, kept-alive ones are closed once idle.
    pub fn reload_web(&self) -> Result<()> {
        let path = &self.files.nginx_pid;
        let text =
            std::fs::read_to_string(path).map_err(LabError::io("reading nginx's pid file"))?;
        let pid: i32 = text.trim().parse().map_err(|_| {
            LabError::Invalid(format!("{} holds {text:?}, not a pid", path.display()))
        })?;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGHUP,
        )
        .map_err(|e| LabError::Invalid(format!("reloading nginx (pid {pid}): {e}")))?;
        // The reload is asynchronous; its new workers are up well within this.
        std::thread::sleep(Duration::from_millis(300));
        Ok(())
    }

    pub fn client(&self) -> &reqwest::blocking::Client {
        &self.client
    }

    /// Stops the services and removes the namespaces, cgroups and the data mount.
    pub fn stop(mut self, state: &Path) {
        self.supervisor.shutdown();
        let _ = clean_leftovers(state);
    }
}
