//! Attributing decoded kernel events and turning them into wire events.

use vigil_proto::v1;

use crate::{
    attribution::{
        workload::workload_from_cgroup_path, Attribution, CgroupIndex, ProcessTable, WorkloadKind,
    },
    clock::BootClock,
    kernel::decode::{KernelEvent, TaskInfo},
};

fn workload_kind(kind: WorkloadKind) -> v1::WorkloadKind {
    match kind {
        WorkloadKind::Host => v1::WorkloadKind::Host,
        WorkloadKind::KubernetesContainer => v1::WorkloadKind::KubernetesContainer,
        WorkloadKind::Container => v1::WorkloadKind::Container,
        WorkloadKind::SystemdUnit => v1::WorkloadKind::SystemdUnit,
        WorkloadKind::Cgroup => v1::WorkloadKind::Cgroup,
    }
}

fn workload(a: &Attribution) -> v1::Workload {
    wire_workload(&a.workload, a.is_root_process)
}

/// The wire form of a workload.
pub fn wire_workload(w: &crate::attribution::Workload, is_root_process: bool) -> v1::Workload {
    v1::Workload {
        kind: workload_kind(w.kind) as i32,
        key: w.key.clone(),
        pod_uid: w.pod_uid.clone().unwrap_or_default(),
        container_id: w.container_id.clone().unwrap_or_default(),
        container_runtime: w.container_runtime.unwrap_or_default().to_string(),
        systemd_unit: w.systemd_unit.clone().unwrap_or_default(),
        cgroup_path: w.cgroup_path.clone(),
        is_root_process,
    }
}

fn task(t: &TaskInfo, a: Option<&Attribution>) -> v1::Task {
    v1::Task {
        pid: t.pid,
        tgid: t.tgid,
        comm: t.comm.clone(),
        cgroup_id: t.cgroup_id,
        cgroup_path: a.map(|a| a.cgroup_path.clone()).unwrap_or_default(),
        ppid: a.map_or(0, |a| a.ppid),
    }
}

/// Attributes `event` through `table` (keeping the table current) and builds its wire form.
/// The sequence number is assigned later, when the event is first sent.
pub fn enrich(
    event: KernelEvent,
    table: &mut ProcessTable,
    cgroups: &mut CgroupIndex,
    clock: &BootClock,
) -> v1::Event {
    let t = event.task().clone();
    if let KernelEvent::DnsFailure {
        rcode,
        query_id,
        server,
        question,
        ..
    } = event
    {
        return dns_failure(&t, rcode, query_id, server, &question, cgroups, clock);
    }
    // Which process the event is about: the victim of an OOM kill, else the current task.
    let (attribution, kind) = match event {
        KernelEvent::Exec { filename, .. } => {
            let a = table.refresh(t.tgid);
            (a, v1::event::Kind::Exec(v1::ProcessExec { filename }))
        }
        KernelEvent::Exit {
            exit_code,
            signal,
            killed_by,
            ..
        } => {
            // Who sent the fatal signal, and what it belongs to (it is usually alive).
            let killed_by = killed_by.map(|(pid, comm)| {
                let workload = table.lookup(pid).map(|a| workload(&a));
                v1::ProcessRef {
                    pid,
                    comm,
                    workload,
                }
            });
            let a = table.remove(t.tgid);
            // How long it ran: a crash loop is a service dying, not a command finishing.
            let lifetime_ms = a
                .as_ref()
                .filter(|a| a.start_ticks > 0)
                .and_then(|a| crate::attribution::procfs::lifetime_ms(a.start_ticks));
            (
                a,
                v1::event::Kind::Exit(v1::ProcessExit {
                    exit_code,
                    signal,
                    lifetime_ms,
                    killed_by,
                }),
            )
        }
        KernelEvent::Oom { victim, .. } => {
            let a = table.lookup(victim.pid);
            (
                a,
                v1::event::Kind::OomKill(v1::OomKill {
                    victim_pid: victim.pid,
                    victim_comm: victim.comm,
                    victim_uid: victim.uid,
                    total_vm_kb: victim.total_vm_kb,
                    anon_rss_kb: victim.anon_rss_kb,
                    file_rss_kb: victim.file_rss_kb,
                    shmem_rss_kb: victim.shmem_rss_kb,
                    oom_score_adj: victim.oom_score_adj,
                }),
            )
        }
        KernelEvent::ExecFailure {
            errno,
            parent_tgid,
            filename,
            ..
        } => {
            // The child never ran anything: procfs has (had) only the fork. Its cgroup says
            // where it was placed; its parent says who tried to start it.
            let parent = parent_tgid.map(|pid| {
                let workload = table.lookup(pid).map(|a| workload(&a));
                let comm = table.comm(pid).unwrap_or_default().to_string();
                v1::ProcessRef {
                    pid,
                    comm,
                    workload,
                }
            });
            let errno = u32::try_from(errno).unwrap_or(0);
            (
                None,
                v1::event::Kind::ExecFailure(v1::ExecFailure {
                    filename,
                    errno,
                    errno_name: crate::metrics::names::errno_name(errno),
                    parent,
                }),
            )
        }
        KernelEvent::DnsFailure { .. } => unreachable!("handled above"),
    };
    // Gone from procfs before we could look: the kernel's cgroup id still says where it ran.
    // (For an OOM kill that is the charging task, in the same memcg on cgroup v2.) Whether it
    // was the workload's root process is unknown, so it is not counted as a restart.
    let parent_key = match &kind {
        v1::event::Kind::ExecFailure(x) => x
            .parent
            .as_ref()
            .and_then(|p| p.workload.as_ref())
            .map(|w| w.key.clone()),
        _ => None,
    };
    let attribution = attribution.or_else(|| {
        let path = cgroups.resolve(t.cgroup_id)?;
        let workload = workload_from_cgroup_path(&path, &t.comm);
        // A failed exec's child is its workload's root when its parent (who placed it
        // there, like a runtime or supervisor) lives elsewhere.
        let is_root_process = parent_key.as_ref().is_some_and(|k| *k != workload.key);
        Some(Attribution {
            workload,
            cgroup_path: path,
            ppid: 0,
            is_root_process,
            start_ticks: 0,
        })
    });
    let workload = attribution
        .as_ref()
        .map(workload)
        .unwrap_or_else(|| v1::Workload {
            kind: v1::WorkloadKind::Host as i32,
            key: format!("host/{}", t.comm),
            ..Default::default()
        });
    v1::Event {
        seq: 0,
        kernel_time_ns: t.ktime_ns,
        time_unix_ns: clock.to_unix_ns(t.ktime_ns),
        task: Some(task(&t, attribution.as_ref())),
        workload: Some(workload),
        kind: Some(kind),
    }
}

/// A DNS failure has no task (softirq): it belongs to the asking socket's cgroup.
fn dns_failure(
    t: &TaskInfo,
    rcode: u16,
    query_id: u16,
    server: std::net::IpAddr,
    question: &[u8],
    cgroups: &mut CgroupIndex,
    clock: &BootClock,
) -> v1::Event {
    let path = cgroups.resolve(t.cgroup_id).unwrap_or_default();
    let (query_name, query_type) = crate::metrics::names::dns_question(question);
    v1::Event {
        seq: 0,
        kernel_time_ns: t.ktime_ns,
        time_unix_ns: clock.to_unix_ns(t.ktime_ns),
        task: Some(v1::Task {
            cgroup_id: t.cgroup_id,
            cgroup_path: path.clone(),
            ..Default::default()
        }),
        workload: Some(wire_workload(
            &workload_from_cgroup_path(&path, "unknown"),
            false,
        )),
        kind: Some(v1::event::Kind::DnsFailure(v1::DnsFailure {
            rcode: u32::from(rcode),
            rcode_name: crate::metrics::names::rcode_name(rcode).to_string(),
            query_name,
            query_type: query_type.map_or(0, u32::from),
            server: server.to_string(),
            query_id: u32::from(query_id),
        })),
    }
}
