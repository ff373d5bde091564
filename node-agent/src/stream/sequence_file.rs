//! The event sequence across the agent's own restarts. Events an agent held when it died
//! (buffered, or in a batch not yet acknowledged) are gone with it; so that the control plane
//! counts them instead of never knowing, the agent writes down, a few times a second, the
//! next number it would assign and how many events it held unnumbered. A restarted agent
//! starts past both: the numbers it skips are exactly a gap, which the control plane counts
//! as loss. (Events read in the last interval before the kill are not in the file: the count
//! can be short by what one interval reads, never over.)
//!
//! The file lives on tmpfs by default (`/run`): a reboot loses the kernel's events anyway,
//! and then there is nothing to account for.

use std::{
    path::{Path, PathBuf},
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::{buffer::EventBuffer, shipper::ShipperState};

/// How often the counts are written down.
const SAVE_EVERY: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Saved {
    /// The node the sequence is of: a file left by an agent of another name is not ours.
    node: String,
    next_seq: u64,
    unnumbered: u64,
}

pub struct SequenceFile {
    path: PathBuf,
    node: String,
}

impl SequenceFile {
    pub fn new(path: &Path, node: &str) -> Self {
        Self {
            path: path.into(),
            node: node.into(),
        }
    }

    /// The first number this run may assign (0: no earlier run to account for).
    pub fn resume(&self) -> u64 {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return 0,
            Err(e) => {
                warn!(file = %self.path.display(), error = %e, "cannot read the sequence file: events the last run lost are not counted");
                return 0;
            }
        };
        match serde_json::from_str::<Saved>(&text) {
            Ok(saved) if saved.node != self.node => {
                info!(file = %self.path.display(), other = %saved.node, "the sequence file is another node's; starting afresh");
                0
            }
            Ok(saved) => {
                let first = saved.next_seq.saturating_add(saved.unnumbered);
                if saved.unnumbered > 0 {
                    warn!(unnumbered = saved.unnumbered, next_seq = saved.next_seq,
                        "the last run ended holding events it never sent: their numbers are skipped so the control plane counts them as lost");
                }
                info!(
                    first_seq = first,
                    "continuing the event sequence of the last run"
                );
                first
            }
            Err(e) => {
                warn!(file = %self.path.display(), error = %e, "the sequence file is not what this agent writes; ignoring it");
                0
            }
        }
    }

    fn save(&self, saved: &Saved) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = self.path.with_extension("tmp");
        let text = serde_json::to_string(saved).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &self.path)
    }

    /// Writes the counts down every `SAVE_EVERY` while the agent runs.
    pub async fn keep(self, state: Arc<ShipperState>, buffer: Arc<EventBuffer>) {
        let mut last = None;
        let mut warned = false;
        loop {
            let saved = Saved {
                node: self.node.clone(),
                next_seq: state.next_seq.load(Ordering::Relaxed),
                unnumbered: buffer.len() as u64,
            };
            if last.as_ref() != Some(&saved) {
                match self.save(&saved) {
                    Ok(()) => last = Some(saved),
                    Err(e) if !warned => {
                        warned = true;
                        warn!(file = %self.path.display(), error = %e,
                            "cannot write the sequence file: events lost in a crash will not be counted");
                    }
                    Err(_) => {}
                }
            }
            tokio::time::sleep(SAVE_EVERY).await;
        }
    }
}
