//! Control-plane configs as the cluster tests run them.

use std::path::Path;

use control_plane::config::ControlPlaneConfig;

use super::apiserver::ApiServer;

/// A control plane on ephemeral loopback ports with its store in `dir`, detection off: for
/// tests about the API, the console, the cluster side.
pub fn local_config(dir: &Path) -> ControlPlaneConfig {
    let mut config = ControlPlaneConfig {
        grpc_listen: "127.0.0.1:0".parse().expect("addr"),
        http_listen: "127.0.0.1:0".parse().expect("addr"),
        store_path: dir.join("vigil.db"),
        ..Default::default()
    };
    config.detection.enabled = false;
    config
}

/// A replica named `identity` against the in-memory API server: ephemeral ports, its store in
/// `dir`, namespace `vigil`, detection off (these tests are about the cluster side).
pub fn cluster_config(api: &ApiServer, identity: &str, dir: &Path) -> ControlPlaneConfig {
    let mut config = local_config(dir);
    config.kubernetes.enabled = true;
    config.kubernetes.api_server = api.url_for(identity);
    config.kubernetes.namespace = "vigil".into();
    config.kubernetes.identity = identity.into();
    config
}
