//! The Kubernetes endpoint resolver against a scripted API server speaking the real
//! Kubernetes list/watch JSON over a real socket (there is no cluster here).

use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{body::Body, extract::Request, response::Response, Router};
use control_plane::{
    adapters::kube::KubeEndpoints, domain::telemetry::Endpoint, ports::EndpointResolver,
};
use serde_json::json;

fn list(kind: &str, api_version: &str, items: serde_json::Value) -> String {
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"resourceVersion": "100"},
        "items": items,
    })
    .to_string()
}

/// Answers list requests with fixed objects and holds watch requests open with no events.
async fn api_server(requests: Arc<Mutex<Vec<String>>>) -> String {
    let pods = list(
        "PodList",
        "v1",
        json!([{
            "metadata": {"name": "redis-0", "namespace": "default", "uid": "7d1c9a52-0000-4000-8000-000000000001", "resourceVersion": "11"},
            "spec": {"containers": [{"name": "redis", "image": "redis:7"}]},
            "status": {"podIP": "10.244.1.7", "podIPs": [{"ip": "10.244.1.7"}]}
        }, {
            "metadata": {"name": "node-exporter", "namespace": "kube-system", "uid": "7d1c9a52-0000-4000-8000-000000000002", "resourceVersion": "12"},
            "spec": {"hostNetwork": true, "containers": [{"name": "x", "image": "x"}]},
            "status": {"podIP": "192.168.1.10", "podIPs": [{"ip": "192.168.1.10"}]}
        }]),
    );
    let services = list(
        "ServiceList",
        "v1",
        json!([{
            "metadata": {"name": "redis", "namespace": "default", "resourceVersion": "13"},
            "spec": {"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"], "ports": [{"port": 6379, "protocol": "TCP"}]}
        }]),
    );
    let slices = list(
        "EndpointSliceList",
        "discovery.k8s.io/v1",
        json!([{
            "metadata": {"name": "external-pg-x1", "namespace": "db", "resourceVersion": "14",
                         "labels": {"kubernetes.io/service-name": "external-pg"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["172.16.5.5"]}],
            "ports": [{"port": 5432, "protocol": "TCP"}]
        }]),
    );
    let app = Router::new().fallback(move |req: Request| {
        let (pods, services, slices) = (pods.clone(), services.clone(), slices.clone());
        let requests = requests.clone();
        async move {
            let uri = req.uri().to_string();
            requests.lock().expect("lock").push(uri.clone());
            let body = match req.uri().path() {
                "/api/v1/pods" => pods,
                "/api/v1/services" => services,
                "/apis/discovery.k8s.io/v1/endpointslices" => slices,
                _ => {
                    return Response::builder()
                        .status(404)
                        .body(Body::from("{}"))
                        .expect("response")
                }
            };
            let watch = req
                .uri()
                .query()
                .is_some_and(|q| q.contains("watch=true") || q.contains("watch=1"));
            let body = if watch {
                Body::from_stream(futures::stream::pending::<Result<Vec<u8>, Infallible>>())
            } else {
                Body::from(body)
            };
            Response::builder()
                .header("content-type", "application/json")
                .body(body)
                .expect("response")
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
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
    let requests = Arc::new(Mutex::new(Vec::new()));
    let url = api_server(requests.clone()).await;
    let client =
        kube::Client::try_from(kube::Config::new(url.parse().expect("uri"))).expect("client");
    let resolver = KubeEndpoints::start(client);
    tokio::time::timeout(Duration::from_secs(10), resolver.wait_ready())
        .await
        .expect("all three watches list within 10 s")
        .expect("stores ready");

    let resolve = |s: &str| resolver.resolve(&ep(s)).map(|r| (r.entity, r.kind));
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
    let seen = requests.lock().expect("lock").clone();
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
