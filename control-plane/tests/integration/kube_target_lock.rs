//! One remediation per target across control-plane replicas: the Lease per target against the
//! in-memory API server (`support/apiserver.rs`: real HTTP, real Kubernetes JSON). Another
//! replica's live Lease refuses; a released or expired one is taken over; a racing write
//! (409) loses without acting; every request is one the shipped RBAC allows.

use crate::support::{apiserver::ApiServer, rbac::assert_rbac_allows};
use control_plane::{
    adapters::kube::target_lock::{lease_name, KubeTargetLock, TARGET_ANNOTATION},
    domain::{
        entity::EntityId,
        remediate::ports::{Grant, TargetLock},
    },
};

const SEC: i64 = 1_000_000_000;
const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/vigil/leases";

fn replica(api: &ApiServer, identity: &str) -> KubeTargetLock {
    let config = kube::Config::new(api.url_for(identity).parse().expect("url"));
    KubeTargetLock::new(
        kube::Client::try_from(config).expect("client"),
        "vigil",
        identity,
    )
}

/// Runs a lock call as remediation does: on a blocking thread.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("thread")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_at_a_time_acts_on_a_target() {
    let api = ApiServer::start().await;
    let target = EntityId::pod("5b0e2c11-0000-4000-8000-0000000000b7");
    let other = EntityId::pod("5b0e2c11-0000-4000-8000-0000000000c1");
    let (a, b) = (
        std::sync::Arc::new(replica(&api, "cp-a")),
        std::sync::Arc::new(replica(&api, "cp-b")),
    );
    let take = |l: &std::sync::Arc<KubeTargetLock>, t: &EntityId, secs: i64| {
        let (l, t) = (l.clone(), t.clone());
        blocking(move || l.acquire(&t, secs * SEC).expect("the API answers"))
    };

    // A takes it: one Lease created, held by A, naming the target.
    assert_eq!(take(&a, &target, 60).await, Grant::Taken);
    let name = lease_name(&target);
    let lease = api
        .object("coordination.k8s.io/v1", "vigil", "leases", &name)
        .expect("the Lease");
    assert_eq!(lease["spec"]["holderIdentity"], "cp-a");
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 60);
    assert_eq!(
        lease["metadata"]["annotations"][TARGET_ANNOTATION],
        target.as_str()
    );
    let creates: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == LEASES)
        .collect();
    assert_eq!(creates.len(), 1, "{creates:#?}");

    // B is refused while A holds it; another target is B's to take.
    assert_eq!(take(&b, &target, 60).await, Grant::HeldBy("cp-a".into()));
    assert_eq!(take(&b, &other, 60).await, Grant::Taken);
    // A renews its own.
    assert_eq!(take(&a, &target, 60).await, Grant::Taken);

    // Released by A: B takes it over.
    {
        let (a, t) = (a.clone(), target.clone());
        blocking(move || a.release(&t)).await.expect("released");
    }
    assert_eq!(take(&b, &target, 1).await, Grant::Taken);
    // B's 1 s Lease lapses (B stopped without releasing): A takes it over.
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    assert_eq!(take(&a, &target, 60).await, Grant::Taken);
    // A release by a replica that does not hold it changes nothing.
    {
        let (b, t) = (b.clone(), target.clone());
        blocking(move || b.release(&t)).await.expect("no-op");
    }
    let lease = api
        .object("coordination.k8s.io/v1", "vigil", "leases", &name)
        .expect("the Lease");
    assert_eq!(lease["spec"]["holderIdentity"], "cp-a");

    // Two replicas racing for a free Lease: the write that lost (409) acts on nothing.
    {
        let (a, t) = (a.clone(), target.clone());
        blocking(move || a.release(&t)).await.expect("released");
    }
    api.fail("PUT", &format!("/leases/{name}"), 1, 409);
    assert!(
        matches!(take(&b, &target, 60).await, Grant::HeldBy(h) if h.contains("took the lock first")),
        "a lost race is a refusal"
    );

    assert_rbac_allows(&api.requests(), &["base/control-plane-rbac.yaml"]);
}
