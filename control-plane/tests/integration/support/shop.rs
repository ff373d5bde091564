//! The shop's `checkout` Deployment as the cluster tests seed it: revision 2 running, revision
//! 1 kept, one pod of it on `node-a`.

use serde_json::{json, Value};

use super::apiserver::ApiServer;

pub const POD_UID: &str = "5b0e2c11-0000-4000-8000-0000000000b7";
pub const DEPLOYMENT: &str = "/apis/apps/v1/namespaces/shop/deployments/checkout";

pub fn owner(kind: &str, name: &str, uid: &str) -> Value {
    json!([{"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": uid,
            "controller": true, "blockOwnerDeletion": true}])
}

pub fn template(image: &str, hash: Option<&str>) -> Value {
    let mut labels = json!({"app": "checkout"});
    if let Some(h) = hash {
        labels["pod-template-hash"] = json!(h);
    }
    json!({"metadata": {"labels": labels},
           "spec": {"containers": [{"name": "checkout", "image": image,
                    "resources": {"limits": {"memory": "512Mi", "cpu": "500m"}}}]}})
}

pub fn replicaset(name: &str, uid: &str, revision: u32, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": "shop", "uid": uid,
                     "annotations": {"deployment.kubernetes.io/revision": revision.to_string()},
                     "ownerReferences": owner("Deployment", "checkout", "dep-checkout")},
        "spec": {"selector": {"matchLabels": {"app": "checkout"}},
                 "template": template(image, Some(&name[name.len() - 3..]))}
    })
}

pub fn deployment(memory: &str) -> Value {
    let mut t = template("shop/checkout:1.5", None);
    t["spec"]["containers"][0]["resources"]["limits"]["memory"] = json!(memory);
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "checkout", "namespace": "shop", "uid": "dep-checkout"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "checkout"}}, "template": t}
    })
}

/// The shop's checkout Deployment at revision 2 (revision 1 kept), one pod of it on node-a.
pub fn seed(api: &ApiServer) {
    api.seed("apps/v1", "deployments", deployment("512Mi"));
    api.seed(
        "apps/v1",
        "replicasets",
        replicaset("checkout-6d4", "rs-1", 1, "shop/checkout:1.4"),
    );
    api.seed(
        "apps/v1",
        "replicasets",
        replicaset("checkout-7f9", "rs-2", 2, "shop/checkout:1.5"),
    );
    api.seed(
        "v1",
        "pods",
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "checkout-7f9-x2k", "namespace": "shop", "uid": POD_UID,
                         "labels": {"app": "checkout", "pod-template-hash": "7f9"},
                         "ownerReferences": owner("ReplicaSet", "checkout-7f9", "rs-2")},
            "spec": {"nodeName": "node-a", "containers": [{"name": "checkout", "image": "shop/checkout:1.5"}]},
            "status": {"podIP": "10.244.2.9"}
        }),
    );
    api.seed(
        "v1",
        "nodes",
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a"}, "spec": {}}),
    );
}
