//! Issue 18's must-shows 1–3 in a real browser (Debian's headless Chromium through
//! chromedriver): a real OOM loop in a v1 memory cgroup opens an incident that appears on the
//! console's list without a reload; its page shows the kernel evidence, the diagnosis and the
//! proposed action; a viewer sees no approve button and a forged approval with the viewer's
//! token is refused with 403 (from the browser and over the API); the approver approves in
//! the page and the page shows the verification's result. The screenshots in `docs/` come
//! from this test.
//!
//! Alone: the plane may raise a memory limit, and every agent sees the whole host's OOM kills.

use std::{path::PathBuf, time::Duration};

use vigil_tests::{
    browser::Driver, unique_name, wait_for, AgentOptions, Api, Cgroup, Stack, Supervisor,
};

const LIMIT: u64 = 48 << 20;

/// Raising a memory limit waits for an approver; the action is judged 8 s after it ran.
const ASSIST: &str = "[remediation]\nruntime = \"local\"\nverify_after_secs = 8\n\
                      [remediation.phases]\nraise_memory_limit = \"assist\"\n";

/// A new token of `role`, issued by the admin.
fn token(api: &Api, name: &str, role: &str) -> String {
    let (status, body) = api.post(
        "/api/v1/tokens",
        &serde_json::json!({ "name": name, "role": role }),
    );
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().expect("the new secret").to_string()
}

/// Where the screenshots go: `target/console-screenshots/`, or with
/// `VIGIL_UPDATE_SCREENSHOTS=1` the README's own in `docs/` (how they were made).
fn docs() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    if std::env::var_os("VIGIL_UPDATE_SCREENSHOTS").is_some_and(|v| v == "1") {
        root.join("docs")
    } else {
        root.join("target/console-screenshots")
    }
}

#[test]
fn an_oom_incident_is_worked_in_the_console_from_list_to_verified_action_alone() {
    let Stack {
        dir: _dir,
        cp,
        api,
        agent: _agent,
    } = Stack::start_with(&AgentOptions::new("console-node"), ASSIST);
    let base = format!("http://{}", cp.http);
    let approver = token(&api, "alice", "approver");
    let viewer = token(&api, "victor", "viewer");
    let mut driver = Driver::start();

    let alice = driver.browser();
    alice.sign_in(&base, &approver);
    assert_eq!(
        alice.text("#who").unwrap_or_default(),
        "alice · approver",
        "the page names who is signed in"
    );
    // Set in the loaded page: still there later only if the page was never reloaded.
    alice.js("window.vigilNoReload = 'same page'; return 1;");

    let cgroup = Cgroup::memory_v1(&unique_name("console"), Some(LIMIT));
    let workload = format!("cgroup{}", cgroup.path());
    // 64 MiB of working set under a 48 MiB limit: killed at every start.
    let hog = Supervisor::start(&cgroup, Duration::from_millis(300), || {
        ["4", "5", "64"].map(String::from).to_vec()
    });

    // 1. The incident appears on the open list by itself.
    let row = format!("tr.incident[data-kind='oom_kill'][data-workload='{workload}']");
    alice.wait(&row, Duration::from_secs(60));
    assert_eq!(
        alice.js("return window.vigilNoReload || null;"),
        "same page",
        "the list updated without a reload"
    );
    alice.wait(&format!("{row} td.class"), Duration::from_secs(30));
    alice.screenshot(&docs().join("console-incidents.png"));

    // Its page: the kernel evidence, the diagnosis and the proposed action.
    alice.click(&format!("{row} td.title a"));
    let pending = ".action[data-state='pending_approval']";
    alice.wait(
        "#evidence table.events tr[data-kind='oom_kill']",
        Duration::from_secs(10),
    );
    alice.wait("#diagnosis .class", Duration::from_secs(30));
    assert_eq!(alice.text("#diagnosis .class").as_deref(), Some("oom_kill"));
    alice.wait(
        "#diagnosis table.breakdown tbody tr",
        Duration::from_secs(5),
    );
    alice.wait(
        &format!("{pending} button.approve"),
        Duration::from_secs(60),
    );
    let incident_url = alice.url();
    let action_text = alice.text(pending).unwrap_or_default();
    assert!(
        action_text.contains("raise_memory_limit") && action_text.contains(&workload),
        "{action_text}"
    );

    // 2. A viewer sees the action but no button, and a forged approval is refused.
    let victor = driver.browser();
    victor.sign_in(&base, &viewer);
    victor.goto(&incident_url);
    victor.wait(pending, Duration::from_secs(10));
    assert_eq!(
        victor.count("button.approve"),
        0,
        "no approve button for a viewer"
    );
    assert_eq!(
        victor.count("button.deny"),
        0,
        "no deny button for a viewer"
    );
    let action_id = wait_for(Duration::from_secs(5), "the pending action", || {
        api.list("/api/v1/actions")
            .into_iter()
            .find(|a| a["request"]["target"] == workload.as_str())
            .and_then(|a| a["id"].as_i64())
    });
    let incident_id = incident_url
        .rsplit('/')
        .next()
        .and_then(|id| id.parse::<i64>().ok())
        .expect("the incident's id in its URL");
    let approve = format!("/api/v1/incidents/{incident_id}/actions/{action_id}/approve");
    let forged = victor.js_async(&format!(
        "const done = arguments[0]; fetch('{approve}', {{method: 'POST'}}).then(r => done(r.status));"
    ));
    assert_eq!(forged, 403, "a viewer's approval from the browser");
    let (status, body) =
        Api::with_token(base.clone(), &viewer).post(&approve, &serde_json::json!({}));
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("viewer")),
        "{body}"
    );
    drop(victor);

    // 1 (cont.). The approver approves in the page; the action runs and is verified.
    alice.click(&format!("{pending} button.approve"));
    alice.accept_dialog();
    alice.wait(".action[data-state='recovered']", Duration::from_secs(60));
    let verify = alice
        .text("#timeline li[data-stage='verify']")
        .unwrap_or_default();
    assert!(
        verify.contains("recovered"),
        "the timeline shows the verification: {verify}"
    );
    let ran = alice
        .text(".action[data-state='recovered']")
        .unwrap_or_default();
    assert!(ran.contains("approved by alice"), "{ran}");
    assert!(
        alice.count("#audit tbody tr") >= 3,
        "the audit trail lists the decision, the approval and the action"
    );
    alice.screenshot(&docs().join("console-incident.png"));

    // 3. The service graph and the nodes, as the agent sees this host.
    alice.goto(&format!("{base}/console/graph"));
    wait_for(Duration::from_secs(20), "the graph drawn", || {
        (alice.js("return window.vigilGraph.loads;").as_u64() >= Some(1)).then_some(())
    });
    alice.screenshot(&docs().join("console-graph.png"));
    alice.goto(&format!("{base}/console/nodes"));
    alice.wait("tr.node[data-node='console-node']", Duration::from_secs(10));
    drop(hog);
}
