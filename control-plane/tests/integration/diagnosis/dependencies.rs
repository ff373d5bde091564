//! A dependency's trouble followed to its cause: the errors it answers with down to the
//! password its own dependency refuses, the connections it refuses down to its stop nobody
//! replaced; and the action placed there.

use super::*;

#[test]
fn errors_from_a_dependency_are_followed_down_to_the_refused_password() {
    let mut lab = Lab::new();
    // web calls app, app calls redis; redis starts refusing app's password. web only sees
    // app's 502s, and the anomaly is localized to web.
    lab.intervals(-70, 0, |t, i| {
        let failing = t >= -6;
        i.requests.push(calls(
            WEB,
            APP_IP,
            8080,
            Protocol::Http1,
            30,
            failing.then_some("502"),
        ));
        i.requests.push(calls(
            APP,
            REDIS_IP,
            6379,
            Protocol::Redis,
            30,
            failing.then_some("WRONGPASS"),
        ));
    });
    let incident = lab.anomaly(WEB, -6);
    let d = lab.diagnose(&incident);
    assert_class(&d, FaultClass::CredentialFailure, Route::Remediation);
    let edge = d
        .breakdown
        .iter()
        .find(|b| b.voter == "edge_stats")
        .expect("edge_stats voted");
    assert!(
        edge.reason.contains("downstream") && edge.reason.contains(REDIS),
        "{}",
        edge.reason
    );
    // Acted on where the password is refused, not on web where the anomaly was seen.
    assert_eq!(d.subject, Some(EntityId::new(REDIS)));
}

#[test]
fn a_dependency_that_refuses_connections_is_asked_why_and_its_unreplaced_stop_is_the_cause() {
    let mut lab = Lab::new();
    // app's supervisor stopped it and nothing started it again; web's connects to it are
    // refused and the anomaly is localized to web.
    let stop = lab.next_seq();
    let now = lab.now;
    lab.events(vec![exit(
        stop,
        now - 7 * SECOND,
        APP,
        15,
        Some("supervisor"),
    )]);
    lab.intervals(-70, 0, |t, i| {
        let counts = if t < -7 {
            FlowCounts {
                connects: 5,
                established: 5,
                bytes_received: 10_000,
                ..FlowCounts::default()
            }
        } else {
            FlowCounts {
                connects: 3,
                failed: 3,
                resets_received: 3,
                ..FlowCounts::default()
            }
        };
        i.flows
            .push(client_flow((WEB, "10.0.0.2"), (APP_IP, 8080), counts));
    });
    let incident = lab.anomaly(WEB, -7);
    let d = lab.diagnose(&incident);
    assert_class(&d, FaultClass::ReplicaShortage, Route::Remediation);
    assert_eq!(d.subject, Some(EntityId::new(APP)), "{:#?}", d.breakdown);
}
