//! The clock port: every use case asks it for "now", so stage timings and time-dependent
//! decisions can be tested with a clock the test moves.

use std::sync::atomic::{AtomicI64, Ordering};

/// Wall-clock time as Unix nanoseconds.
pub trait Clock: Send + Sync {
    fn now_unix_ns(&self) -> i64;
}

/// The system's real-time clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix_ns(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
    }
}

/// A clock that moves only when told to (tests, replays). Each reading can also advance it by
/// a fixed step, so consecutive stages of one pipeline get distinct, predictable times.
#[derive(Debug, Default)]
pub struct ManualClock {
    now: AtomicI64,
    step: AtomicI64,
}

impl ManualClock {
    pub fn at(unix_ns: i64) -> Self {
        Self {
            now: AtomicI64::new(unix_ns),
            step: AtomicI64::new(0),
        }
    }

    /// Every reading returns the current time, then advances it by `step_ns`.
    pub fn stepping(self, step_ns: i64) -> Self {
        self.step.store(step_ns, Ordering::SeqCst);
        self
    }

    pub fn set(&self, unix_ns: i64) {
        self.now.store(unix_ns, Ordering::SeqCst);
    }

    pub fn advance(&self, ns: i64) {
        self.now.fetch_add(ns, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_unix_ns(&self) -> i64 {
        let step = self.step.load(Ordering::SeqCst);
        self.now.fetch_add(step, Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_steps_per_reading() {
        let c = ManualClock::at(100).stepping(10);
        assert_eq!([c.now_unix_ns(), c.now_unix_ns()], [100, 110]);
        c.set(5);
        assert_eq!(c.now_unix_ns(), 5);
        assert!(SystemClock.now_unix_ns() > 1_600_000_000_000_000_000);
    }
}
