//! Test workload: allocates and touches memory until the kernel kills it, or until it holds
//! `max-MiB` and then holds it (a workload running near its limit).
//! `vigil-test-hog [MiB-per-step] [pause-ms] [max-MiB]`.
use std::{thread::sleep, time::Duration};

fn main() {
    let mut args = std::env::args().skip(1);
    let step_mib: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let pause_ms: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(2);
    let max_mib: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(usize::MAX);
    let mut held: Vec<Vec<u8>> = Vec::new();
    loop {
        if held.len().saturating_mul(step_mib) >= max_mib {
            sleep(Duration::from_secs(3600));
            continue;
        }
        // Touch every page so it is charged to the memory cgroup.
        held.push(vec![0xa5; step_mib << 20]);
        sleep(Duration::from_millis(pause_ms));
    }
}
