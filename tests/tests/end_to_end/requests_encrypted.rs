//! Requests the packets cannot show: HTTP over TLS, read from OpenSSL's plaintext by the
//! agent's uprobes, and HTTP/2, whose frames the kernel counts (h2c and h2 over TLS).

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use crate::edge_requests::{client_edge, output, view, EdgeRequests};
use vigil_tests::{topology::Workload, wait_for, AgentOptions, Stack};

/// A self-signed certificate made for the test: (certificate, key).
fn certificate(d: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (d.join("cert.pem"), d.join("key.pem"));
    output(&[
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=localhost",
        "-keyout",
        &key.to_string_lossy(),
        "-out",
        &cert.to_string_lossy(),
    ]);
    (cert, key)
}

/// nginx on 127.0.0.1 with one server per `listen` (e.g. `8443 ssl`, `8080 http2`), each
/// answering 200 on `/` and 503 on `/fail`, with [`certificate`]'s files; once listening.
fn nginx(d: &Path, listen: &str) -> Workload {
    let (cert, key) = (d.join("cert.pem"), d.join("key.pem"));
    let conf = d.join(format!("nginx-{}.conf", listen.replace(' ', "-")));
    let logs = d.join("logs");
    std::fs::create_dir_all(&logs).expect("nginx logs dir");
    std::fs::write(
        &conf,
        format!(
            "daemon off; master_process off; worker_processes 1; pid {d}/nginx-{port}.pid;\n\
             error_log {d}/logs/error.log;\n\
             events {{}}\n\
             http {{ access_log off; client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
               keepalive_requests 1000000; ssl_certificate {cert}; ssl_certificate_key {key};\n\
               server {{ listen 127.0.0.1:{listen};\n\
                 location / {{ return 200 \"ok\\n\"; }}\n\
                 location /fail {{ return 503 \"down\\n\"; }} }} }}\n",
            d = d.display(),
            port = listen.split(' ').next().unwrap_or(""),
            cert = cert.display(),
            key = key.display(),
        ),
    )
    .expect("nginx.conf");
    let server = Workload::spawn_host(
        "nginx",
        d,
        &[
            "nginx",
            "-p",
            &d.to_string_lossy(),
            "-c",
            &conf.to_string_lossy(),
        ],
    );
    let port: u16 = listen
        .split(' ')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("listen starts with a port");
    wait_for(Duration::from_secs(15), "nginx listening", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    server
}

/// HTTP/2 without TLS (h2c, prior knowledge) and over TLS (ALPN, through the uprobes):
/// curl's streams and nginx's 503s, counted from the frames by both sides' probes.
#[test]
fn http2_streams_and_failures_over_h2c_and_tls_alone() {
    let Stack {
        dir,
        cp: _cp,
        api,
        agent: _agent,
    } = Stack::start(&AgentOptions::new("http2-node"));
    let d = dir.path();
    certificate(d);
    let (h2c, h2) = (
        vigil_tests::prometheus::free_port(),
        vigil_tests::prometheus::free_port(),
    );
    let plain = nginx(d, &format!("{h2c} http2"));
    let tls = nginx(d, &format!("{h2} ssl http2"));
    for (server, port, scheme, flag, tls_expected) in [
        (&plain, h2c, "http", "--http2-prior-knowledge", false),
        (&tls, h2, "https", "--http2", true),
    ] {
        // 20 requests to /, 10 to /fail, a connection each (curl 7.88 drops a second
        // request it sends on a reused h2c connection).
        let curl_one = format!("curl -sk {flag} {scheme}://127.0.0.1:{port}");
        let script = format!(
            "for i in $(seq 20); do {curl_one}/ || exit 1; done; \
             for i in $(seq 10); do {curl_one}/fail || exit 1; done"
        );
        let mut curl = Workload::spawn_host("curl-h2", d, &["sh", "-c", &script]);
        let log = curl.wait(Duration::from_secs(30));
        assert_eq!(
            (log.matches("ok").count(), log.matches("down").count()),
            (20, 10),
            "{log}"
        );
        let port = u64::from(port);
        // Over TLS each of these one-request connections is attributed only if the agent
        // read its socket's addresses before it closed (a few milliseconds). Alone, all 30
        // are on both sides; in the suite, on two busy cores, curl's side lost 12 of 30 and
        // nginx's none (see the README's limits); it runs alone since. Lost, never
        // miscounted: what is seen must add up.
        let least = |client: bool| match (tls_expected, client) {
            (false, _) => 30,
            (true, true) => 1,
            (true, false) => 24,
        };
        let settled = |read: &dyn Fn() -> EdgeRequests| {
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                let e = read();
                if e.responses >= 30 || Instant::now() > deadline {
                    return e;
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        };
        let client = settled(&|| client_edge(&api, &curl.key(), port, 0));
        let served = settled(&|| view(&api, &server.key(), "server", port, 0));
        eprintln!("{scheme} h2: curl {client:?}\n  nginx {served:?}");
        for (e, is_client) in [(&client, true), (&served, false)] {
            let least = least(is_client);
            assert!(
                e.requests == e.responses && (least..=30).contains(&e.responses),
                "{least} to 30 streams, each answered once: {e:?}"
            );
            assert_eq!(e.errors, e.status("503"), "every failure is a 503: {e:?}");
            assert!(
                e.errors <= 10 && e.errors + 30 >= 10 + e.responses,
                "the 503s of the streams seen: {e:?}"
            );
            assert_eq!(e.tls_samples == e.samples, tls_expected, "{e:?}");
        }
    }
}

/// A Python HTTPS server (the `ssl` module: `SSL_read_ex`/`SSL_write_ex`) whose handler
/// sleeps 300 ms before it answers.
const SLOW_TLS_SERVER: &str = r#"
import http.server, ssl, sys, time
class Slow(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        time.sleep(0.3)
        body = b"slow\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Slow)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
server.socket = ctx.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"#;

/// HTTP over TLS, seen through the OpenSSL uprobes: wrk → nginx (`SSL_read`/`SSL_write`,
/// keep-alive) for status codes, and curl (its own BIO: `send`/`recv`) → a Python server
/// (`SSL_read_ex`/`SSL_write_ex`, one request per connection) for latency.
#[test]
fn https_statuses_and_latency_through_the_openssl_uprobes_alone() {
    let Stack {
        dir,
        cp: _cp,
        api,
        agent: _agent,
    } = Stack::start(&AgentOptions::new("tls-node"));
    let d = dir.path();
    let (cert, key) = certificate(d);
    let port = vigil_tests::prometheus::free_port();
    let nginx = nginx(d, &format!("{port} ssl"));
    let wrk = |path: &str| {
        let url = format!("https://127.0.0.1:{port}{path}");
        let mut w = Workload::spawn_host("wrk-tls", d, &["wrk", "-t1", "-c2", "-d3s", &url]);
        let log = w.wait(Duration::from_secs(30));
        // Kept (not dropped) until its samples are read: a workload's cgroup names it.
        // "  12345 requests in 3.00s, …"
        let sent: u64 = log
            .lines()
            .find_map(|l| {
                l.split(" requests in ")
                    .next()
                    .filter(|_| l.contains(" requests in "))
            })
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("wrk's summary: {log}"));
        (w, sent)
    };
    let (ok_wrk, ok_sent) = wrk("/");
    let (fail_wrk, fail_sent) = wrk("/fail");
    let (ok_client, fail_client) = (ok_wrk.key(), fail_wrk.key());
    let server_port = u64::from(port);
    let ok = wait_for(Duration::from_secs(15), "wrk's requests to /", || {
        let e = client_edge(&api, &ok_client, server_port, 0);
        (e.responses >= ok_sent).then_some(e)
    });
    let fail = wait_for(Duration::from_secs(15), "wrk's requests to /fail", || {
        let e = client_edge(&api, &fail_client, server_port, 0);
        (e.responses >= fail_sent).then_some(e)
    });
    eprintln!("wrk→nginx /: sent {ok_sent}, {ok:?}\nwrk→nginx /fail: sent {fail_sent}, {fail:?}");
    // wrk counts completed requests; the kernel also sees the ones in flight at the end.
    for (e, sent) in [(&ok, ok_sent), (&fail, fail_sent)] {
        assert!(sent > 100, "wrk made real load: {sent}");
        assert!(
            e.requests >= sent && e.requests <= sent + 4,
            "each request counted once, none twice: {e:?} vs {sent}"
        );
        assert_eq!(
            e.tls_samples, e.samples,
            "every sample is marked TLS: {e:?}"
        );
        assert_eq!(
            e.unanswered, 0,
            "an exited client's connections never time out: {e:?}"
        );
    }
    assert_eq!((ok.errors, ok.status("503")), (0, 0), "{ok:?}");
    assert!(
        fail.status("503") >= fail_sent && fail.errors == fail.status("503"),
        "every /fail answer is a 503: {fail:?}"
    );
    let served = view(&api, &nginx.key(), "server", server_port, 0);
    assert!(
        served.status("503") >= fail_sent,
        "nginx's own view has the 503s: {served:?}"
    );

    let slow_port = vigil_tests::prometheus::free_port();
    let slow_port_s = slow_port.to_string();
    let server = Workload::spawn_host(
        "slow-tls",
        d,
        &[
            "/usr/bin/python3",
            "-c",
            SLOW_TLS_SERVER,
            &slow_port_s,
            &cert.to_string_lossy(),
            &key.to_string_lossy(),
        ],
    );
    wait_for(
        Duration::from_secs(15),
        "the Python server listening",
        || std::net::TcpStream::connect(("127.0.0.1", slow_port)).ok(),
    );
    let url = format!("https://127.0.0.1:{slow_port}/");
    let script = format!("for i in 1 2 3 4 5; do curl -sk {url} || exit 1; done");
    let mut curl = Workload::spawn_host("curl-tls", d, &["sh", "-c", &script]);
    let log = curl.wait(Duration::from_secs(30));
    assert_eq!(log.matches("slow").count(), 5, "{log}");
    let slow_server = u64::from(slow_port);
    let client = wait_for(Duration::from_secs(15), "curl's five requests", || {
        let e = client_edge(&api, &curl.key(), slow_server, 0);
        (e.responses >= 5).then_some(e)
    });
    let handled = wait_for(
        Duration::from_secs(15),
        "the server's five requests",
        || {
            let e = view(&api, &server.key(), "server", slow_server, 0);
            (e.responses >= 5).then_some(e)
        },
    );
    eprintln!("curl→python: {client:?}\npython's view: {handled:?}");
    for e in [&client, &handled] {
        assert_eq!((e.requests, e.responses, e.errors), (5, 5, 0), "{e:?}");
        assert!(e.p99_ms() >= 300.0, "the handler's 300 ms: {e:?}");
        assert_eq!(e.tls_samples, e.samples, "{e:?}");
    }
}
