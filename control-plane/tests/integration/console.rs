//! The console over real HTTP against a running control plane: sign-in, who sees what, the
//! cookie's write protection, escaping, a cited document, and a live region that pushes a new
//! incident over server-sent events. (The whole loop in a real browser is the end-to-end
//! `console` test.)

use std::time::Duration;

use control_plane::config::ControlPlaneConfig;
use reqwest::{header, redirect::Policy, StatusCode};
use serde_json::json;

use crate::support::{
    config::local_config,
    running::{client_with, issue_token, Running},
};

fn config(dir: &std::path::Path) -> ControlPlaneConfig {
    local_config(dir)
}

/// A browser-like client: no redirects followed, cookies sent by hand.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client")
}

async fn issue(plane: &Running, name: &str, role: &str) -> String {
    issue_token(&plane.client(), &plane.base(), name, role).await
}

/// Signs in with `token`; the cookie the console set.
async fn sign_in(plane: &Running, token: &str) -> String {
    let r = browser()
        .post(format!("{}/console/login", plane.base()))
        .form(&[("token", token), ("next", "/console/nodes")])
        .send()
        .await
        .expect("sign in");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[header::LOCATION], "/console/nodes");
    let cookie = r.headers()[header::SET_COOKIE]
        .to_str()
        .expect("text")
        .to_string();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    cookie.split(';').next().expect("name=value").to_string()
}

async fn alert(plane: &Running, name: &str, summary: &str) {
    let r = plane
        .client()
        .post(format!("{}/api/v1/alertmanager", plane.base()))
        .json(&json!({
            "version": "4",
            "alerts": [{
                "status": "firing",
                "labels": { "alertname": name, "severity": "critical" },
                "annotations": { "summary": summary },
                "startsAt": jiff::Timestamp::now().to_string(),
                "fingerprint": format!("fp-{name}"),
            }],
        }))
        .send()
        .await
        .expect("webhook");
    assert_eq!(r.status(), StatusCode::OK, "{:?}", r.text().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_signs_in_sees_what_its_role_allows_and_cannot_be_made_to_write() {
    let dir = tempfile::tempdir().expect("dir");
    let report = dir.path().join("summary.md");
    std::fs::write(
        &report,
        "| scenario | detected |\n|---|---|\n| oom | 247 ms |\n\n[details](javascript:alert(1))\n",
    )
    .expect("report");
    let mut cfg = config(dir.path());
    cfg.console.lab_report = Some(report);
    let plane = Running::start(cfg).await;
    let base = plane.base();
    let b = browser();

    // Anonymous: pages send to the sign-in (and back), the API says 401, assets are public.
    let r = b
        .get(format!("{base}/console/incidents/3?x=1"))
        .header(header::ACCEPT, "text/html,application/xhtml+xml")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        r.headers()[header::LOCATION],
        "/console/login?next=%2Fconsole%2Fincidents%2F3%3Fx%3D1"
    );
    let r = b
        .get(format!("{base}/api/v1/incidents"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = b
        .get(format!("{base}/console/live/incidents"))
        .header(header::ACCEPT, "text/event-stream")
        .send()
        .await
        .expect("get");
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "a stream is not sent to a form"
    );
    let r = b
        .post(format!("{base}/console/login"))
        .header(header::ORIGIN, "http://evil.example")
        .form(&[("token", "vigil_whatever")])
        .send()
        .await
        .expect("post");
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "a sign-in posted from another site"
    );
    let r = b
        .get(format!("{base}/console/assets/htmx.min.js"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()[header::CONTENT_TYPE]
        .to_str()
        .is_ok_and(|t| t.starts_with("text/javascript")));

    // A wrong token is refused on the form itself.
    let r = b
        .post(format!("{base}/console/login"))
        .form(&[("token", "vigil_not_a_token")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().get(header::SET_COOKIE).is_none());
    assert!(r.text().await.expect("body").contains("login-error"));

    let viewer = sign_in(&plane, &issue(&plane, "victor", "viewer").await).await;
    let approver = sign_in(&plane, &issue(&plane, "alice", "approver").await).await;

    // An alert whose name carries markup (it becomes the incident's title): shown as text.
    alert(
        &plane,
        "<script>alert('x')</script>",
        "injected on checkout",
    )
    .await;
    let page = b
        .get(format!("{base}/console"))
        .header(header::COOKIE, &viewer)
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("html");
    assert!(html.contains("victor · viewer"), "{html}");
    assert!(html.contains("data-kind=\"alert\""), "{html}");
    assert!(
        !html.contains("<script>alert"),
        "markup from an alert is escaped: {html}"
    );
    assert!(
        html.contains("&lt;script&gt;alert"),
        "and still shown: {html}"
    );
    let id = html
        .split("data-id=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a row");
    let page = b
        .get(format!("{base}/console/incidents/{id}"))
        .header(header::COOKIE, &viewer)
        .send()
        .await
        .expect("incident page");
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .expect("text")
        .to_string();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let html = page.text().await.expect("html");
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(html.contains("&lt;script&gt;alert"), "{html}");
    assert!(
        html.contains("data-live=\"/console/live/incidents/"),
        "{html}"
    );

    // Writes carried by the cookie: refused from another origin whatever the role, refused
    // for a viewer from the console itself, passed to the handler for an approver.
    let approve = format!("{base}/api/v1/incidents/1/actions/99/approve");
    let host = base.trim_start_matches("http://").to_string();
    let post = |cookie: &str, origin: &str| {
        b.post(&approve)
            .header(header::COOKIE, cookie)
            .header(header::ORIGIN, origin)
            .header(header::HOST, &host)
            .send()
    };
    let r = post(&approver, "http://evil.example").await.expect("post");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.expect("body").contains("Origin"));
    let r = post(&viewer, &base).await.expect("post");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.expect("body").contains("viewer"));
    let r = post(&approver, &base).await.expect("post");
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "past the guard: no action 99"
    );

    // A cited document opens; an unknown one is a page that says so.
    let r = b
        .get(format!("{base}/console/docs/no-such-runbook"))
        .header(header::COOKIE, &viewer)
        .send()
        .await
        .expect("doc");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.text().await.expect("body").contains("no-such-runbook"));

    // The lab report, as a table, with its links defused.
    let lab = b
        .get(format!("{base}/console/lab"))
        .header(header::COOKIE, &viewer)
        .send()
        .await
        .expect("lab")
        .text()
        .await
        .expect("html");
    assert!(lab.contains("<td>247 ms</td>"), "{lab}");
    assert!(!lab.contains("href=\"javascript"), "{lab}");

    // Signing out clears the cookie.
    let r = b
        .post(format!("{base}/console/logout"))
        .header(header::COOKIE, &viewer)
        .send()
        .await
        .expect("logout");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(r.headers()[header::SET_COOKIE]
        .to_str()
        .is_ok_and(|c| c.contains("Max-Age=0")));
    plane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_incident_is_pushed_to_an_open_incidents_page() {
    let dir = tempfile::tempdir().expect("dir");
    let plane = Running::start(config(dir.path())).await;
    let base = plane.base();
    let viewer = client_with(&issue(&plane, "victor", "viewer").await);

    // What the page shows now, and its version.
    let page = viewer
        .get(format!("{base}/console?status=open"))
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    let live = page
        .split("data-live=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a live region")
        .replace("&amp;", "&");
    assert!(live.contains("since="), "{live}");
    let mut events = viewer
        .get(format!("{base}{live}"))
        .send()
        .await
        .expect("stream");

    // Nothing changed: nothing is pushed.
    let quiet = tokio::time::timeout(Duration::from_millis(2_500), events.chunk()).await;
    assert!(
        quiet.is_err(),
        "an unchanged table is not re-sent: {quiet:?}"
    );

    // A browser reconnecting with the last version it got (`Last-Event-ID`) is not sent it
    // again.
    let version = page
        .split("data-version=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page's version")
        .to_string();
    let mut resumed = viewer
        .get(format!(
            "{base}/console/live/incidents?status=open&limit=200"
        ))
        .header("last-event-id", &version)
        .send()
        .await
        .expect("stream");
    let quiet = tokio::time::timeout(Duration::from_millis(2_500), resumed.chunk()).await;
    assert!(
        quiet.is_err(),
        "the version it has is not re-sent: {quiet:?}"
    );
    drop(resumed);

    // A stream of an incident that does not exist ends instead of polling forever.
    let gone = viewer
        .get(format!("{base}/console/live/incidents/999"))
        .send()
        .await
        .expect("stream");
    let body = tokio::time::timeout(Duration::from_secs(5), gone.text())
        .await
        .expect("the stream ends")
        .expect("body");
    assert!(body.is_empty(), "{body}");

    alert(&plane, "CheckoutDown", "checkout answers 503").await;
    let pushed = tokio::time::timeout(Duration::from_secs(10), async {
        let mut text = String::new();
        while let Some(chunk) = events.chunk().await.expect("chunk") {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if text.contains("event: changed") && text.contains("CheckoutDown") {
                return text;
            }
        }
        text
    })
    .await
    .expect("pushed within 10 s");
    assert!(pushed.contains("data-kind=\"alert\""), "{pushed}");
    plane.stop().await;
}
