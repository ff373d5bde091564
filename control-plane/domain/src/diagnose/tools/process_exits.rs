//! `process_exits`: how a workload's processes ended, who killed whom, and whether something
//! started them again. An orderly stop (SIGTERM/SIGINT from another process, as a runtime
//! stops a container) that nothing replaced leaves the workload a replica short; a forced kill
//! by another process is a kill; exits again and again are a crash loop.

use crate::{
    diagnose::{
        ports::Sources,
        taxonomy::FaultClass,
        tool::{EvidenceTool, Observation, Scope, ToolOutput, ToolSpec, Vote},
        window,
    },
    event::{is_stop_signal, signal_name, EventKind, StoredEvent},
    store::StoreError,
};

/// Exits in the window that make a loop (the crash-loop rule's default).
const LOOP_EXITS: usize = 3;
/// How long a stopped replica may take to be started again before it counts as not
/// replaced: a runtime's restart takes seconds, and a diagnosis made the instant after a stop
/// must not call it a shortage.
const REPLACE_GRACE_NS: i64 = 5_000_000_000;

pub struct ProcessExits;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Exit 0.
    Clean,
    /// A non-zero exit, or a fatal signal nobody sent (SIGSEGV, SIGABRT, the OOM killer's).
    Crash,
    /// SIGTERM, SIGINT or SIGHUP from another process: a stop.
    Stopped,
    /// Any other signal another process sent (SIGKILL …).
    Killed,
}

fn ending(e: &StoredEvent) -> Option<Ending> {
    let EventKind::ProcessExit {
        exit_code,
        signal,
        killed_by,
        ..
    } = &e.event.kind
    else {
        return None;
    };
    Some(match (signal, killed_by) {
        (Some(s), Some(_)) if is_stop_signal(*s) => Ending::Stopped,
        (Some(_), Some(_)) => Ending::Killed,
        (Some(_), None) => Ending::Crash,
        (None, _) if exit_code.unwrap_or(0) != 0 => Ending::Crash,
        (None, _) => Ending::Clean,
    })
}

fn describe(e: &StoredEvent, how: Ending) -> String {
    let EventKind::ProcessExit {
        exit_code,
        signal,
        killed_by,
        ..
    } = &e.event.kind
    else {
        return String::new();
    };
    let what = match (signal, exit_code) {
        (Some(s), _) => signal_name(*s).to_string(),
        (None, c) => format!("exit {}", c.unwrap_or(0)),
    };
    let by = killed_by
        .as_ref()
        .map(|k| format!(" from {} ({})", k.comm, k.pid))
        .unwrap_or_default();
    format!(
        "{} ({}) {how:?}: {what}{by}",
        e.event.task.comm, e.event.task.pid
    )
}

impl EvidenceTool for ProcessExits {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "process_exits",
            description: "How an entity's main processes ended in the incident window (clean, crash, stopped, killed, and by whom), and whether they were started again.",
        }
    }

    fn call(&self, sources: &Sources, scope: &Scope) -> Result<ToolOutput, StoreError> {
        let split = window::events(sources, scope, None, true)?;
        let main = |e: &&StoredEvent| e.event.workload.is_root_process;
        let exits: Vec<(&StoredEvent, Ending)> = split
            .during
            .iter()
            .filter(main)
            .filter_map(|e| ending(e).map(|h| (e, h)))
            .collect();
        // A start attempt: an exec of a main process, or one the kernel refused.
        let starts: Vec<i64> = split
            .during
            .iter()
            .filter(main)
            .filter(|e| {
                matches!(
                    e.event.kind,
                    EventKind::ProcessExec { .. } | EventKind::ExecFailure { .. }
                )
            })
            .map(|e| e.event.time_unix_ns)
            .collect();
        let started_after = |t: i64| starts.iter().any(|&s| s > t);
        let last_exit = exits.last().map(|(e, _)| e.event.time_unix_ns);
        let restarted = last_exit.is_some_and(started_after);
        // A loop is restarted after its exits: every one but (perhaps) the newest, whose
        // restart may still be coming.
        let abnormal: Vec<i64> = exits
            .iter()
            .filter(|(_, h)| matches!(h, Ending::Crash | Ending::Killed))
            .map(|(e, _)| e.event.time_unix_ns)
            .collect();
        let restarted_loop = !abnormal.is_empty()
            && abnormal.iter().filter(|&&t| started_after(t)).count() + 1 >= abnormal.len();
        let last_stop = exits
            .iter()
            .filter(|(_, h)| *h == Ending::Stopped)
            .map(|(e, _)| e.event.time_unix_ns)
            .max();
        // Not started again within the grace (a start much later is someone's repair).
        let not_replaced = last_stop.is_some_and(|t| {
            scope.to_unix_ns - t >= REPLACE_GRACE_NS
                && !starts.iter().any(|&s| s > t && s <= t + REPLACE_GRACE_NS)
        });
        let count = |h: Ending| exits.iter().filter(|(_, x)| *x == h).count();
        let (crashes, stopped, killed) = (
            count(Ending::Crash),
            count(Ending::Stopped),
            count(Ending::Killed),
        );
        let mut obs: Vec<Observation> = exits
            .iter()
            .map(|(e, h)| {
                let w = match h {
                    Ending::Killed => 4.0,
                    Ending::Crash => 3.0,
                    Ending::Stopped => 2.0,
                    Ending::Clean => 0.5,
                };
                Observation::new(describe(e, *h), 1.0, "exit").weight(w)
            })
            .collect();
        obs.push(
            Observation::new(
                "started again after the last exit",
                f64::from(u8::from(restarted)),
                "bool",
            )
            .weight(5.0),
        );
        let mut votes = Vec::new();
        if crashes + killed >= LOOP_EXITS && restarted_loop {
            votes.push(Vote::new(
                FaultClass::CrashLoop,
                0.8,
                format!("{} abnormal exits, restarted each time", crashes + killed),
            ));
        } else if killed > 0 {
            votes.push(Vote::new(
                FaultClass::ProcessKilled,
                0.8,
                format!("{killed} main process(es) killed by another process's signal"),
            ));
        } else if stopped > 0 && not_replaced {
            votes.push(Vote::new(
                FaultClass::ReplicaShortage,
                0.7,
                format!(
                    "{stopped} replica(s) stopped on purpose and not replaced in {} s",
                    REPLACE_GRACE_NS / 1_000_000_000
                ),
            ));
        } else if crashes >= LOOP_EXITS {
            votes.push(Vote::new(
                FaultClass::CrashLoop,
                0.6,
                format!("{crashes} crashes in the window"),
            ));
        }
        let summary = format!(
            "{} exits of main processes in the window ({crashes} crashes, {stopped} stops, {killed} kills); {}",
            exits.len(),
            if restarted { "started again" } else if exits.is_empty() { "none ended" } else { "not started again" }
        );
        // A stop still inside its grace is judged again when the grace runs out.
        let revisit = last_stop
            .map(|t| t + REPLACE_GRACE_NS)
            .filter(|&t| t > scope.to_unix_ns);
        Ok(ToolOutput::new("process_exits", scope, summary, obs, votes).revisit_at(revisit))
    }
}
