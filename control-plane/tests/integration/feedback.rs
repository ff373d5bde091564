//! The operator's word on a diagnosis, as they give it: `vigil incident N confirm|correct`
//! against a real control plane. A mistake is refused naming the fix; a verdict is kept, shown
//! with the incident, replaced by the next one, and counted in `vigil feedback`.

use crate::support::{
    cli::{issue_token, ok, refused, vigil, vigil_as},
    plane::Plane,
};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_corrects_then_confirms_and_each_mistake_names_the_fix() {
    let plane = Plane::start().await;

    let e = refused(&vigil(&plane, &["incident", "1", "correct", "--class", "gremlins"]).await);
    assert!(e.contains("gremlins") && e.contains("network_loss"), "{e}");
    let e = refused(&vigil(&plane, &["incident", "1", "correct", "--class", "oom_kill"]).await);
    assert!(e.contains("confirm"), "the class it already has: {e}");
    let e = refused(&vigil(&plane, &["incident", "99", "confirm"]).await);
    assert!(e.contains("99") && e.contains("not found"), "{e}");
    let none = ok(&vigil(&plane, &["feedback"]).await);
    assert!(none.contains("no feedback yet"), "{none}");

    // The judge is whoever holds the token, whatever a body might claim.
    let alice = issue_token(&plane, "alice", "approver").await;
    let said = ok(&vigil_as(
        &plane,
        &alice,
        &["incident", "1", "correct", "--class", "memory_pressure"],
    )
    .await);
    assert!(
        said.contains("corrected as memory_pressure") && said.contains("Vigil said oom_kill"),
        "{said}"
    );
    let detail: Value =
        serde_json::from_str(&ok(&vigil(&plane, &["--json", "incident", "1"]).await))
            .expect("JSON");
    assert_eq!(detail["feedback"]["class"], "memory_pressure", "{detail:#}");
    assert_eq!(detail["feedback"]["by"], "alice");
    assert_eq!(
        detail["diagnosis"]["class"], "oom_kill",
        "the diagnosis stays as Vigil made it"
    );
    let tally = ok(&vigil(&plane, &["feedback"]).await);
    assert!(tally.contains("0 of 1 diagnoses confirmed"), "{tally}");

    // Second thoughts: the latest verdict replaces the last.
    ok(&vigil(
        &plane,
        &[
            "incident",
            "1",
            "confirm",
            "--note",
            "it was the limit after all",
        ],
    )
    .await);
    let tally: Value =
        serde_json::from_str(&ok(&vigil(&plane, &["--json", "feedback"]).await)).expect("JSON");
    assert_eq!(tally["judged"], 1, "{tally:#}");
    assert_eq!(tally["accuracy"], 1.0, "{tally:#}");
    assert_eq!(tally["feedback"][0]["note"], "it was the limit after all");
    let shown = ok(&vigil(&plane, &["incident", "1"]).await);
    assert!(shown.contains("feedback: confirmed as oom_kill"), "{shown}");
    plane.stop().await;
}
