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
    event::{signal_name, EventKind, StoredEvent},
    store::StoreError,
};

/// Exits in the window that make a loop (the crash-loop rule's default).
const LOOP_EXITS: usize = 3;

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
        (Some(1 | 2 | 15), Some(_)) => Ending::Stopped,
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
    format!("{} ({}) {how:?}: {what}{by}", e.event.task.comm, e.event.task.pid)
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
        let last_exit = exits.last().map(|(e, _)| e.event.time_unix_ns);
        let restarted = last_exit.is_some_and(|t| {
            split.during.iter().filter(main).any(|e| {
                e.event.time_unix_ns > t && matches!(e.event.kind, EventKind::ProcessExec { .. })
            })
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
            Observation::new("started again after the last exit", f64::from(u8::from(restarted)), "bool")
                .weight(5.0),
        );
        let mut votes = Vec::new();
        if crashes + killed >= LOOP_EXITS && restarted {
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
        } else if stopped > 0 && !restarted {
            votes.push(Vote::new(
                FaultClass::ReplicaShortage,
                0.7,
                format!("{stopped} replica(s) stopped on purpose and not replaced"),
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
        Ok(ToolOutput::new("process_exits", scope, summary, obs, votes))
    }
}
