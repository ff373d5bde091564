//! The Kubernetes runtime against the in-memory API server (`support/apiserver.rs`: real
//! HTTP, real Kubernetes JSON): every action and its inverse sends exactly the expected
//! writes — server-side apply as `vigil` for limits, replicas, an HPA's floor, a restart and a
//! cordon; a replace conditioned on the resource version for a rollback; the Eviction API for
//! an eviction — an eviction a PodDisruptionBudget refuses is one request and a refusal, an
//! undo leaves alone what someone changed since, and every request is one the RBAC shipped in
//! `deploy/` (base and the remediation overlay) allows.

use std::{collections::BTreeMap, sync::Arc};

use crate::support::{
    apiserver::{ApiServer, Recorded},
    rbac::{assert_rbac_allows, WITH_REMEDIATION},
    shop::{deployment, seed, DEPLOYMENT, POD_UID},
};
use control_plane::{
    adapters::{kube::KubeEndpoints, runtime::KubeRuntime},
    domain::{
        entity::EntityId,
        remediate::{
            playbook::When,
            ports::{Runtime, RuntimeError},
            ActionClass, Applied, Step,
        },
    },
};
use serde_json::{json, Value};

fn step(action: ActionClass, params: &[(&str, f64)]) -> Step {
    Step {
        action,
        replicas: u32::from(action.disrupts()),
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect::<BTreeMap<_, _>>(),
        when: When::default(),
    }
}

struct Cluster {
    api: ApiServer,
    runtime: Arc<KubeRuntime>,
    _endpoints: KubeEndpoints,
}

async fn cluster(extra: impl FnOnce(&ApiServer)) -> Cluster {
    let api = ApiServer::start().await;
    seed(&api);
    extra(&api);
    let config = kube::Config::new(api.url_for("cp").parse().expect("url"));
    let client = kube::Client::try_from(config.clone()).expect("client");
    let endpoints = KubeEndpoints::start(client);
    endpoints.wait_ready().await.expect("listed");
    Cluster {
        runtime: Arc::new(KubeRuntime::new(config, endpoints.pods()).expect("runtime")),
        api,
        _endpoints: endpoints,
    }
}

fn pod() -> EntityId {
    EntityId::pod(POD_UID)
}

impl Cluster {
    /// Runs `f` on the runtime as remediation does: on a blocking thread.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&KubeRuntime) -> T + Send + 'static,
    ) -> T {
        let runtime = self.runtime.clone();
        tokio::task::spawn_blocking(move || f(&runtime))
            .await
            .expect("the runtime's thread")
    }

    async fn apply(&self, step: Step) -> Result<Applied, RuntimeError> {
        self.run(move |r| r.apply(&pod(), &step)).await
    }

    async fn undo(&self, applied: Applied) -> Result<(), RuntimeError> {
        self.run(move |r| r.undo(&pod(), &applied)).await
    }

    /// The writes (anything but GET) sent from request `from` on.
    fn writes(&self, from: usize) -> Vec<Recorded> {
        self.api.requests()[from..]
            .iter()
            .filter(|r| r.method != "GET")
            .cloned()
            .collect()
    }

    /// Applies `step`, then undoes it: the writes of each.
    async fn round_trip(&self, step: Step) -> (Applied, Vec<Recorded>, Vec<Recorded>) {
        let before = self.api.requests().len();
        let applied = self.apply(step).await.expect("applied");
        let middle = self.api.requests().len();
        let done = self.writes(before);
        self.undo(applied.clone()).await.expect("undone");
        (applied, done, self.writes(middle))
    }
}

/// One server-side apply as `vigil` to `path`, and its body.
fn applied_to<'a>(writes: &'a [Recorded], path: &str) -> &'a Value {
    let [w] = writes else {
        panic!("one write expected, got {writes:#?}");
    };
    assert_eq!(
        (w.method.as_str(), w.path.as_str()),
        ("PATCH", path),
        "{w:#?}"
    );
    assert!(
        w.content_type.starts_with("application/apply-patch"),
        "{w:#?}"
    );
    assert!(
        w.query.contains("fieldManager=vigil") && w.query.contains("force=true"),
        "{w:#?}"
    );
    &w.body
}

fn container(body: &Value) -> &Value {
    let containers = body["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers");
    assert_eq!(containers.len(), 1, "only the changed container: {body:#}");
    &containers[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_action_and_its_inverse_sends_exactly_its_writes() {
    let c = cluster(|_| {}).await;

    let (a, done, undone) = c
        .round_trip(step(ActionClass::RaiseMemoryLimit, &[("factor", 1.5)]))
        .await;
    assert!(a.detail.contains("512Mi -> 768Mi"), "{}", a.detail);
    assert_eq!(
        container(applied_to(&done, DEPLOYMENT)),
        &json!({"name": "checkout", "resources": {"limits": {"memory": "768Mi"}}})
    );
    assert_eq!(
        container(applied_to(&undone, DEPLOYMENT))["resources"]["limits"]["memory"],
        "512Mi"
    );

    let (_, done, undone) = c
        .round_trip(step(ActionClass::ChangeCpuQuota, &[("factor", 2.0)]))
        .await;
    assert_eq!(
        container(applied_to(&done, DEPLOYMENT))["resources"]["limits"],
        json!({"cpu": "1000m"})
    );
    assert_eq!(
        container(applied_to(&undone, DEPLOYMENT))["resources"]["limits"],
        json!({"cpu": "500m"})
    );

    let (a, done, undone) = c.round_trip(step(ActionClass::Scale, &[("by", 1.0)])).await;
    assert!(a.detail.contains("2 -> 3 replicas"), "{}", a.detail);
    assert_eq!(
        applied_to(&done, DEPLOYMENT)["spec"],
        json!({"replicas": 3})
    );
    assert_eq!(
        applied_to(&undone, DEPLOYMENT)["spec"],
        json!({"replicas": 2})
    );

    let (_, done, undone) = c.round_trip(step(ActionClass::RolloutRestart, &[])).await;
    let restarted = &applied_to(&done, DEPLOYMENT)["spec"]["template"]["metadata"]["annotations"];
    assert!(
        restarted["kubectl.kubernetes.io/restartedAt"].is_string(),
        "{restarted:#}"
    );
    assert!(
        undone.is_empty(),
        "a restart has nothing to undo: {undone:#?}"
    );

    let (a, done, undone) = c.round_trip(step(ActionClass::Rollback, &[])).await;
    assert!(
        a.detail.contains("from revision 2 to revision 1"),
        "{}",
        a.detail
    );
    let [put] = done.as_slice() else {
        panic!("one replace: {done:#?}")
    };
    assert_eq!(
        (put.method.as_str(), put.path.as_str()),
        ("PUT", DEPLOYMENT)
    );
    assert!(put.query.contains("fieldManager=vigil"), "{put:#?}");
    assert!(
        put.body["metadata"]["resourceVersion"].is_string(),
        "conditional: {put:#?}"
    );
    let rolled = &put.body["spec"]["template"];
    assert_eq!(
        rolled["spec"]["containers"][0]["image"],
        "shop/checkout:1.4"
    );
    assert_eq!(rolled["metadata"]["labels"], json!({"app": "checkout"}));
    let [back] = undone.as_slice() else {
        panic!("one replace back: {undone:#?}")
    };
    assert_eq!(back.method, "PUT");
    assert_eq!(
        back.body["spec"]["template"]["spec"]["containers"][0]["image"],
        "shop/checkout:1.5"
    );

    let (_, done, undone) = c.round_trip(step(ActionClass::CordonNode, &[])).await;
    assert_eq!(
        applied_to(&done, "/api/v1/nodes/node-a")["spec"],
        json!({"unschedulable": true})
    );
    assert_eq!(
        applied_to(&undone, "/api/v1/nodes/node-a")["spec"],
        json!({"unschedulable": false})
    );

    let (a, done, undone) = c.round_trip(step(ActionClass::EvictPod, &[])).await;
    let [evict] = done.as_slice() else {
        panic!("one eviction: {done:#?}")
    };
    assert_eq!(
        (evict.method.as_str(), evict.path.as_str()),
        (
            "POST",
            "/api/v1/namespaces/shop/pods/checkout-7f9-x2k/eviction"
        )
    );
    assert_eq!(evict.body["metadata"]["name"], "checkout-7f9-x2k");
    assert!(
        a.detail.contains("deployment/shop/checkout replaces it"),
        "{}",
        a.detail
    );
    assert!(undone.is_empty(), "nothing to undo: {undone:#?}");
    assert!(c
        .api
        .object("v1", "shop", "pods", "checkout-7f9-x2k")
        .is_none());

    assert_rbac_allows(&c.api.requests(), &WITH_REMEDIATION);
}

/// checkout's HorizontalPodAutoscaler, between `min` and `max` replicas.
fn checkout_hpa(min: u32, max: u32) -> Value {
    json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
           "metadata": {"name": "checkout-hpa", "namespace": "shop"},
           "spec": {"minReplicas": min, "maxReplicas": max,
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "checkout"}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_hpa_scaling_raises_its_minimum_within_its_maximum() {
    let c = cluster(|api| {
        api.seed(
            "autoscaling/v2",
            "horizontalpodautoscalers",
            checkout_hpa(2, 3),
        );
    })
    .await;
    let hpa = "/apis/autoscaling/v2/namespaces/shop/horizontalpodautoscalers/checkout-hpa";
    let (_, done, undone) = c.round_trip(step(ActionClass::Scale, &[("by", 4.0)])).await;
    assert_eq!(
        applied_to(&done, hpa)["spec"],
        json!({"minReplicas": 3}),
        "capped at the maximum"
    );
    assert_eq!(applied_to(&undone, hpa)["spec"], json!({"minReplicas": 2}));
    // At its maximum now? Put it there, and the runtime says so rather than write.
    c.api.seed(
        "autoscaling/v2",
        "horizontalpodautoscalers",
        checkout_hpa(3, 3),
    );
    let before = c.api.requests().len();
    let e = c
        .apply(step(ActionClass::Scale, &[("by", 1.0)]))
        .await
        .expect_err("at max");
    assert!(e.to_string().contains("at its maximum (3)"), "{e}");
    assert!(c.writes(before).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eviction_a_disruption_budget_refuses_is_one_request_and_a_refusal() {
    let c = cluster(|api| {
        api.seed(
            "policy/v1",
            "poddisruptionbudgets",
            json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                   "metadata": {"name": "checkout", "namespace": "shop"},
                   "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "checkout"}}},
                   "status": {"disruptionsAllowed": 0}}),
        );
    })
    .await;
    let before = c.api.requests().len();
    let e = c
        .apply(step(ActionClass::EvictPod, &[]))
        .await
        .expect_err("the budget says no");
    assert!(matches!(e, RuntimeError::Refused { .. }), "{e:?}");
    assert!(
        e.to_string().contains("disruption budget") && e.to_string().contains("not retried"),
        "{e}"
    );
    let writes = c.writes(before);
    assert_eq!(writes.len(), 1, "no retry storm: {writes:#?}");
    assert!(c
        .api
        .object("v1", "shop", "pods", "checkout-7f9-x2k")
        .is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undo_leaves_alone_what_someone_changed_since_and_bad_targets_are_refused() {
    let c = cluster(|_| {}).await;
    let applied = c
        .apply(step(ActionClass::RaiseMemoryLimit, &[("factor", 1.5)]))
        .await
        .expect("raised");
    // Someone set 1Gi meanwhile.
    c.api.seed("apps/v1", "deployments", deployment("1Gi"));
    let before = c.api.requests().len();
    let e = c.undo(applied).await.expect_err("not Vigil's to undo");
    assert!(e.to_string().contains("someone changed it since"), "{e}");
    assert!(c.writes(before).is_empty());

    let refused = |target: EntityId, class: ActionClass, params: &'static [(&'static str, f64)]| {
        c.run(move |r| r.apply(&target, &step(class, params)))
    };
    let by_one: &[(&str, f64)] = &[("by", 1.0)];
    let e = refused(
        EntityId::new("cgroup/shop/checkout"),
        ActionClass::Scale,
        by_one,
    )
    .await
    .expect_err("not a pod");
    assert!(matches!(e, RuntimeError::Unsupported { .. }), "{e}");
    let e = refused(EntityId::pod("no-such-uid"), ActionClass::Scale, by_one)
        .await
        .expect_err("gone");
    assert!(e.to_string().contains("no pod with uid no-such-uid"), "{e}");
    let e = refused(pod(), ActionClass::RotateLog, &[])
        .await
        .expect_err("not here");
    assert!(matches!(e, RuntimeError::Unsupported { .. }), "{e}");
}
