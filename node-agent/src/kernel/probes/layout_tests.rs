//! The layout reader against a fake tracefs, and the probe table against what it replaced.

use std::path::PathBuf;

use node_agent_common::{FIELD_ABSENT, TUPLE_SOCKADDR, TUPLE_SPLIT};

use super::{
    groups::{read_layouts as read, GroupSpec, GROUPS},
    layout::*,
    spec::{Attach, ProbeGroup, ProbeSpec, Switch},
};

type Fields = &'static [(&'static str, u32)];

/// Field names and sizes of every tracepoint the groups read, as this project's kernels
/// have them (split tuples on the older TCP tracepoints, `sockaddr`s on the newer).
const FIXTURE: &[(&str, &str, Fields)] = &[
    (
        "sched",
        "sched_process_exec",
        &[("filename", 4), ("pid", 4)],
    ),
    (
        "syscalls",
        "sys_enter_exit_group",
        &[("nr", 4), ("error_code", 8)],
    ),
    (
        "signal",
        "signal_deliver",
        &[("sig", 4), ("errno", 4), ("sa_handler", 8)],
    ),
    (
        "syscalls",
        "sys_enter_execve",
        &[("nr", 8), ("filename", 8), ("argv", 8), ("envp", 8)],
    ),
    ("syscalls", "sys_exit_execve", &[("nr", 8), ("ret", 8)]),
    (
        "sched",
        "sched_process_fork",
        &[
            ("parent_comm", 4),
            ("parent_pid", 4),
            ("child_comm", 4),
            ("child_pid", 4),
        ],
    ),
    (
        "signal",
        "signal_generate",
        &[
            ("sig", 4),
            ("errno", 4),
            ("code", 4),
            ("comm", 16),
            ("pid", 4),
            ("group", 4),
            ("result", 4),
        ],
    ),
    (
        "sched",
        "sched_process_exit",
        &[("comm", 16), ("pid", 4), ("group_dead", 1)],
    ),
    ("oom", "mark_victim", OOM),
    ("sock", "inet_sock_set_state", STATE),
    ("tcp", "tcp_retransmit_skb", RETRANSMIT),
    ("tcp", "tcp_receive_reset", SPLIT_TUPLE),
    ("tcp", "tcp_send_reset", &[("saddr", 28), ("daddr", 28)]),
    (
        "tcp",
        "tcp_probe",
        &[("saddr", 28), ("daddr", 28), ("srtt", 4)],
    ),
    ("raw_syscalls", "sys_enter", &[("id", 8), ("args", 48)]),
    ("raw_syscalls", "sys_exit", &[("id", 8), ("ret", 8)]),
    ("sched", "sched_switch", SWITCH),
    ("sched", "sched_wakeup", &[("comm", 16), ("pid", 4)]),
    ("sched", "sched_wakeup_new", &[("comm", 16), ("pid", 4)]),
    ("block", "block_rq_issue", &[("dev", 4), ("sector", 8)]),
    ("block", "block_rq_complete", &[("dev", 4), ("sector", 8)]),
    ("syscalls", "sys_enter_read", IO),
    ("syscalls", "sys_enter_write", IO),
    ("syscalls", "sys_enter_readv", IO),
    ("syscalls", "sys_enter_writev", IO),
    ("syscalls", "sys_enter_sendto", IO),
    ("syscalls", "sys_enter_recvfrom", IO),
    ("syscalls", "sys_enter_sendmsg", IO),
    ("syscalls", "sys_enter_recvmsg", IO),
];
/// `__syscall_nr`, then the arguments, `fd` first.
const IO: Fields = &[("__syscall_nr", 8), ("fd", 8), ("buf", 8)];
const OOM: Fields = &[
    ("pid", 4),
    ("comm", 4),
    ("total_vm", 8),
    ("anon_rss", 8),
    ("file_rss", 8),
    ("shmem_rss", 8),
    ("uid", 4),
    ("pgtables", 8),
    ("oom_score_adj", 2),
];
const SPLIT_TUPLE: Fields = &[
    ("skbaddr", 8),
    ("sport", 2),
    ("dport", 2),
    ("family", 2),
    ("saddr", 4),
    ("daddr", 4),
    ("saddr_v6", 16),
    ("daddr_v6", 16),
];
/// As 6.x has it: the socket and its state before the split tuple.
const RETRANSMIT: Fields = &[
    ("skbaddr", 8),
    ("skaddr", 8),
    ("state", 4),
    ("sport", 2),
    ("dport", 2),
    ("family", 2),
    ("saddr", 4),
    ("daddr", 4),
    ("saddr_v6", 16),
    ("daddr_v6", 16),
];
const STATE: Fields = &[
    ("oldstate", 4),
    ("newstate", 4),
    ("sport", 2),
    ("dport", 2),
    ("family", 2),
    ("protocol", 2),
    ("saddr", 4),
    ("daddr", 4),
    ("saddr_v6", 16),
    ("daddr_v6", 16),
];
const SWITCH: Fields = &[
    ("prev_comm", 16),
    ("prev_pid", 4),
    ("prev_state", 8),
    ("next_pid", 4),
];

/// Offsets as the fixture lays them out: after the 8-byte common header, in order.
fn offset_of(fields: &[(&str, u32)], name: &str) -> u32 {
    let mut offset = 8;
    for (field, size) in fields {
        if *field == name {
            return offset;
        }
        offset += size;
    }
    panic!("{name} is not in the fixture");
}

fn fixture_offset(category: &str, name: &str, field: &str) -> u32 {
    let (_, _, fields) = FIXTURE
        .iter()
        .find(|(c, n, _)| *c == category && *n == name)
        .expect("tracepoint in the fixture");
    offset_of(fields, field)
}

/// A tracefs with the fixture's format files, minus `skip` (`category:name`).
fn fake_tracefs(skip: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (category, name, fields) in FIXTURE {
        if skip.contains(&format!("{category}:{name}").as_str()) {
            continue;
        }
        let mut text = format!(
            "name: {name}\nID: 1\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n"
        );
        let mut offset = 8;
        for (field, size) in *fields {
            text += &format!("\tfield:int {field};\toffset:{offset};\tsize:{size};\tsigned:0;\n");
            offset += size;
        }
        let path: PathBuf = dir.path().join("events").join(category).join(name);
        std::fs::create_dir_all(&path).expect("mkdir");
        std::fs::write(path.join("format"), text).expect("write format");
    }
    dir
}

#[test]
fn every_group_reads_only_the_tracepoints_it_attaches_to() {
    let tracefs = fake_tracefs(&[]);
    let (layouts, failed) = read(tracefs.path(), GROUPS).expect("process layout");
    assert!(failed.is_empty(), "{failed:?}");
    let p = layouts.process;
    assert_eq!(
        p.exec_filename,
        fixture_offset("sched", "sched_process_exec", "filename")
    );
    assert_eq!(
        p.exit_group_code,
        fixture_offset("syscalls", "sys_enter_exit_group", "error_code")
    );
    assert_eq!(
        p.process_exit_group_dead,
        fixture_offset("sched", "sched_process_exit", "group_dead")
    );
    assert_eq!(
        p.signal_sa_handler,
        fixture_offset("signal", "signal_deliver", "sa_handler")
    );
    assert_eq!(
        p.execve_ret,
        fixture_offset("syscalls", "sys_exit_execve", "ret")
    );
    assert_eq!(
        p.fork_child_pid,
        fixture_offset("sched", "sched_process_fork", "child_pid")
    );
    assert_eq!(
        p.generate_pid,
        fixture_offset("signal", "signal_generate", "pid")
    );
    assert_eq!(
        p.oom_score_adj,
        fixture_offset("oom", "mark_victim", "oom_score_adj")
    );
    let t = layouts.telemetry;
    assert_eq!(t.state.mode, TUPLE_SPLIT);
    assert_eq!(
        t.state.family,
        fixture_offset("sock", "inet_sock_set_state", "family")
    );
    assert_eq!(
        t.state_new,
        fixture_offset("sock", "inet_sock_set_state", "newstate")
    );
    assert_eq!(t.retransmit.mode, TUPLE_SPLIT);
    assert_eq!(t.send_reset.mode, TUPLE_SOCKADDR);
    assert_eq!(
        t.send_reset.daddr,
        fixture_offset("tcp", "tcp_send_reset", "daddr")
    );
    assert_eq!(t.probe.mode, TUPLE_SOCKADDR);
    assert_eq!(t.probe_srtt, fixture_offset("tcp", "tcp_probe", "srtt"));
    assert_eq!(
        t.switch_prev_state,
        fixture_offset("sched", "sched_switch", "prev_state")
    );
    assert_eq!(
        t.switch_next_pid,
        fixture_offset("sched", "sched_switch", "next_pid")
    );
    assert_eq!(t.wakeup_pid, fixture_offset("sched", "sched_wakeup", "pid"));
    assert_eq!(
        t.rq_complete_sector,
        fixture_offset("block", "block_rq_complete", "sector")
    );
    assert_eq!(t.io_fd, fixture_offset("syscalls", "sys_enter_read", "fd"));
}

#[test]
fn io_syscalls_whose_fd_moved_disable_only_the_tls_group() {
    let tracefs = fake_tracefs(&[]);
    let format = tracefs
        .path()
        .join("events/syscalls/sys_enter_recvmsg/format");
    let text = std::fs::read_to_string(&format).expect("read");
    std::fs::write(
        &format,
        text.replace("int fd;\toffset:16;", "int fd;\toffset:24;"),
    )
    .expect("write");
    let (layouts, failed) = read(tracefs.path(), GROUPS).expect("process layout");
    assert!(
        matches!(
            failed.get(&ProbeGroup::Tls).map(AsRef::as_ref),
            Some(LayoutError::Mismatch {
                tracepoint: "sys_enter_recvmsg",
                offset: 24,
                expected: 16,
                ..
            })
        ),
        "{failed:?}"
    );
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(layouts.telemetry.io_fd, FIELD_ABSENT);
}

#[test]
fn a_missing_telemetry_tracepoint_disables_only_its_group() {
    let tracefs = fake_tracefs(&["block:block_rq_complete"]);
    let (layouts, failed) = read(tracefs.path(), GROUPS).expect("process layout");
    assert_eq!(failed.keys().collect::<Vec<_>>(), [&ProbeGroup::BlockIo]);
    let error = vigil_config_file::error_chain(failed[&ProbeGroup::BlockIo].as_ref());
    assert!(
        error.contains("block:block_rq_complete does not exist"),
        "{error}"
    );
    // None of the failed group's offsets are kept, even those it could read.
    assert_eq!(layouts.telemetry.rq_issue_dev, FIELD_ABSENT);
    assert_eq!(layouts.telemetry.rq_complete_dev, FIELD_ABSENT);
    assert_ne!(layouts.telemetry.wakeup_pid, FIELD_ABSENT);
    assert_ne!(layouts.telemetry.probe_srtt, FIELD_ABSENT);
}

#[test]
fn a_missing_process_tracepoint_stops_the_agent() {
    let tracefs = fake_tracefs(&["oom:mark_victim"]);
    let err = read(tracefs.path(), GROUPS).expect_err("the process group is required");
    assert!(err.to_string().contains("oom:mark_victim"), "{err}");
}

#[test]
fn wakeup_layouts_that_differ_disable_the_run_queue_group() {
    let tracefs = fake_tracefs(&[]);
    let format = tracefs.path().join("events/sched/sched_wakeup_new/format");
    let text = std::fs::read_to_string(&format).expect("read");
    std::fs::write(
        &format,
        text.replace("int pid;\toffset:24;", "int pid;\toffset:28;"),
    )
    .expect("write");
    let (_, failed) = read(tracefs.path(), GROUPS).expect("process layout");
    assert!(
        matches!(
            failed.get(&ProbeGroup::RunQueue).map(AsRef::as_ref),
            Some(LayoutError::Mismatch {
                offset: 28,
                expected: 24,
                ..
            })
        ),
        "{failed:?}"
    );
    assert_eq!(failed.len(), 1, "{failed:?}");
}

#[test]
fn reading_an_undeclared_tracepoint_is_refused() {
    let tracefs = fake_tracefs(&[]);
    let group = GroupSpec {
        group: ProbeGroup::BlockIo,
        switch: Some(Switch {
            key: "telemetry.block_io",
            enabled: |_| true,
        }),
        probes: &[ProbeSpec {
            program: "vigil_block_rq_issue",
            attach: Attach::Tracepoint {
                category: "block",
                name: "block_rq_issue",
            },
        }],
        layout: |f, l| {
            l.telemetry.rq_complete_dev = f.get("block", "block_rq_complete")?.offset("dev")?;
            Ok(())
        },
    };
    let (_, failed) = read(tracefs.path(), &[group]).expect("optional group");
    assert!(
        matches!(
            failed.get(&ProbeGroup::BlockIo).map(AsRef::as_ref),
            Some(LayoutError::Undeclared { tracepoint, .. }) if tracepoint == "block:block_rq_complete"
        ),
        "{failed:?}"
    );
}
