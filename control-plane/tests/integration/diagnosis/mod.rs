//! The diagnose use case over the real SQLite store: kernel events and metric intervals go
//! in as the agent would send them, incidents open as ingest and detection open them, and the
//! evidence tools' votes must name the fault class — or, when the evidence disagrees, send
//! the incident to a human's review instead of remediation.

use crate::support::diagnosis_lab::{Lab, APP, APP_IP, REDIS, REDIS_IP, SECOND, WEB};

use control_plane::domain::{
    diagnose::{ports::DiagnosisStore, Diagnosis, DiagnosisPolicy, FaultClass, Route},
    entity::EntityId,
    event::{EventKind, KernelEvent, ProcessRef},
    incident::{
        ports::{IncidentChange, IncidentQuery, IncidentStore},
        Incident,
    },
    interval::{
        Endpoint, ErrnoCount, FlowCounts, FlowObservation, FlowRole, Histogram, Protocol,
        RequestObservation, StatusCount, SyscallObservation,
    },
    observe::Observer,
    synthetic::{kernel_event, oom_kill, workload},
};

mod dependencies;

fn openat(key: &str, calls: u64, eacces: u64) -> SyscallObservation {
    failing(key, (257, "openat"), calls, (13, "EACCES"), eacces)
}

/// `calls` of one syscall by `key`, `count` of them failing with `errno`.
fn failing(
    key: &str,
    (nr, name): (u32, &str),
    calls: u64,
    (errno, errno_name): (u32, &str),
    count: u64,
) -> SyscallObservation {
    SyscallObservation {
        workload: workload(key),
        nr,
        name: name.into(),
        errors: count,
        errors_by_errno: if count == 0 {
            Vec::new()
        } else {
            vec![ErrnoCount {
                errno,
                name: errno_name.into(),
                count,
            }]
        },
        latency: Histogram {
            count: calls,
            ..Histogram::default()
        },
    }
}

fn redis_requests(requests: u64, code: Option<&str>) -> RequestObservation {
    calls(WEB, REDIS_IP, 6379, Protocol::Redis, requests, code)
}

/// `requests` calls from `client` to the server at `server_ip:port`, all answered `code`
/// when one is given (and then failed), else fine.
fn calls(
    client: &str,
    server_ip: &str,
    port: u16,
    protocol: Protocol,
    requests: u64,
    code: Option<&str>,
) -> RequestObservation {
    let failing = if code.is_some() { requests } else { 0 };
    RequestObservation {
        workload: workload(client),
        role: FlowRole::Client,
        local: Endpoint {
            ip: "10.0.0.2".parse().expect("ip"),
            port: 40_000,
        },
        remote: Endpoint {
            ip: server_ip.parse().expect("ip"),
            port,
        },
        protocol,
        requests,
        responses: requests,
        errors: failing,
        client_errors: 0,
        timeouts: 0,
        closed_pending: 0,
        pipelined: 0,
        unparsed: 0,
        statuses: code
            .map(|c| {
                vec![StatusCount {
                    code: c.into(),
                    count: requests,
                }]
            })
            .unwrap_or_default(),
        latency: Histogram::default(),
        stuck: 0,
        tls: false,
        error_samples: Vec::new(),
    }
}

fn exit(seq: u64, t: i64, key: &str, signal: u32, by: Option<&str>) -> KernelEvent {
    kernel_event(
        seq,
        t,
        key,
        EventKind::ProcessExit {
            exit_code: None,
            signal: Some(signal),
            lifetime_ms: Some(600_000),
            killed_by: by.map(|comm| ProcessRef {
                pid: 77,
                comm: comm.into(),
                workload: None,
            }),
        },
    )
}

fn assert_class(d: &Diagnosis, class: FaultClass, route: Route) {
    assert_eq!(
        (d.class, d.route),
        (Some(class), route),
        "confidence {:.2}; votes: {:#?}",
        d.confidence,
        d.breakdown
    );
}

#[test]
fn a_file_that_turned_unreadable_is_a_permission_fault_confident_enough_to_act_on() {
    let mut lab = Lab::new();
    lab.intervals(-70, 0, |t, i| {
        i.syscalls
            .push(openat(APP, 20, if t >= -8 { 20 } else { 0 }));
    });
    let incident = lab.anomaly(APP, -8);
    let d = lab.diagnose(&incident);
    assert_class(&d, FaultClass::PermissionDenied, Route::Remediation);
    assert!(d.explanation.contains("EACCES"), "{}", d.explanation);
    assert!(!d.recommended_actions.is_empty());
}

#[test]
fn eperm_on_sends_is_a_firewall_dropping_packets_not_a_permission_fault() {
    let mut lab = Lab::new();
    // nft/iptables `drop` on output: the sender's sendmmsg/sendto get EPERM.
    lab.intervals(-70, 0, |t, i| {
        let dropped = if t >= -8 { 2 } else { 0 };
        i.syscalls
            .push(failing(APP, (307, "sendmmsg"), 10, (1, "EPERM"), dropped));
    });
    let d = lab.diagnose(&lab.anomaly(APP, -8));
    assert_ne!(
        d.class,
        Some(FaultClass::PermissionDenied),
        "{:#?}",
        d.breakdown
    );
    let errno = d
        .breakdown
        .iter()
        .find(|b| b.voter == "errno_profile")
        .expect("errno_profile voted");
    assert_eq!(errno.class, Some(FaultClass::NetworkLoss), "{errno:#?}");
    assert!(errno.reason.contains("firewall"), "{}", errno.reason);
}

/// APP's calls to redis: answered until 6 s ago, then every few seconds a connect that times
/// out (a client with a connect timeout, cut off), and nothing back.
fn cut_off_from_redis(lab: &mut Lab) {
    lab.intervals(-70, 0, |t, i| {
        let counts = match t {
            ..-6 => FlowCounts {
                connects: 5,
                established: 5,
                bytes_received: 10_000,
                ..FlowCounts::default()
            },
            -6 | -5 | -2 => FlowCounts {
                connects: 1,
                failed: 1,
                ..FlowCounts::default()
            },
            _ => return,
        };
        i.flows
            .push(client_flow((APP, APP_IP), (REDIS_IP, 6379), counts));
    });
}

/// `client`'s connections (from its address `client_ip`) to the server at `server_ip:port`.
fn client_flow(
    (client, client_ip): (&str, &str),
    (server_ip, port): (&str, u16),
    counts: FlowCounts,
) -> FlowObservation {
    FlowObservation {
        workload: workload(client),
        role: FlowRole::Client,
        local: Endpoint {
            ip: client_ip.parse().expect("ip"),
            port: 40_000,
        },
        remote: Endpoint {
            ip: server_ip.parse().expect("ip"),
            port,
        },
        process: client.rsplit('/').next().unwrap_or(client).into(),
        counts,
    }
}

#[test]
fn a_symptom_the_detector_confirmed_windows_later_is_judged_from_when_it_began() {
    // The detector fired 3 s in (three 1 s windows in a row): the first timeouts came before
    // its first anomalous window, and belong to the symptom, not to the lead before it.
    let policy = |onset_slack_ns| DiagnosisPolicy {
        onset_slack_ns,
        tick_budget_ns: i64::MAX,
        ..DiagnosisPolicy::default()
    };
    let mut lab = Lab::with_policy(policy(3 * SECOND));
    cut_off_from_redis(&mut lab);
    let d = lab.diagnose(&lab.anomaly(APP, -3));
    assert_class(&d, FaultClass::Partition, Route::Remediation);
    // Judged from the first anomalous window's start only, two timeouts are too few to call
    // the peer cut off.
    let mut lab = Lab::with_policy(policy(SECOND));
    cut_off_from_redis(&mut lab);
    let d = lab.diagnose(&lab.anomaly(APP, -3));
    assert_ne!(d.class, Some(FaultClass::Partition), "{:#?}", d.breakdown);
}

#[test]
fn redis_refusing_the_password_is_a_credential_fault_not_a_dependency_error() {
    let mut lab = Lab::new();
    lab.intervals(-70, 0, |t, i| {
        let code = (t >= -6).then_some("WRONGPASS");
        i.requests.push(redis_requests(30, code));
    });
    let incident = lab.anomaly(WEB, -6);
    let d = lab.diagnose(&incident);
    assert_class(&d, FaultClass::CredentialFailure, Route::Remediation);
    let edge = d
        .breakdown
        .iter()
        .find(|b| b.voter == "edge_stats")
        .expect("edge_stats voted");
    assert!(edge.reason.contains(REDIS), "{}", edge.reason);
}

#[test]
fn a_kill_by_another_process_and_a_stop_nobody_replaced_are_told_apart() {
    let mut lab = Lab::new();
    let (now, kill_seq, stop_seq) = (lab.now, lab.next_seq(), lab.next_seq());
    let killed = lab.events(vec![exit(kill_seq, now - 8 * SECOND, APP, 9, Some("kill"))]);
    assert_eq!(killed.len(), 1, "a kill opens an incident");
    assert_class(
        &lab.diagnose(&killed[0]),
        FaultClass::ProcessKilled,
        Route::Remediation,
    );

    let stopped = lab.events(vec![exit(
        stop_seq,
        now - 6 * SECOND,
        WEB,
        15,
        Some("kubelet"),
    )]);
    assert_eq!(stopped.len(), 1, "a stop of a service opens an incident");
    // The instant after the stop, a restart may still be coming: no shortage yet.
    lab.clock.set(now - 5 * SECOND);
    let early = lab.diagnose(&stopped[0]);
    assert_ne!(
        early.class,
        Some(FaultClass::ReplicaShortage),
        "{:#?}",
        early.breakdown
    );
    lab.clock.set(now);
    assert_class(
        &lab.diagnose(&stopped[0]),
        FaultClass::ReplicaShortage,
        Route::Remediation,
    );
}

fn exec(seq: u64, t: i64, key: &str) -> KernelEvent {
    kernel_event(
        seq,
        t,
        key,
        EventKind::ProcessExec {
            filename: "/srv/app/bin".into(),
        },
    )
}

fn crash(seq: u64, t: i64, key: &str) -> KernelEvent {
    kernel_event(
        seq,
        t,
        key,
        EventKind::ProcessExit {
            exit_code: Some(1),
            signal: None,
            lifetime_ms: Some(300),
            killed_by: None,
        },
    )
}

/// A start of the app at each of `starts` (seconds from now) that crashes 0.3 s later, each
/// delivered half a second after it began.
fn failing_starts(lab: &mut Lab, starts: &[i64]) {
    for &s in starts {
        let at = lab.now + s * SECOND;
        lab.clock.set(at + SECOND / 2);
        let (a, b) = (lab.next_seq(), lab.next_seq());
        lab.events(vec![
            exec(a, at + SECOND / 10, APP),
            crash(b, at + 4 * SECOND / 10, APP),
        ]);
    }
}

fn open_crash_loop(lab: &Lab) -> Incident {
    lab.store
        .list(&IncidentQuery::open(10))
        .expect("list")
        .into_iter()
        .find(|i| i.kind.as_str() == "crash_loop")
        .expect("the restarts open a crash loop")
}

#[test]
fn a_crash_loop_diagnosed_the_moment_it_opens_sees_every_exit_that_made_it() {
    let mut lab = Lab::new();
    let now = lab.now;
    lab.intervals(-70, 0, |_, i| i.syscalls.push(openat(APP, 20, 0)));
    // Someone kills the long-running process (an incident of its own)...
    lab.clock.set(now - 5 * SECOND);
    let seq = lab.next_seq();
    lab.events(vec![exit(seq, now - 5 * SECOND, APP, 9, Some("chaos"))]);
    // ...and both starts since crash: the third abnormal exit in a minute makes a loop.
    failing_starts(&mut lab, &[-4, -2]);
    // Diagnosed at once, a tenth of a second after the exit that made it a loop. The kill's
    // incident bounds the window from before, but the loop began at the kill: the window must
    // reach back to it, or it sees two crashes and no loop.
    let looping = open_crash_loop(&lab);
    let d = lab.diagnose(&looping);
    let exits = d
        .evidence
        .iter()
        .find(|o| o.tool == "process_exits")
        .expect("process_exits ran");
    assert!(
        exits.summary.contains("2 crashes, 0 stops, 1 kills"),
        "{}",
        exits.summary
    );
    assert_eq!(d.class, Some(FaultClass::CrashLoop), "{:#?}", d.breakdown);
}

#[test]
fn errors_every_start_repeats_do_not_turn_a_crash_loop_into_a_permission_fault() {
    let mut lab = Lab::new();
    let now = lab.now;
    // Each start probes paths it may not read (EACCES), then the process exits 1 on a bad
    // config. The interval ending at t covers (t-1, t].
    let starts = [-8, -6, -4, -2];
    lab.intervals(-70, 0, |t, i| {
        let eacces = if starts.contains(&(t - 1)) { 38 } else { 0 };
        i.syscalls.push(openat(APP, 20 + eacces, eacces));
    });
    // The running process is stopped to load the new config...
    lab.clock.set(now - 9 * SECOND);
    let seq = lab.next_seq();
    lab.events(vec![exit(
        seq,
        now - 9 * SECOND,
        APP,
        15,
        Some("supervisor"),
    )]);
    // ...and every start since fails.
    failing_starts(&mut lab, &starts);
    lab.clock.set(now);
    let looping = open_crash_loop(&lab);
    let d = lab.diagnose(&looping);
    assert_eq!(d.class, Some(FaultClass::CrashLoop), "{:#?}", d.breakdown);
    assert_eq!(
        d.route,
        Route::Remediation,
        "nothing disagrees: {:#?}",
        d.breakdown
    );
    let errno = d
        .evidence
        .iter()
        .find(|o| o.tool == "errno_profile")
        .expect("errno_profile ran");
    assert!(
        errno.votes.is_empty(),
        "start-up errors vote for no cause: {errno:#?}"
    );
    let eacces = errno
        .observations
        .iter()
        .find(|o| o.what.starts_with("EACCES"))
        .expect("the EACCES are reported");
    assert!(
        eacces.detail.contains("process starts"),
        "as start-up errors: {eacces:#?}"
    );
}

#[test]
fn witnesses_that_contradict_each_other_send_the_incident_to_review() {
    let mut lab = Lab::new();
    lab.intervals(-70, 0, |t, i| {
        i.syscalls
            .push(openat(APP, 20, if t >= -8 { 20 } else { 0 }));
    });
    let seq = lab.next_seq();
    lab.events(vec![oom_kill(seq, lab.now - 3 * SECOND, APP)]);
    let incident = lab.anomaly(APP, -8);
    let d = lab.diagnose(&incident);
    assert_eq!(d.route, Route::Review, "{d:#?}");
    assert!(d.confidence < d.gate);
    let disagreeing = d
        .breakdown
        .iter()
        .filter(|b| b.class.is_some() && !b.agrees)
        .count();
    assert!(
        disagreeing >= 1,
        "the breakdown shows who disagreed: {:#?}",
        d.breakdown
    );
}

/// Two OOM kills 10 ms apart 8 s ago, one incident (resolved 5 s ago, or still open), then a
/// deploy whose binary does not run: the exec failure is diagnosed on its own evidence.
fn a_deploy_after_an_oom(resolve_the_oom: bool) {
    let mut lab = Lab::new();
    let now = lab.now;
    lab.clock.set(now - 8 * SECOND);
    let (a, b) = (lab.next_seq(), lab.next_seq());
    let oom = lab.events(vec![
        oom_kill(a, now - 8 * SECOND, APP),
        oom_kill(b, now - 8 * SECOND + 10_000_000, APP),
    ]);
    assert_eq!(oom.len(), 1, "a burst of kills is one incident");
    // Diagnosed with confidence, as it would be by now: the exec failure must still stand on
    // its own evidence, not take the OOM's class as a witness of its episode.
    assert_class(
        &lab.diagnose(&oom[0]),
        FaultClass::OomKill,
        Route::Remediation,
    );
    if resolve_the_oom {
        lab.clock.set(now - 5 * SECOND);
        let resolved = lab.ingest.resolve_quiet(2 * SECOND).expect("resolve");
        assert_eq!(resolved, vec![oom[0].id]);
    }
    lab.clock.set(now);

    // The deploy: the running process ends cleanly, the new binary does not run.
    let (stop, seq) = (lab.next_seq(), lab.next_seq());
    let clean = kernel_event(
        stop,
        now - 2 * SECOND,
        APP,
        EventKind::ProcessExit {
            exit_code: Some(0),
            signal: None,
            lifetime_ms: Some(600_000),
            killed_by: None,
        },
    );
    let failed = lab.events(vec![
        clean,
        kernel_event(
            seq,
            now - SECOND,
            APP,
            EventKind::ExecFailure {
                filename: "/srv/app/bin".into(),
                errno: 8,
                errno_name: "ENOEXEC".into(),
                parent: None,
            },
        ),
    ]);
    assert_eq!(failed.len(), 1, "an exec failure opens an incident");
    assert_class(
        &lab.diagnose(&failed[0]),
        FaultClass::BadDeploy,
        Route::Remediation,
    );

    // Diagnosed on its own window, the OOM incident is still an OOM.
    let first = lab.store.get(oom[0].id).expect("get").expect("kept");
    assert_eq!(lab.diagnose(&first).class, Some(FaultClass::OomKill));
}

#[test]
fn evidence_of_an_earlier_resolved_incident_does_not_sway_the_next_one() {
    a_deploy_after_an_oom(true);
}

#[test]
fn evidence_of_an_earlier_incident_still_open_does_not_sway_the_next_one() {
    a_deploy_after_an_oom(false);
}

/// Opens an OOM incident on each of `n` workloads and tells the diagnosis they changed.
fn many_ooms(lab: &mut Lab, n: usize) -> Vec<Incident> {
    let keys: Vec<String> = (0..n).map(|i| format!("cgroup/w{i}")).collect();
    let events: Vec<KernelEvent> = keys
        .iter()
        .map(|k| {
            let seq = lab.next_seq();
            oom_kill(seq, lab.now - SECOND, k)
        })
        .collect();
    let opened = lab.events(events);
    assert_eq!(opened.len(), n);
    for i in &opened {
        lab.diagnosis.incident(&IncidentChange::Updated(i.clone()));
    }
    opened
}

#[test]
fn a_tick_out_of_time_leaves_the_rest_queued_not_lost() {
    // A budget of nothing: each tick does one diagnosis, then yields.
    let mut lab = Lab::with_policy(DiagnosisPolicy {
        tick_budget_ns: 0,
        ..DiagnosisPolicy::default()
    });
    let opened = many_ooms(&mut lab, 4);
    for _ in 0..opened.len() {
        assert_eq!(lab.diagnosis.tick().expect("tick"), 1);
    }
    for i in &opened {
        let d = lab.store.diagnosis(i.id).expect("read");
        assert_eq!(
            d.and_then(|d| d.class),
            Some(FaultClass::OomKill),
            "{}",
            i.id
        );
    }
}

#[test]
fn every_changed_incident_is_diagnosed_even_past_one_tick_budget() {
    let mut lab = Lab::new();
    let max = DiagnosisPolicy::default().max_per_tick;
    many_ooms(&mut lab, max + 5);
    let first = lab.diagnosis.tick().expect("tick");
    assert_eq!(first, max, "one tick does its budget");
    let second = lab.diagnosis.tick().expect("tick");
    assert!(second >= 5, "the rest are done next tick ({second})");
    let open = lab.store.list(&IncidentQuery::open(1000)).expect("list");
    for i in open {
        let d = lab.store.diagnosis(i.id).expect("read");
        assert_eq!(
            d.and_then(|d| d.class),
            Some(FaultClass::OomKill),
            "{}",
            i.id
        );
    }
}

#[test]
fn an_open_incident_whose_window_closed_is_not_diagnosed_again_until_it_changes() {
    let mut lab = Lab::new();
    let opened = many_ooms(&mut lab, 1);
    assert_eq!(
        lab.diagnosis.tick().expect("tick"),
        1,
        "the change is diagnosed"
    );
    // Past the refresh, still inside its window (it last showed 1 s ago): diagnosed again.
    lab.clock.set(lab.now + 4 * SECOND);
    assert_eq!(
        lab.diagnosis.tick().expect("tick"),
        1,
        "refreshed while its window is open"
    );
    // Long after it last showed, a diagnosis made then is final.
    lab.clock.set(lab.now + 30 * SECOND);
    assert_eq!(
        lab.diagnosis.tick().expect("tick"),
        1,
        "once more, on the closed window"
    );
    lab.clock.set(lab.now + 60 * SECOND);
    assert_eq!(
        lab.diagnosis.tick().expect("tick"),
        0,
        "nothing new to judge"
    );
    // A change brings it back.
    lab.diagnosis
        .incident(&IncidentChange::Updated(opened[0].clone()));
    assert_eq!(lab.diagnosis.tick().expect("tick"), 1);
}

#[test]
fn a_stop_is_judged_again_the_moment_its_grace_runs_out() {
    let mut lab = Lab::new();
    let now = lab.now;
    let seq = lab.next_seq();
    let stopped = lab.events(vec![exit(seq, now, WEB, 15, Some("kubelet"))]);
    lab.diagnosis
        .incident(&IncidentChange::Updated(stopped[0].clone()));
    let mut classes = Vec::new();
    // The grace ends 5 s after the stop, 1.8 s after the last refresh: sooner than the next.
    for after_ms in [100, 3_200, 5_000] {
        lab.clock.set(now + after_ms * 1_000_000);
        lab.diagnosis.tick().expect("tick");
        let d = lab
            .store
            .diagnosis(stopped[0].id)
            .expect("read")
            .expect("diagnosed");
        classes.push(d.class);
    }
    assert_ne!(classes[1], Some(FaultClass::ReplicaShortage), "{classes:?}");
    assert_eq!(classes[2], Some(FaultClass::ReplicaShortage), "{classes:?}");
}

#[test]
fn an_anomaly_in_the_episode_of_a_confidently_diagnosed_stop_takes_its_cause() {
    let mut lab = Lab::new();
    let now = lab.now;
    let seq = lab.next_seq();
    lab.clock.set(now - 9 * SECOND);
    let stopped = lab.events(vec![exit(seq, now - 9 * SECOND, WEB, 15, Some("kubelet"))]);
    lab.clock.set(now - 3 * SECOND);
    assert_class(
        &lab.diagnose(&stopped[0]),
        FaultClass::ReplicaShortage,
        Route::Remediation,
    );
    // Its callers' symptoms open an anomaly on it: the stop is the earlier incident's
    // evidence, not this one's, so only the earlier diagnosis can name the cause.
    lab.clock.set(now);
    let anomaly = lab.anomaly(WEB, -2);
    let d = lab.diagnose(&anomaly);
    assert_eq!(
        d.class,
        Some(FaultClass::ReplicaShortage),
        "{:#?}",
        d.breakdown
    );
    assert!(
        d.breakdown
            .iter()
            .any(|b| b.voter == format!("incident #{}", stopped[0].id) && b.agrees),
        "{:#?}",
        d.breakdown
    );

    // Long after the stop, another anomaly on the same entity is not its episode.
    lab.clock.set(now + 120 * SECOND);
    let later = lab.anomaly(WEB, 118);
    let d = lab.diagnose(&later);
    assert!(
        d.breakdown
            .iter()
            .all(|b| !b.voter.starts_with("incident #")),
        "{:#?}",
        d.breakdown
    );
}

#[test]
fn an_alert_takes_the_open_incident_on_its_entity_as_a_witness_however_late_it_comes() {
    let mut lab = Lab::new();
    let now = lab.now;
    lab.clock.set(now - 90 * SECOND);
    let seq = lab.next_seq();
    let oom = lab.events(vec![oom_kill(seq, now - 90 * SECOND, APP)]);
    assert_class(
        &lab.diagnose(&oom[0]),
        FaultClass::OomKill,
        Route::Remediation,
    );
    // A person reports it 90 s later: the kill is the open incident's evidence, outside the
    // report's window, and still what the person is seeing.
    lab.clock.set(now);
    let d = lab.diagnose(&lab.alert(APP));
    assert_class(&d, FaultClass::OomKill, Route::Remediation);
    assert!(
        d.breakdown
            .iter()
            .any(|b| b.voter == format!("incident #{}", oom[0].id) && b.agrees),
        "{:#?}",
        d.breakdown
    );

    // Once that incident has resolved, a later alert is not its episode.
    lab.clock.set(now + 60 * SECOND);
    let resolved = lab.ingest.resolve_quiet(2 * SECOND).expect("resolve");
    assert_eq!(resolved, vec![oom[0].id]);
    lab.clock.set(now + 61 * SECOND);
    let d = lab.diagnose(&lab.alert(APP));
    assert!(
        d.breakdown
            .iter()
            .all(|b| !b.voter.starts_with("incident #")),
        "{:#?}",
        d.breakdown
    );
    assert_eq!(d.class, None, "{:#?}", d.breakdown);
}
