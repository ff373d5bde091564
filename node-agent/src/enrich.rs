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
    let w = &a.workload;
    v1::Workload {
        kind: workload_kind(w.kind) as i32,
        key: w.key.clone(),
        pod_uid: w.pod_uid.clone().unwrap_or_default(),
        container_id: w.container_id.clone().unwrap_or_default(),
        container_runtime: w.container_runtime.unwrap_or_default().to_string(),
        systemd_unit: w.systemd_unit.clone().unwrap_or_default(),
        cgroup_path: w.cgroup_path.clone(),
        is_root_process: a.is_root_process,
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
    // Which process the event is about: the victim of an OOM kill, else the current task.
    let (attribution, kind) = match event {
        KernelEvent::Exec { filename, .. } => {
            let a = table.refresh(t.tgid);
            (a, v1::event::Kind::Exec(v1::ProcessExec { filename }))
        }
        KernelEvent::Exit {
            exit_code, signal, ..
        } => {
            let a = table.remove(t.tgid);
            (
                a,
                v1::event::Kind::Exit(v1::ProcessExit { exit_code, signal }),
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
    };
    // Gone from procfs before we could look: the kernel's cgroup id still says where it ran.
    // (For an OOM kill that is the charging task, in the same memcg on cgroup v2.) Whether it
    // was the workload's root process is unknown, so it is not counted as a restart.
    let attribution = attribution.or_else(|| {
        let path = cgroups.resolve(t.cgroup_id)?;
        Some(Attribution {
            workload: workload_from_cgroup_path(&path, &t.comm),
            cgroup_path: path,
            ppid: 0,
            is_root_process: false,
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
