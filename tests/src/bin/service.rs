//! A small upstream service and fault helpers for the topology tests.
//!
//! - `http LISTEN REDIS`: an HTTP/1.x server; each request increments a counter in Redis
//!   (a fresh connection per request, RESP over TCP) and answers 200, or 502 when Redis
//!   cannot be reached.
//! - `dns SERVER NAME COUNT`: sends COUNT A queries for NAME over UDP and prints each rcode.
//! - `delay QUEUE MS`: holds every packet of NFQUEUE `QUEUE` for MS milliseconds before
//!   accepting it (this kernel has no netem; this is how latency is injected).

use std::{
    collections::VecDeque,
    io::{BufRead, BufReader, Write},
    net::{TcpListener, TcpStream, UdpSocket},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["http", listen, redis] => http(listen, redis),
        ["dns", server, name, count] => dns(server, name, count.parse()?),
        ["delay", queue, ms] => delay(queue.parse()?, ms.parse()?),
        _ => bail!(
            "usage: vigil-test-service http LISTEN REDIS | dns SERVER NAME COUNT | delay QUEUE MS"
        ),
    }
}

fn http(listen: &str, redis: &str) -> Result<()> {
    let listener = TcpListener::bind(listen).with_context(|| format!("binding {listen}"))?;
    eprintln!("listening on {listen}, redis at {redis}");
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let redis = redis.to_string();
        std::thread::spawn(move || {
            if let Err(e) = serve(stream, &redis) {
                eprintln!("connection: {e:#}");
            }
        });
    }
    Ok(())
}

/// Serves requests on one connection until the client closes it or asks to.
fn serve(stream: TcpStream, redis: &str) -> Result<()> {
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
        let (status, body) = match incr(redis) {
            Ok(n) => ("200 OK", format!("hits={n}\n")),
            Err(e) => ("502 Bad Gateway", format!("redis: {e:#}\n")),
        };
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

fn incr(redis: &str) -> Result<i64> {
    let mut s = TcpStream::connect_timeout(&redis.parse()?, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"*2\r\n$4\r\nINCR\r\n$4\r\nhits\r\n")?;
    let mut line = String::new();
    BufReader::new(&mut s).read_line(&mut line)?;
    line.trim_end()
        .strip_prefix(':')
        .context("unexpected reply")?
        .parse()
        .context("not an integer")
}

fn dns(server: &str, name: &str, count: u32) -> Result<()> {
    let socket = UdpSocket::bind("0.0.0.0:0")?;
    socket.connect(server)?;
    socket.set_read_timeout(Some(Duration::from_secs(2)))?;
    for i in 0..count {
        let id = (0x1000 + i) as u16;
        let mut q = Vec::with_capacity(64);
        q.extend_from_slice(&id.to_be_bytes());
        q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD, 1 question
        for label in name.split('.') {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.extend_from_slice(&[0, 0, 1, 0, 1]); // root, A, IN
        socket.send(&q)?;
        let mut buf = [0u8; 512];
        match socket.recv(&mut buf) {
            Ok(n) if n >= 4 => println!("rcode {}", buf[3] & 0x0f),
            Ok(_) => println!("short answer"),
            Err(e) => println!("no answer: {e}"),
        }
    }
    Ok(())
}

fn delay(queue_num: u16, ms: u64) -> Result<()> {
    let mut queue = nfq::Queue::open().context("opening NFQUEUE (needs root)")?;
    queue.bind(queue_num).context("binding the queue")?;
    queue.set_nonblocking(true);
    let hold = Duration::from_millis(ms);
    let mut held: VecDeque<(Instant, nfq::Message)> = VecDeque::new();
    eprintln!("delaying queue {queue_num} by {ms} ms");
    loop {
        let mut got = false;
        while let Ok(mut msg) = queue.recv() {
            msg.set_verdict(nfq::Verdict::Accept);
            held.push_back((Instant::now() + hold, msg));
            got = true;
        }
        while held.front().is_some_and(|(due, _)| *due <= Instant::now()) {
            if let Some((_, msg)) = held.pop_front() {
                queue.verdict(msg)?;
            }
        }
        if !got {
            std::thread::sleep(Duration::from_micros(500));
        }
    }
}
