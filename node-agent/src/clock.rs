//! Converting kernel timestamps (CLOCK_MONOTONIC) to Unix time.

use nix::time::{clock_gettime, ClockId};

/// Offset between CLOCK_REALTIME and CLOCK_MONOTONIC, re-measured on demand so NTP steps
/// are followed.
#[derive(Debug, Clone, Copy)]
pub struct BootClock {
    offset_ns: i128,
}

fn now_ns(clock: ClockId) -> i128 {
    clock_gettime(clock).map_or(0, |t| {
        i128::from(t.tv_sec()) * 1_000_000_000 + i128::from(t.tv_nsec())
    })
}

/// CLOCK_MONOTONIC now, nanoseconds (the clock `bpf_ktime_get_ns` reads).
pub fn monotonic_now_ns() -> u64 {
    now_ns(ClockId::CLOCK_MONOTONIC) as u64
}

impl BootClock {
    pub fn measure() -> Self {
        let mono = now_ns(ClockId::CLOCK_MONOTONIC);
        let real = now_ns(ClockId::CLOCK_REALTIME);
        Self {
            offset_ns: real - mono,
        }
    }

    pub fn to_unix_ns(&self, ktime_ns: u64) -> i64 {
        (i128::from(ktime_ns) + self.offset_ns) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_now_to_now() {
        let clock = BootClock::measure();
        let unix = clock.to_unix_ns(monotonic_now_ns());
        let real = now_ns(ClockId::CLOCK_REALTIME) as i64;
        assert!(
            (real - unix).abs() < 50_000_000,
            "off by {} ns",
            real - unix
        );
    }
}
