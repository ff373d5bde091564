//! The Kubernetes side of a control plane: the API client, the Lease election, the mirror of
//! incidents into IncidentReports and the controller for reports others create.

use std::sync::Arc;

use tokio::task::JoinHandle;
use tracing::info;

use super::{build::ControlPlane, error::AppError};
use crate::{
    adapters::kube::{
        book::{ReportBook, Stored},
        leader::{self, Election, Leadership, LeaseSettings},
        mirror::KubeMirror,
        reconcile,
        report::IncidentReport,
    },
    config::KubernetesConfig,
};

/// The client configuration for `api_server` (empty: in-cluster or `$KUBECONFIG`).
pub async fn client_config(api_server: &str) -> Result<kube::Config, AppError> {
    let config = if api_server.is_empty() {
        kube::Config::infer()
            .await
            .map_err(|source| AppError::KubeConfig { source })?
    } else {
        let uri = api_server.parse().map_err(|source| AppError::KubeUri {
            uri: api_server.to_string(),
            source,
        })?;
        kube::Config::new(uri)
    };
    Ok(config)
}

/// What runs against the cluster until shutdown.
pub struct ClusterTasks {
    election: Option<Election>,
    tasks: Vec<JoinHandle<()>>,
}

impl ClusterTasks {
    /// Stops the controller and gives the Lease up, so a standby takes over at once.
    pub async fn stop(self) {
        for t in self.tasks {
            t.abort();
        }
        if let Some(e) = self.election {
            e.resign().await;
        }
    }
}

/// Campaigns for the Lease (unless `leader_election` is off), then mirrors incidents into
/// IncidentReports and runs the controller for handed-in reports (when `incident_reports`).
pub async fn start(
    client: kube::Client,
    k: &KubernetesConfig,
    cp: &ControlPlane,
) -> Result<ClusterTasks, AppError> {
    let namespace = k.resolved_namespace();
    let mut election = None;
    let leadership = if k.leader_election {
        let settings = LeaseSettings {
            namespace: namespace.clone(),
            name: k.lease_name.clone(),
            identity: k.resolved_identity(),
            duration_secs: k.lease_duration_secs,
            grace_secs: k.lease_grace_secs,
        };
        let (leadership, campaign) =
            leader::campaign(client.clone(), &settings)
                .await
                .map_err(|source| AppError::Election {
                    lease: format!("{namespace}/{}", k.lease_name),
                    source,
                })?;
        election = Some(campaign);
        leadership
    } else {
        Leadership::sole()
    };
    let mut tasks = Vec::new();
    if k.incident_reports {
        let reports: kube::Api<IncidentReport> = kube::Api::namespaced(client, &namespace);
        let book = ReportBook::with_store(Stored {
            diagnoses: cp.store.clone(),
            actions: cp.store.clone(),
        });
        let mirror = Arc::new(KubeMirror::start(reports.clone(), leadership.clone(), book));
        cp.observers.add(mirror.clone());
        let mut ctx = reconcile::Context::new(
            reports,
            cp.alerts.clone(),
            cp.incidents.clone(),
            leadership,
            cp.clock.clone(),
        );
        ctx.book = mirror.book();
        tasks.push(tokio::spawn(reconcile::run(Arc::new(ctx))));
        info!(%namespace, "mirroring incidents into IncidentReports");
    }
    Ok(ClusterTasks { election, tasks })
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[tokio::test]
    async fn a_bad_api_server_url_is_named_with_its_cause() {
        let Err(err) = client_config("not a url").await else {
            panic!("a client for an address that is not a URL");
        };
        assert!(
            matches!(&err, AppError::KubeUri { uri, .. } if uri == "not a url"),
            "{err:?}"
        );
        assert!(
            err.source().is_some(),
            "the parser's own error is kept as the source"
        );
    }
}
