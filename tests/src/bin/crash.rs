//! Test workload that ends the way real programs crash: `segv` dies of SIGSEGV with the
//! default action, `abort` of SIGABRT, `exit N` with code N. An optional delay first lets the
//! agent see the process alive.
use std::{thread::sleep, time::Duration};

fn die_by(signal: libc::c_int) -> ! {
    // The Rust runtime installs its own SIGSEGV handler (stack-overflow detection); restore
    // the default action, as in a C program, so the kernel kills the process.
    // SAFETY: plain libc calls with valid arguments.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
    unreachable!("signal {signal} did not kill the process")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let delay_ms: u64 = std::env::var("VIGIL_CRASH_DELAY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    sleep(Duration::from_millis(delay_ms));
    match args.first().map(String::as_str) {
        Some("segv") => die_by(libc::SIGSEGV),
        Some("abort") => die_by(libc::SIGABRT),
        Some("exit") => std::process::exit(args.get(1).and_then(|c| c.parse().ok()).unwrap_or(1)),
        _ => {
            eprintln!("usage: vigil-test-crash segv|abort|exit <code>");
            std::process::exit(2)
        }
    }
}
