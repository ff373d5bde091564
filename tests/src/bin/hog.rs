//! Test workload: allocates and touches memory until the kernel kills it.
//! `vigil-test-hog [MiB-per-step] [pause-ms]`.
use std::{thread::sleep, time::Duration};

fn main() {
    let mut args = std::env::args().skip(1);
    let step_mib: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let pause_ms: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(2);
    let mut held: Vec<Vec<u8>> = Vec::new();
    loop {
        // Touch every page so it is charged to the memory cgroup.
        held.push(vec![0xa5; step_mib << 20]);
        sleep(Duration::from_millis(pause_ms));
    }
}
