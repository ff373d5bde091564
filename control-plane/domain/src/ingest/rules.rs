//! Kernel-event rules: instant, on single kernel events (no baseline needed).
//!
//! - An OOM kill is an incident by itself.
//! - A crash loop: the same workload's root process ended abnormally (fatal signal or
//!   non-zero exit) at least `restarts` times within `window`. Only root processes count: a
//!   shell script whose `grep` exits 1 inside a container is not the container restarting.

use std::{
    collections::{HashMap, VecDeque},
    time::Duration,
};

use crate::{
    entity::EntityId,
    event::{signal_name, EventKind, KernelEvent},
    incident::{
        details::{CrashLoopDetails, OomKillDetails, TaskSummary},
        Details, EvidenceRef, Finding, Severity,
    },
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashLoopPolicy {
    pub restarts: u32,
    pub window: Duration,
}

impl Default for CrashLoopPolicy {
    fn default() -> Self {
        Self {
            restarts: 3,
            window: Duration::from_secs(60),
        }
    }
}

pub struct KernelRules {
    crash_loop: CrashLoopPolicy,
    /// (node, workload) → recent abnormal terminations, oldest first.
    terminations: HashMap<(String, EntityId), VecDeque<(i64, EvidenceRef)>>,
}

fn describe_exit(kind: &EventKind) -> String {
    match kind {
        EventKind::ProcessExit {
            signal: Some(sig), ..
        } => format!("killed by {} ({sig})", signal_name(*sig)),
        EventKind::ProcessExit {
            exit_code: Some(code),
            ..
        } => format!("exited with code {code}"),
        _ => "ended".into(),
    }
}

impl KernelRules {
    pub fn new(crash_loop: CrashLoopPolicy) -> Self {
        Self {
            crash_loop,
            terminations: HashMap::new(),
        }
    }

    pub fn observe(&mut self, event: &KernelEvent) -> Vec<Finding> {
        match &event.kind {
            EventKind::OomKill { .. } => oom_finding(event).into_iter().collect(),
            EventKind::ProcessExit { .. } if event.is_crash() && event.workload.is_root_process => {
                self.crash_loop_finding(event).into_iter().collect()
            }
            _ => Vec::new(),
        }
    }

    fn crash_loop_finding(&mut self, event: &KernelEvent) -> Option<Finding> {
        let window_ns = i64::try_from(self.crash_loop.window.as_nanos()).unwrap_or(i64::MAX);
        let key = (event.node.clone(), event.workload.key.clone());
        let recent = self.terminations.entry(key).or_default();
        recent.push_back((
            event.time_unix_ns,
            EvidenceRef {
                node: event.node.clone(),
                seq: event.seq,
            },
        ));
        while recent
            .front()
            .is_some_and(|(t, _)| event.time_unix_ns - t > window_ns)
        {
            recent.pop_front();
        }
        let count = recent.len() as u32;
        if count < self.crash_loop.restarts {
            return None;
        }
        let w = &event.workload;
        Some(Finding {
            severity: Severity::Critical,
            node: event.node.clone(),
            workload_key: w.key.clone(),
            title: format!(
                "Crash loop: {} restarted {count} times in {}s",
                w.key,
                self.crash_loop.window.as_secs()
            ),
            summary: format!(
                "{} (pid {}) {}; {count} abnormal exits of the workload's main process within {}s",
                event.task.comm,
                event.task.tgid,
                describe_exit(&event.kind),
                self.crash_loop.window.as_secs()
            ),
            time_unix_ns: event.time_unix_ns,
            evidence: recent.iter().map(|(_, e)| e.clone()).collect(),
            details: Details::CrashLoop(CrashLoopDetails {
                restarts_in_window: count,
                window_secs: self.crash_loop.window.as_secs(),
                last_exit: event.kind.clone(),
                last_pid: event.task.tgid,
                comm: event.task.comm.clone(),
                workload: w.clone(),
            }),
            stages: Vec::new(),
        })
    }

    /// Forgets windows with nothing recent, bounding memory.
    pub fn prune(&mut self, now_unix_ns: i64) {
        let window_ns = i64::try_from(self.crash_loop.window.as_nanos()).unwrap_or(i64::MAX);
        self.terminations
            .retain(|_, q| q.back().is_some_and(|(t, _)| now_unix_ns - t <= window_ns));
    }
}

fn oom_finding(event: &KernelEvent) -> Option<Finding> {
    let EventKind::OomKill {
        victim_pid,
        victim_comm,
        anon_rss_kb,
        ..
    } = &event.kind
    else {
        return None;
    };
    let w = &event.workload;
    Some(Finding {
        severity: Severity::Critical,
        node: event.node.clone(),
        workload_key: w.key.clone(),
        title: format!("OOM kill: {victim_comm} (pid {victim_pid}) in {}", w.key),
        summary: format!(
            "The kernel OOM killer killed {victim_comm} (pid {victim_pid}, {} MiB anonymous RSS) in cgroup {}",
            anon_rss_kb / 1024,
            if w.cgroup_path.is_empty() { "/" } else { &w.cgroup_path }
        ),
        time_unix_ns: event.time_unix_ns,
        evidence: vec![EvidenceRef { node: event.node.clone(), seq: event.seq }],
        details: Details::OomKill(OomKillDetails {
            victim: event.kind.clone(),
            trigger: TaskSummary {
                pid: event.task.tgid,
                comm: event.task.comm.clone(),
            },
            workload: w.clone(),
        }),
        stages: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(
        seq: u64,
        t_s: i64,
        workload: &str,
        root: bool,
        code: Option<i32>,
        signal: Option<u32>,
    ) -> KernelEvent {
        let mut e = crate::synthetic::kernel_event(
            seq,
            t_s * 1_000_000_000,
            workload,
            EventKind::ProcessExit {
                exit_code: code,
                signal,
            },
        );
        e.workload.is_root_process = root;
        e
    }

    #[test]
    fn third_crash_in_window_is_a_loop() {
        let mut rules = KernelRules::new(CrashLoopPolicy::default());
        assert!(rules
            .observe(&exit(1, 0, "w", true, None, Some(11)))
            .is_empty());
        assert!(rules
            .observe(&exit(2, 10, "w", true, Some(3), None))
            .is_empty());
        let f = rules.observe(&exit(3, 20, "w", true, Some(1), None));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].kind(), crate::incident::IncidentKind::CrashLoop);
        assert_eq!(f[0].evidence.len(), 3);
    }

    #[test]
    fn clean_exits_children_and_spread_out_crashes_are_not_loops() {
        let mut rules = KernelRules::new(CrashLoopPolicy::default());
        for (i, t) in [0, 70, 140, 210].iter().enumerate() {
            assert!(rules
                .observe(&exit(i as u64, *t, "w", true, Some(1), None))
                .is_empty());
        }
        for i in 10..20 {
            assert!(
                rules
                    .observe(&exit(i, 300, "w2", true, Some(0), None))
                    .is_empty(),
                "exit 0 is no crash"
            );
            assert!(
                rules
                    .observe(&exit(i + 100, 300, "w3", false, Some(1), None))
                    .is_empty(),
                "children do not count"
            );
        }
    }

    #[test]
    fn workloads_are_counted_separately() {
        let mut rules = KernelRules::new(CrashLoopPolicy {
            restarts: 2,
            window: Duration::from_secs(5),
        });
        assert!(rules
            .observe(&exit(1, 0, "a", true, Some(1), None))
            .is_empty());
        assert!(rules
            .observe(&exit(2, 1, "b", true, Some(1), None))
            .is_empty());
        assert_eq!(
            rules.observe(&exit(3, 2, "a", true, Some(1), None)).len(),
            1
        );
        rules.prune(100 * 1_000_000_000);
        assert!(rules.terminations.is_empty());
    }
}
