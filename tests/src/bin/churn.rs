//! Test workload: processes that take a while to exit, then enough short-lived threads to
//! wrap the pid space, so new threads are handed the dead processes' ids.
//! `vigil-test-churn [rounds]`; `vigil-test-churn exit-big` is one such slow exiter.
//!
//! What it exercises: a task switched out inside `exit_group` (unmapping a large address
//! space while other tasks want the CPU) must not leave an entry that the next owner of its
//! thread id is timed from.
use std::{hint::black_box, process::Command, thread, time::Instant};

/// Enough to take milliseconds to unmap at exit: the tick preempts it if a spinner waits.
const EXITER_MIB: usize = 128;
const EXITERS_PER_ROUND: usize = 24;

fn main() -> std::io::Result<()> {
    let arg = std::env::args().nth(1);
    if arg.as_deref() == Some("exit-big") {
        let mut v = vec![0u8; EXITER_MIB << 20];
        // Touch every page so exit has to free them.
        for page in v.chunks_mut(4096) {
            page[0] = 1;
        }
        black_box(&v);
        std::process::exit(0);
    }
    let rounds: usize = arg.and_then(|a| a.parse().ok()).unwrap_or(2);
    let pid_max: usize = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(32768);
    let me = std::env::current_exe()?;
    for round in 0..rounds {
        let started = Instant::now();
        // Spinners on every CPU, so an exiter is switched out mid-exit rather than left
        // to finish its unmapping alone.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let spinners: Vec<_> = (0..thread::available_parallelism().map_or(2, |n| n.get()))
            .map(|_| {
                let stop = stop.clone();
                thread::spawn(move || {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        for _ in 0..EXITERS_PER_ROUND {
            Command::new(&me).arg("exit-big").status()?;
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for s in spinners {
            let _ = s.join();
        }
        // Wrap the pid space: the next threads reuse the exiters' ids.
        for _ in 0..pid_max + 1024 {
            let _ = thread::spawn(|| ()).join();
        }
        println!(
            "round {round}: {EXITERS_PER_ROUND} exiters and {} threads in {:.1} s",
            pid_max + 1024,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
