//! Workload logs from files named in the config (`[diagnosis.logs]`): the newest lines, read
//! from the file's end so a large log costs one bounded read. A line that starts with an
//! RFC 3339 timestamp (`2026-12-04T21:40:00.123Z …`, as most loggers and `kubectl logs
//! --timestamps` write) is dated by it; an undated one by the next dated line after it.

use std::{
    collections::BTreeMap,
    io::{Read, Seek, SeekFrom},
    path::PathBuf,
};

use crate::domain::{diagnose::ports::LogSource, entity::EntityId, store::StoreError};

/// How much of a file's end is read at most.
const TAIL_BYTES: u64 = 256 * 1024;

pub struct FileLogs {
    files: BTreeMap<String, PathBuf>,
}

impl FileLogs {
    pub fn new(files: BTreeMap<String, PathBuf>) -> Self {
        Self { files }
    }
}

impl LogSource for FileLogs {
    fn tail(
        &self,
        entity: &EntityId,
        since_unix_ns: i64,
        max_lines: usize,
    ) -> Result<Vec<String>, StoreError> {
        let Some(path) = self.files.get(entity.as_str()) else {
            return Ok(Vec::new());
        };
        let mut file = std::fs::File::open(path)
            .map_err(|e| StoreError::backend("opening a workload's log file", e))?;
        let len = file
            .metadata()
            .map_err(|e| StoreError::backend("reading a log file's size", e))?
            .len();
        file.seek(SeekFrom::Start(len.saturating_sub(TAIL_BYTES)))
            .map_err(|e| StoreError::backend("seeking in a log file", e))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| StoreError::backend("reading a log file", e))?;
        let text = String::from_utf8_lossy(&bytes);
        let mut lines: Vec<&str> = text.lines().collect();
        // The first line may be cut by the seek.
        if len > TAIL_BYTES && !lines.is_empty() {
            lines.remove(0);
        }
        // A log is written in order: an undated line (a child's stderr, a stack trace) is no
        // newer than the next dated line after it, so it goes with that line; one after the
        // last dated line may be new and stays.
        let mut next_dated: Option<i64> = None;
        let mut keep = vec![false; lines.len()];
        for (i, l) in lines.iter().enumerate().rev() {
            if let Some(t) = dated(l) {
                next_dated = Some(t);
            }
            keep[i] = next_dated.is_none_or(|t| t >= since_unix_ns);
        }
        let mut lines: Vec<String> = lines
            .into_iter()
            .zip(keep)
            .filter(|(_, k)| *k)
            .map(|(l, _)| l.to_string())
            .collect();
        let skip = lines.len().saturating_sub(max_lines);
        Ok(lines.split_off(skip))
    }
}

/// The time a line starts with, if it starts with an RFC 3339 timestamp.
pub(crate) fn dated(line: &str) -> Option<i64> {
    let first = line.split_whitespace().next()?;
    let at: jiff::Timestamp = first.parse().ok()?;
    i64::try_from(at.as_nanosecond()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_lines_of_the_entitys_file_and_nothing_for_others() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("app.log");
        let text: String = (0..500).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, text).expect("write");
        let logs = FileLogs::new(BTreeMap::from([("cgroup/app".to_string(), path)]));
        let got = logs.tail(&EntityId::new("cgroup/app"), 0, 3).expect("tail");
        assert_eq!(got, vec!["line 497", "line 498", "line 499"]);
        assert!(logs
            .tail(&EntityId::new("cgroup/other"), 0, 3)
            .expect("none")
            .is_empty());
    }

    #[test]
    fn a_missing_file_is_an_error_naming_what_failed() {
        let logs = FileLogs::new(BTreeMap::from([(
            "cgroup/app".to_string(),
            PathBuf::from("/nonexistent/app.log"),
        )]));
        let err = logs
            .tail(&EntityId::new("cgroup/app"), 0, 3)
            .expect_err("missing");
        assert!(err.to_string().contains("log file"), "{err}");
    }

    /// The lines of a log holding `text` that count from 21:04 on, as the tool reads them.
    fn tail_since_2104(text: &str) -> Vec<String> {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("app.log");
        std::fs::write(&path, text).expect("write");
        let logs = FileLogs::new(BTreeMap::from([("cgroup/app".to_string(), path)]));
        let since: jiff::Timestamp = "2026-12-04T21:04:00Z".parse().expect("time");
        let since = i64::try_from(since.as_nanosecond()).expect("fits");
        logs.tail(&EntityId::new("cgroup/app"), since, 10)
            .expect("tail")
    }

    #[test]
    fn undated_lines_go_with_the_next_dated_line_and_the_trailing_ones_stay() {
        let got = tail_since_2104(
            "setpriv: failed to execute /srv/app: Permission denied\n\
             2026-12-04T21:00:00Z request failed: upstream timed out\n\
             2026-12-04T21:05:00Z request failed: connection reset\n\
             panic: index out of range\n",
        );
        assert_eq!(
            got,
            vec![
                "2026-12-04T21:05:00Z request failed: connection reset",
                "panic: index out of range"
            ],
            "the old fault's undated line is as old as the line after it"
        );
    }

    #[test]
    fn lines_dated_before_the_window_are_left_out_undated_ones_kept() {
        let got = tail_since_2104(
            "2026-12-04T21:00:00Z request failed: permission denied\n\
             starting up\n\
             2026-12-04T21:05:00.250Z request failed: token expired 60s ago\n",
        );
        assert_eq!(
            got,
            vec![
                "starting up",
                "2026-12-04T21:05:00.250Z request failed: token expired 60s ago"
            ]
        );
    }
}
