//! The IncidentReport controller's retries, through kube-runtime's Controller against the
//! in-memory API server: a report whose status patch fails is retried at delays that double
//! per failure in a row, and a success resets the count (the next failure waits the base
//! delay again). Timing-sensitive: runs alone, before the suite.

use std::{sync::Arc, time::Duration};

use crate::support::{
    apiserver::ApiServer,
    reports::{handed_in_report, GV},
};
use control_plane::{
    adapters::{
        kube::{
            leader::Leadership,
            reconcile::{self, Backoff, Context},
            report::IncidentReport,
        },
        sqlite::SqliteStore,
    },
    config::ControlPlaneConfig,
    domain::{
        alerts::AlertService,
        clock::SystemClock,
        graph::{ports::NoCluster, LiveGraph},
    },
};

const STATUS: &str =
    "/apis/vigil.dev/v1alpha1/namespaces/vigil/incidentreports/checkout-slow/status";
const BASE: Duration = Duration::from_millis(400);

/// Arrival times of the status patches so far.
fn status_patches(api: &ApiServer) -> Vec<std::time::Instant> {
    api.requests()
        .into_iter()
        .filter(|r| r.method == "PATCH" && r.path == STATUS)
        .map(|r| r.at)
        .collect()
}

async fn wait_for_patches(api: &ApiServer, n: usize) -> Vec<std::time::Instant> {
    for _ in 0..400 {
        let p = status_patches(api);
        if p.len() >= n {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "timed out waiting for {n} status patches: {:#?}",
        api.requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_status_patches_back_off_exponentially_and_a_success_resets_the_count_alone() {
    let api = ApiServer::start().await;
    api.seed(GV, "incidentreports", handed_in_report());
    // The first three status patches fail.
    api.fail("PATCH", "/checkout-slow/status", 3, 500);

    let store = Arc::new(SqliteStore::in_memory().expect("store"));
    let graph = Arc::new(LiveGraph::new(
        ControlPlaneConfig::default().graph_config(),
        Arc::new(NoCluster),
    ));
    let alerts = Arc::new(AlertService::new(
        store.clone(),
        store.clone(),
        graph,
        Arc::new(SystemClock),
    ));
    let client = kube::Client::try_from(kube::Config::new(api.url_for("cp").parse().expect("uri")))
        .expect("client");
    let reports: kube::Api<IncidentReport> = kube::Api::namespaced(client, "vigil");
    let mut ctx = Context::new(
        reports,
        alerts,
        store,
        Leadership::sole(),
        Arc::new(SystemClock),
    );
    ctx.backoff = Backoff {
        base: BASE,
        max: Duration::from_secs(60),
    };
    ctx.resync = Duration::from_millis(300);
    let ctx = Arc::new(ctx);
    let controller = tokio::spawn(reconcile::run(ctx.clone()));

    // Three failures, then the fourth attempt succeeds.
    let p = wait_for_patches(&api, 4).await;
    let delays: Vec<Duration> = p.windows(2).take(3).map(|w| w[1] - w[0]).collect();
    // A busy machine only makes a delay longer, so each is checked against its floor: the
    // base, doubled per failure in a row. The first must also be well under the fixed 5 s
    // requeue this controller used to return whatever had failed.
    for (k, d) in delays.iter().enumerate() {
        let floor = BASE.mul_f64(0.9 * f64::from(1u32 << k));
        assert!(
            *d >= floor,
            "retry {} waits at least {floor:?}: {delays:?}",
            k + 1
        );
    }
    assert!(
        delays[0] < Duration::from_secs(4),
        "the first retry waits about the base delay: {delays:?}"
    );
    let answered = api
        .object(GV, "vigil", "incidentreports", "checkout-slow")
        .expect("the report");
    assert_eq!(answered["status"]["phase"], "Open", "{answered:#}");
    assert_eq!(
        ctx.failures_of("checkout-slow"),
        0,
        "a success resets the count"
    );

    // Later failures start from the base delay again, not from the fourth failure's.
    let before = status_patches(&api).len();
    api.fail("PATCH", "/checkout-slow/status", 2, 500);
    let p = wait_for_patches(&api, before + 3).await;
    let again = p[before + 1] - p[before];
    assert!(
        again < BASE * 5,
        "after a success the first retry waits about the base delay ({again:?}), not the \
         fourth failure's {:?}",
        BASE * 8
    );
    controller.abort();
}
