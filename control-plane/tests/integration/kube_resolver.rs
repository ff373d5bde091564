//! The Kubernetes endpoint resolver against a scripted API server speaking the real
//! Kubernetes list/watch JSON over a real socket (there is no cluster here).

use std::time::Duration;

use crate::support::apiserver::ApiServer;
use control_plane::{
    adapters::kube::KubeEndpoints,
    domain::{graph::ports::EndpointResolver, interval::Endpoint},
};
use serde_json::json;

/// The cluster: a pod, a host-network pod, a Service, and an EndpointSlice of a Service with
/// no pods behind it (an external database).
fn seed(api: &ApiServer) {
    api.seed(
        "v1",
        "pods",
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "redis-0", "namespace": "default", "uid": "7d1c9a52-0000-4000-8000-000000000001"},
            "spec": {"containers": [{"name": "redis", "image": "redis:7"}]},
            "status": {"podIP": "10.244.1.7", "podIPs": [{"ip": "10.244.1.7"}]}
        }),
    );
    api.seed(
        "v1",
        "pods",
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "node-exporter", "namespace": "kube-system", "uid": "7d1c9a52-0000-4000-8000-000000000002"},
            "spec": {"hostNetwork": true, "containers": [{"name": "x", "image": "x"}]},
            "status": {"podIP": "192.168.1.10", "podIPs": [{"ip": "192.168.1.10"}]}
        }),
    );
    api.seed(
        "v1",
        "services",
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "redis", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"], "ports": [{"port": 6379, "protocol": "TCP"}]}
        }),
    );
    api.seed(
        "discovery.k8s.io/v1",
        "endpointslices",
        json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "external-pg-x1", "namespace": "db",
                         "labels": {"kubernetes.io/service-name": "external-pg"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["172.16.5.5"]}],
            "ports": [{"port": 5432, "protocol": "TCP"}]
        }),
    );
}

fn ep(s: &str) -> Endpoint {
    let (ip, port) = s.rsplit_once(':').expect("ip:port");
    Endpoint {
        ip: ip.parse().expect("ip"),
        port: port.parse().expect("port"),
    }
}

#[tokio::test]
async fn resolves_services_pods_and_slice_endpoints_from_watches() {
    let api = ApiServer::start().await;
    seed(&api);
    let url = api.url_for("cp");
    let client =
        kube::Client::try_from(kube::Config::new(url.parse().expect("uri"))).expect("client");
    let resolver = KubeEndpoints::start(client);
    tokio::time::timeout(Duration::from_secs(10), resolver.wait_ready())
        .await
        .expect("all three watches list within 10 s")
        .expect("stores ready");

    let resolve = |s: &str| {
        resolver
            .resolve(&ep(s))
            .map(|r| (r.entity.to_string(), r.kind.as_str()))
    };
    assert_eq!(
        resolve("10.96.0.10:6379"),
        Some(("k8s-svc/default/redis".to_string(), "service"))
    );
    assert_eq!(
        resolve("10.244.1.7:6379"),
        Some((
            "k8s-pod/7d1c9a52-0000-4000-8000-000000000001".to_string(),
            "pod"
        )),
        "pod IPs resolve to the key agents give the pod's workload"
    );
    assert_eq!(
        resolve("172.16.5.5:5432"),
        Some(("k8s-svc/db/external-pg".to_string(), "service"))
    );
    assert_eq!(
        resolve("192.168.1.10:9100"),
        None,
        "host-network pods are ambiguous"
    );
    assert_eq!(
        resolve("10.96.0.10:80"),
        None,
        "a ClusterIP on a port the Service does not expose"
    );

    // It watched, not just listed.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let seen: Vec<String> = api
        .requests()
        .into_iter()
        .map(|r| format!("{}?{}", r.path, r.query))
        .collect();
    for path in [
        "/api/v1/pods",
        "/api/v1/services",
        "/apis/discovery.k8s.io/v1/endpointslices",
    ] {
        assert!(
            seen.iter()
                .any(|u| u.starts_with(path) && u.contains("watch=")),
            "no watch on {path}: {seen:?}"
        );
    }
}
