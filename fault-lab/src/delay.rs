//! Added latency without netem: every packet sent to NFQUEUE `queue` is held for `ms`
//! milliseconds, then accepted. Runs inside the target's network namespace.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use crate::error::{LabError, Result};

pub fn run(queue_num: u16, ms: u64) -> Result<()> {
    let io = |what: &str| {
        let what = what.to_string();
        move |e: std::io::Error| LabError::Io {
            what: what.clone(),
            source: e,
        }
    };
    let mut queue = nfq::Queue::open().map_err(io("opening NFQUEUE (needs root)"))?;
    queue.bind(queue_num).map_err(io("binding the queue"))?;
    queue.set_nonblocking(true);
    let hold = Duration::from_millis(ms);
    let mut held: VecDeque<(Instant, nfq::Message)> = VecDeque::new();
    loop {
        let mut got = false;
        while let Ok(mut msg) = queue.recv() {
            msg.set_verdict(nfq::Verdict::Accept);
            held.push_back((Instant::now() + hold, msg));
            got = true;
        }
        while held.front().is_some_and(|(due, _)| *due <= Instant::now()) {
            if let Some((_, msg)) = held.pop_front() {
                queue.verdict(msg).map_err(io("returning a packet"))?;
            }
        }
        if !got {
            std::thread::sleep(Duration::from_micros(500));
        }
    }
}
