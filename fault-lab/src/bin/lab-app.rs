//! `vigil-lab-app`: the lab's own microservice. Each `GET /` does real work on its
//! dependencies — reads a secret file, increments a counter in Redis (with AUTH), runs a
//! query in PostgreSQL, appends to a request log — and answers 200, or 502/500 naming the
//! dependency that failed. Names are resolved through DNS on every request (the lab's
//! dnsmasq), so DNS faults show. `GET /grow?mb=N` adds N MiB of touched memory (for OOM),
//! `GET /healthz` says the process is up.
//!
//! Also used by the end-to-end tests as a plain HTTP → Redis service (`--redis` only).

use std::{
    io::{BufRead, BufReader, Write},
    net::{TcpListener, TcpStream, ToSocketAddrs},
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{bail, Context, Result};
use clap::Parser;

#[derive(Debug, Parser, Clone)]
#[command(about = "The fault lab's HTTP service")]
struct Args {
    /// Address to listen on, e.g. 10.213.0.21:8080.
    #[arg(long)]
    listen: String,
    /// Redis as host:port; the host is resolved on every request.
    #[arg(long)]
    redis: String,
    #[arg(long, env = "VIGIL_LAB_REDIS_PASSWORD")]
    redis_password: Option<String>,
    /// PostgreSQL as host:port (optional).
    #[arg(long)]
    postgres: Option<String>,
    #[arg(long, default_value = "vigil")]
    pg_user: String,
    /// The PostgreSQL user's password, for servers that ask for one (scram-sha-256, md5).
    #[arg(long, env = "VIGIL_LAB_PG_PASSWORD")]
    pg_password: Option<String>,
    /// A file read on every request (a credential the service needs).
    #[arg(long)]
    secret_file: Option<PathBuf>,
    /// A file every request appends a line to.
    #[arg(long)]
    request_log: Option<PathBuf>,
    /// A config file that must parse as `key = value` lines; anything else is fatal.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Memory held from the start, MiB.
    #[arg(long, default_value_t = 0)]
    ballast_mb: usize,
    /// Faults in the app's own code, read on every request as `key = value` lines (absent:
    /// none): `error_ratio = 0.5` answers 500 to that share of requests, `delay_ms = 300`
    /// sleeps that long in the handler.
    #[arg(long)]
    switches: Option<PathBuf>,
}

/// The app's own faults (see `Args::switches`).
#[derive(Debug, Default, Clone, Copy)]
struct Switches {
    error_ratio: f64,
    delay_ms: u64,
}

impl Switches {
    fn read(path: Option<&PathBuf>) -> Self {
        let mut s = Self::default();
        let Some(text) = path.and_then(|p| std::fs::read_to_string(p).ok()) else {
            return s;
        };
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            match k.trim() {
                "error_ratio" => s.error_ratio = v.trim().parse().unwrap_or(0.0),
                "delay_ms" => s.delay_ms = v.trim().parse().unwrap_or(0),
                _ => {}
            }
        }
        s
    }
}

/// Requests served, for an exact error ratio: request n fails when ⌊(n+1)·r⌋ > ⌊n·r⌋.
static SERVED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The request log is truncated past this size.
const LOG_ROTATE_BYTES: u64 = 512 << 10;

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(path) = &args.config {
        check_config(path)?;
    }
    let ballast = Arc::new(Mutex::new(vec![touched(args.ballast_mb)]));
    let listener =
        TcpListener::bind(&args.listen).with_context(|| format!("binding {}", args.listen))?;
    eprintln!("{} INFO listening on {}", now_rfc3339(), args.listen);
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let (args, ballast) = (args.clone(), ballast.clone());
        std::thread::spawn(move || {
            if let Err(e) = serve(stream, &args, &ballast) {
                eprintln!("{} WARN connection: {e:#}", now_rfc3339());
            }
        });
    }
    Ok(())
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn check_config(path: &PathBuf) -> Result<()> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config {}", path.display()))?;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if !line.contains('=') {
            bail!(
                "{}:{}: expected `key = value`, got {line:?}",
                path.display(),
                i + 1
            );
        }
    }
    Ok(())
}

/// A token with `expires = <unix seconds>` in the past is refused.
fn check_token(text: &str) -> Result<()> {
    let expires = text.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == "expires").then(|| v.trim().parse::<u64>().ok())?
    });
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match expires {
        Some(t) if t <= now => bail!("token expired {}s ago", now - t),
        _ => Ok(()),
    }
}

/// `mb` MiB of memory, every page written so it is resident.
fn touched(mb: usize) -> Vec<u8> {
    vec![1u8; mb << 20]
}

fn serve(stream: TcpStream, args: &Args, ballast: &Mutex<Vec<Vec<u8>>>) -> Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let http10 = request_line.trim_end().ends_with("HTTP/1.0");
        let mut close = http10;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 || header == "\r\n" || header == "\n" {
                break;
            }
            let h = header.to_ascii_lowercase();
            if h.starts_with("connection:") {
                close = h.contains("close") || (http10 && !h.contains("keep-alive"));
            }
        }
        let path = request_line.split_whitespace().nth(1).unwrap_or("/");
        let (status, body) = route(path, args, ballast);
        write!(
            out,
            "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n{body}",
            body.len(),
            if close { "close" } else { "keep-alive" }
        )?;
        if close {
            return Ok(());
        }
    }
}

fn route(path: &str, args: &Args, ballast: &Mutex<Vec<Vec<u8>>>) -> (&'static str, String) {
    if path == "/healthz" {
        return ("200 OK", "ok\n".into());
    }
    if let Some(mb) = path.strip_prefix("/grow?mb=").and_then(|v| v.parse().ok()) {
        ballast
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(touched(mb));
        return ("200 OK", format!("grew by {mb} MiB\n"));
    }
    let switches = Switches::read(args.switches.as_ref());
    if switches.delay_ms > 0 {
        std::thread::sleep(Duration::from_millis(switches.delay_ms));
    }
    let n = SERVED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) as f64;
    let r = switches.error_ratio.clamp(0.0, 1.0);
    if ((n + 1.0) * r).floor() > (n * r).floor() {
        return (
            "500 Internal Server Error",
            "failing on purpose (switches)\n".into(),
        );
    }
    match work(args) {
        Ok(hits) => ("200 OK", format!("hits={hits}\n")),
        Err(e) => {
            // As a service's logger would: dated, one line per failed request.
            eprintln!("{} ERROR request failed: {e:#}", now_rfc3339());
            ("502 Bad Gateway", format!("{e:#}\n"))
        }
    }
}

/// One request's worth of work on every dependency.
fn work(args: &Args) -> Result<i64> {
    if let Some(secret) = &args.secret_file {
        let text = std::fs::read_to_string(secret)
            .with_context(|| format!("secret {}", secret.display()))?;
        check_token(&text)?;
    }
    let hits = incr(args).context("redis")?;
    if let Some(pg) = &args.postgres {
        query(pg, &args.pg_user, args.pg_password.as_deref()).context("postgres")?;
    }
    if let Some(log) = &args.request_log {
        // Rotate by size, as a real service's logger would: the volume is small on purpose
        // (the disk-full fault fills it), so an unbounded log would fill it by itself.
        if std::fs::metadata(log).is_ok_and(|m| m.len() > LOG_ROTATE_BYTES) {
            let _ = std::fs::File::create(log);
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("request log {}", log.display()))?;
        writeln!(f, "request {hits} {}", "x".repeat(200))
            .with_context(|| format!("request log {}", log.display()))?;
    }
    Ok(hits)
}

fn connect(addr: &str) -> Result<TcpStream> {
    let target = addr
        .to_socket_addrs()
        .with_context(|| format!("resolving {addr}"))?
        .next()
        .with_context(|| format!("{addr} resolved to nothing"))?;
    let s = TcpStream::connect_timeout(&target, Duration::from_secs(2))
        .with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    Ok(s)
}

fn redis_command(s: &mut TcpStream, reader: &mut impl BufRead, parts: &[&str]) -> Result<String> {
    let mut cmd = format!("*{}\r\n", parts.len());
    for p in parts {
        cmd.push_str(&format!("${}\r\n{p}\r\n", p.len()));
    }
    s.write_all(cmd.as_bytes())?;
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let line = line.trim_end().to_string();
    if let Some(err) = line.strip_prefix('-') {
        bail!("{err}");
    }
    Ok(line)
}

fn incr(args: &Args) -> Result<i64> {
    let mut s = connect(&args.redis)?;
    let mut reader = BufReader::new(s.try_clone()?);
    if let Some(password) = &args.redis_password {
        redis_command(&mut s, &mut reader, &["AUTH", password])?;
    }
    let reply = redis_command(&mut s, &mut reader, &["INCR", "hits"])?;
    reply
        .strip_prefix(':')
        .context("unexpected reply")?
        .parse()
        .context("not an integer")
}

fn query(addr: &str, user: &str, password: Option<&str>) -> Result<()> {
    let (host, port) = addr
        .rsplit_once(':')
        .context("postgres must be host:port")?;
    let mut config = postgres::Config::new();
    config
        .host(host)
        .port(port.parse().context("postgres port")?)
        .user(user)
        .dbname("postgres")
        .connect_timeout(Duration::from_secs(2));
    if let Some(password) = password {
        config.password(password);
    }
    let mut client = config.connect(postgres::NoTls)?;
    client.simple_query("SELECT 1")?;
    Ok(())
}
