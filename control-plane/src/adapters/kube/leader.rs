//! Leader election between control-plane replicas on a `coordination.k8s.io/v1` Lease
//! (kube-lease-manager): only the holder writes to the cluster (IncidentReports, and later
//! remediation). Without Kubernetes there is one replica, and it leads.

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// Whether this replica may act now.
#[derive(Clone, Debug)]
pub struct Leadership(Arc<AtomicBool>);

impl Leadership {
    /// A single replica: always the leader.
    pub fn sole() -> Self {
        Self(Arc::new(AtomicBool::new(true)))
    }

    pub fn is_leader(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Where and how long to hold the lease.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    pub namespace: String,
    pub name: String,
    /// This replica's name in `holderIdentity` (the pod name).
    pub identity: String,
    pub duration_secs: u64,
    /// Renew this long before the lease expires.
    pub grace_secs: u64,
}

/// The running campaign; `resign` gives the lease up for another replica.
pub struct Election {
    stop: tokio::sync::oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Election {
    /// Releases the lease (bounded wait), so a standby replica takes over at once instead of
    /// after the lease expires.
    pub async fn resign(self) {
        let _ = self.stop.send(());
        if tokio::time::timeout(std::time::Duration::from_secs(3), self.task)
            .await
            .is_err()
        {
            warn!("releasing the Lease took too long; it will expire instead");
        }
    }
}

/// Campaigns for the lease in the background; the flag follows what the manager reports.
pub async fn campaign(
    client: kube::Client,
    settings: &LeaseSettings,
) -> Result<(Leadership, Election), LeaseManagerError> {
    let manager = LeaseManagerBuilder::new(client, settings.name.clone())
        .with_namespace(settings.namespace.clone())
        .with_identity(settings.identity.clone())
        .with_duration(settings.duration_secs)
        .with_grace(settings.grace_secs)
        .build()
        .await?;
    let (mut changes, manager_task) = manager.watch().await;
    let leadership = Leadership(Arc::new(AtomicBool::new(*changes.borrow())));
    let flag = leadership.0.clone();
    let (lease, identity) = (settings.name.clone(), settings.identity.clone());
    let (stop, mut stopped) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        loop {
            let leading = *changes.borrow_and_update();
            if flag.swap(leading, Ordering::AcqRel) != leading {
                if leading {
                    info!(%lease, %identity, "leader: this replica acts on the cluster");
                } else {
                    info!(%lease, %identity, "follower: another replica holds the lease");
                }
            }
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { break },
                _ = &mut stopped => break,
            }
        }
        flag.store(false, Ordering::Release);
        // Closing the channel makes the manager release the lease and return.
        drop(changes);
        match manager_task.await {
            Ok(Err(e)) => warn!(error = %e, "leader election stopped"),
            Err(e) => warn!(error = %e, "leader election task failed"),
            Ok(Ok(_)) => info!(%lease, "Lease released"),
        }
    });
    Ok((leadership, Election { stop, task }))
}
