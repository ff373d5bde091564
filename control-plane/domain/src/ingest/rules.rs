//! Kernel-event rules: instant, on single kernel events (no baseline needed).
//!
//! - An OOM kill is an incident by itself.
//! - A service whose program cannot be executed (the kernel attributes the failed `execve`
//!   of the child its supervisor placed in the workload) is one too.
//! - So is a service's main process killed by another process's signal: the finding names
//!   the sender (its comm, pid and workload), read in the kernel where the signal was sent.
//!   A stop its own parent asked for (SIGTERM from the supervisor that started it: a
//!   restart, a rollout) is neither a kill nor a crash.
//! - A crash loop: the same workload's root process ended abnormally (fatal signal or
//!   non-zero exit) at least `restarts` times within `window`. Only root processes count: a
//!   shell script whose `grep` exits 1 inside a container is not the container restarting.
//!   And only services count: a crash loop is a long-running process that dies and is
//!   started again, so the workload must have shown a process that ran for `service_uptime`
//!   (or be a container, which a runtime restarts). On a host, where each command is a
//!   workload of its own, `readlink` exiting 1 hundreds of times a minute is a script asking
//!   questions, not a service failing.

use std::{
    collections::{HashMap, VecDeque},
    time::Duration,
};

use crate::{
    entity::EntityId,
    event::{signal_name, EventKind, KernelEvent},
    incident::{
        details::{CrashLoopDetails, ExecFailureDetails, KillDetails, OomKillDetails, TaskSummary},
        Details, EvidenceRef, Finding, Severity,
    },
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashLoopPolicy {
    pub restarts: u32,
    pub window: Duration,
    /// A process that ran this long makes its workload a service.
    pub service_uptime: Duration,
}

impl Default for CrashLoopPolicy {
    fn default() -> Self {
        Self {
            restarts: 3,
            window: Duration::from_secs(60),
            service_uptime: Duration::from_secs(30),
        }
    }
}

/// How long a workload stays a service after its long-running process was last seen.
const SERVICE_MEMORY: Duration = Duration::from_secs(3600);

type WorkloadOnNode = (String, EntityId);

pub struct KernelRules {
    crash_loop: CrashLoopPolicy,
    /// (node, workload) → recent abnormal terminations, oldest first.
    terminations: HashMap<WorkloadOnNode, VecDeque<(i64, EvidenceRef)>>,
    /// (node, workload) → when a process of it that had run `service_uptime` last ended, and
    /// how long that one ran.
    services: HashMap<WorkloadOnNode, (i64, u64)>,
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
            services: HashMap::new(),
        }
    }

    pub fn observe(&mut self, event: &KernelEvent) -> Vec<Finding> {
        match &event.kind {
            EventKind::OomKill { .. } => oom_finding(event).into_iter().collect(),
            EventKind::ExecFailure { .. } if event.workload.is_root_process => {
                let key = (event.node.clone(), event.workload.key.clone());
                if !self.is_service(&key, event) {
                    return Vec::new();
                }
                exec_failure_finding(event).into_iter().collect()
            }
            EventKind::ProcessExit { lifetime_ms, .. } if event.workload.is_root_process => {
                let key = (event.node.clone(), event.workload.key.clone());
                let uptime =
                    u64::try_from(self.crash_loop.service_uptime.as_millis()).unwrap_or(u64::MAX);
                if let Some(ms) = lifetime_ms.filter(|&ms| ms >= uptime) {
                    self.services.insert(key.clone(), (event.time_unix_ns, ms));
                }
                if !event.is_crash() || !self.is_service(&key, event) {
                    return Vec::new();
                }
                let killed = kill_finding(event);
                killed
                    .into_iter()
                    .chain(self.crash_loop_finding(key, event))
                    .collect()
            }
            _ => Vec::new(),
        }
    }

    /// Whether the workload is something meant to keep running: a container (its runtime
    /// restarts it), or one whose process was seen running for `service_uptime`.
    fn is_service(&self, key: &WorkloadOnNode, event: &KernelEvent) -> bool {
        use crate::event::WorkloadKind;
        matches!(
            event.workload.kind,
            WorkloadKind::KubernetesContainer | WorkloadKind::Container
        ) || self.services.contains_key(key)
    }

    fn crash_loop_finding(&mut self, key: WorkloadOnNode, event: &KernelEvent) -> Option<Finding> {
        let window_ns = i64::try_from(self.crash_loop.window.as_nanos()).unwrap_or(i64::MAX);
        let ran_ms = self.services.get(&key).map(|s| s.1);
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
                "{} (pid {}) {}; {count} abnormal exits of the workload's main process within {}s{}",
                event.task.comm,
                event.task.tgid,
                describe_exit(&event.kind),
                self.crash_loop.window.as_secs(),
                ran_ms.map_or(String::new(), |ms| format!(
                    " (before that it had run for {}s)",
                    ms / 1000
                ))
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
                first_exit_unix_ns: recent.front().map(|(t, _)| *t),
            }),
            stages: Vec::new(),
        })
    }

    /// How far apart two findings on one workload may be and still be one episode: the
    /// crash-loop window, the horizon within which repeated terminations are one pattern.
    pub fn episode_gap(&self) -> Duration {
        self.crash_loop.window
    }

    /// Forgets windows with nothing recent, bounding memory.
    pub fn prune(&mut self, now_unix_ns: i64) {
        let window_ns = i64::try_from(self.crash_loop.window.as_nanos()).unwrap_or(i64::MAX);
        self.terminations
            .retain(|_, q| q.back().is_some_and(|(t, _)| now_unix_ns - t <= window_ns));
        let memory_ns = i64::try_from(SERVICE_MEMORY.as_nanos()).unwrap_or(i64::MAX);
        self.services
            .retain(|_, (t, _)| now_unix_ns - *t <= memory_ns.max(window_ns));
    }
}

/// A service's main process killed by another process: one incident naming the sender, even
/// for a single kill (a supervisor restarting it hides it; nobody would know otherwise).
fn kill_finding(event: &KernelEvent) -> Option<Finding> {
    let EventKind::ProcessExit {
        signal: Some(sig),
        killed_by: Some(killer),
        ..
    } = &event.kind
    else {
        return None;
    };
    let w = &event.workload;
    let sender = match &killer.workload {
        Some(k) => format!("{} (pid {}, {k})", killer.comm, killer.pid),
        None => format!("{} (pid {})", killer.comm, killer.pid),
    };
    Some(Finding {
        severity: Severity::Warning,
        node: event.node.clone(),
        workload_key: w.key.clone(),
        title: format!(
            "Killed: {} (pid {}) in {} by {sender} with {}",
            event.task.comm,
            event.task.tgid,
            w.key,
            signal_name(*sig)
        ),
        summary: format!(
            "{sender} sent {} to {} (pid {}), the main process of {}, which died of it",
            signal_name(*sig),
            event.task.comm,
            event.task.tgid,
            w.key
        ),
        time_unix_ns: event.time_unix_ns,
        evidence: vec![EvidenceRef {
            node: event.node.clone(),
            seq: event.seq,
        }],
        details: Details::ProcessKilled(KillDetails {
            pid: event.task.tgid,
            comm: event.task.comm.clone(),
            signal: *sig,
            killed_by: killer.clone(),
            workload: w.clone(),
        }),
        stages: Vec::new(),
    })
}

/// A service that cannot start: its program is missing, not executable or not permitted.
/// (Its failed starts are not crashes: the program never ran.)
fn exec_failure_finding(event: &KernelEvent) -> Option<Finding> {
    let EventKind::ExecFailure {
        filename,
        errno,
        errno_name,
        parent,
    } = &event.kind
    else {
        return None;
    };
    let w = &event.workload;
    let by = parent.as_ref().map_or(String::new(), |p| {
        format!(" (started by {} pid {})", p.comm, p.pid)
    });
    Some(Finding {
        severity: Severity::Critical,
        node: event.node.clone(),
        workload_key: w.key.clone(),
        title: format!("Cannot start: {} in {} fails exec with {errno_name}", filename, w.key),
        summary: format!(
            "execve({filename}) failed with {errno_name} ({errno}){by}: the program never ran, so {} is down until the file is fixed",
            w.key
        ),
        time_unix_ns: event.time_unix_ns,
        evidence: vec![EvidenceRef {
            node: event.node.clone(),
            seq: event.seq,
        }],
        details: Details::ExecFailure(ExecFailureDetails {
            filename: filename.clone(),
            errno: *errno,
            errno_name: errno_name.clone(),
            parent: parent.clone(),
            workload: w.clone(),
        }),
        stages: Vec::new(),
    })
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
                lifetime_ms: Some(50),
                killed_by: None,
            },
        );
        e.workload.is_root_process = root;
        e
    }

    /// The workload's long-running process ending (stopped for a restart, or crashing).
    fn service_ends(
        rules: &mut KernelRules,
        seq: u64,
        t_s: i64,
        workload: &str,
        signal: Option<u32>,
    ) -> Vec<Finding> {
        let mut e = exit(
            seq,
            t_s,
            workload,
            true,
            signal.is_none().then_some(0),
            signal,
        );
        if let EventKind::ProcessExit { lifetime_ms, .. } = &mut e.kind {
            *lifetime_ms = Some(600_000);
        }
        rules.observe(&e)
    }

    #[test]
    fn third_crash_in_window_is_a_loop() {
        let mut rules = KernelRules::new(CrashLoopPolicy::default());
        assert!(service_ends(&mut rules, 1, 0, "w", Some(11)).is_empty());
        assert!(rules
            .observe(&exit(2, 10, "w", true, Some(3), None))
            .is_empty());
        let f = rules.observe(&exit(3, 20, "w", true, Some(1), None));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].kind(), crate::incident::IncidentKind::CrashLoop);
        assert_eq!(f[0].evidence.len(), 3);
        assert!(
            matches!(
                f[0].details,
                Details::CrashLoop(CrashLoopDetails {
                    first_exit_unix_ns: Some(0),
                    ..
                })
            ),
            "the loop began at its first exit: {:?}",
            f[0].details
        );
        assert!(
            f[0].summary.contains("had run for 600s"),
            "{}",
            f[0].summary
        );
    }

    #[test]
    fn a_service_killed_by_another_process_is_one_finding_naming_the_sender() {
        let mut rules = KernelRules::new(CrashLoopPolicy::default());
        let killed = |seq: u64, workload: &str, lifetime_ms: u64| {
            let mut e = exit(seq, 0, workload, true, None, Some(15));
            if let EventKind::ProcessExit {
                lifetime_ms: l,
                killed_by,
                ..
            } = &mut e.kind
            {
                *l = Some(lifetime_ms);
                *killed_by = Some(crate::event::ProcessRef {
                    pid: 4242,
                    comm: "kill".into(),
                    workload: Some("host/kill".into()),
                });
            }
            e
        };
        let f = rules.observe(&killed(1, "svc", 600_000));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].kind(), crate::incident::IncidentKind::ProcessKilled);
        assert_eq!(f[0].severity, Severity::Warning);
        assert!(
            f[0].title
                .contains("by kill (pid 4242, host/kill) with SIGTERM"),
            "{}",
            f[0].title
        );
        // A short command killed (a script's timeout) is not a service going down.
        assert!(rules.observe(&killed(2, "host/curl", 50)).is_empty());
    }

    #[test]
    fn a_stop_its_own_parent_asked_for_is_no_kill_and_no_crash() {
        let mut rules = KernelRules::new(CrashLoopPolicy::default());
        let ended = |seq: u64, t_s: i64, signal: u32, sender: u32| {
            let mut e = exit(seq, t_s, "svc", true, None, Some(signal));
            e.task.ppid = 100;
            if let EventKind::ProcessExit {
                lifetime_ms,
                killed_by,
                ..
            } = &mut e.kind
            {
                *lifetime_ms = Some(600_000);
                *killed_by = Some(crate::event::ProcessRef {
                    pid: sender,
                    comm: "supervisor".into(),
                    workload: None,
                });
            }
            e
        };
        // Restarts and a rollout: the supervisor's SIGTERM, SIGINT or SIGHUP, many in a minute.
        for (i, sig) in [15, 15, 2, 1, 15].into_iter().enumerate() {
            let f = rules.observe(&ended(i as u64, i as i64, sig, 100));
            assert!(f.is_empty(), "orderly stop {sig} made {f:?}");
        }
        // The same SIGTERM from someone else is a kill; SIGKILL is one even from the parent.
        let f = rules.observe(&ended(10, 10, 15, 4242));
        assert_eq!(f[0].kind(), crate::incident::IncidentKind::ProcessKilled);
        let f = rules.observe(&ended(11, 11, 9, 100));
        assert_eq!(f[0].kind(), crate::incident::IncidentKind::ProcessKilled);
        // Only those two count towards a crash loop: one more crash makes three.
        let f = rules.observe(&exit(12, 12, "svc", true, Some(1), None));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].kind(), crate::incident::IncidentKind::CrashLoop);
        assert_eq!(f[0].evidence.len(), 3);
    }

    #[test]
    fn short_commands_failing_are_no_crash_loop_but_a_container_restarting_is() {
        let mut rules = KernelRules::new(CrashLoopPolicy::default());
        for i in 0..300 {
            assert!(
                rules
                    .observe(&exit(
                        i,
                        i as i64 / 10,
                        "host/readlink",
                        true,
                        Some(1),
                        None
                    ))
                    .is_empty(),
                "a command run by a script is not a service"
            );
        }
        let mut restarts = Vec::new();
        for i in 0..3 {
            let mut e = exit(1000 + i, i as i64, "pod/api", true, Some(1), None);
            e.workload.kind = crate::event::WorkloadKind::KubernetesContainer;
            restarts.extend(rules.observe(&e));
        }
        assert_eq!(
            restarts.len(),
            1,
            "a runtime restarts containers: they are services"
        );
    }

    #[test]
    fn clean_exits_children_and_spread_out_crashes_are_not_loops() {
        let mut rules = KernelRules::new(CrashLoopPolicy::default());
        for (i, w) in ["w", "w2", "w3"].iter().enumerate() {
            service_ends(&mut rules, 500 + i as u64, 0, w, None);
        }
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
            ..CrashLoopPolicy::default()
        });
        service_ends(&mut rules, 90, 0, "a", None);
        service_ends(&mut rules, 91, 0, "b", None);
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
        rules.prune(4000 * 1_000_000_000);
        assert!(rules.services.is_empty());
    }
}
