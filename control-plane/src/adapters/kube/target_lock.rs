//! One remediation per target across control-plane replicas: a `coordination.k8s.io` Lease
//! per target, `vigil-remediation-<first 16 hex of sha256(target)>` (the target itself in an
//! annotation), held under this replica's identity while its action is verified. A Lease
//! another holder renewed within its duration refuses the action; a free or expired one is
//! taken by a create, or a replace conditioned on the resource version read, so of two
//! replicas racing for it exactly one wins (the other gets 409 and is refused).

use std::collections::BTreeMap;

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
};
use kube::{api::PostParams, Api, Client};
use sha2::{Digest, Sha256};

use crate::{
    adapters::outbound,
    domain::{
        entity::EntityId,
        remediate::ports::{Grant, LockError, TargetLock},
    },
};

/// The annotation naming the target a Lease locks (its name is a hash: names are short).
pub const TARGET_ANNOTATION: &str = "vigil.dev/remediation-target";

pub struct KubeTargetLock {
    api: Api<Lease>,
    identity: String,
}

impl KubeTargetLock {
    /// Leases in `namespace`, held as `identity` (the replica's, as for leader election).
    pub fn new(client: Client, namespace: &str, identity: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            identity: identity.to_string(),
        }
    }
}

/// The Lease's name for `target`.
pub fn lease_name(target: &EntityId) -> String {
    let digest = Sha256::digest(target.as_str().as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("vigil-remediation-{hex}")
}

fn lock_error(target: &EntityId, why: impl std::fmt::Display) -> LockError {
    LockError {
        target: target.clone(),
        why: why.to_string(),
    }
}

fn conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// Whether `lease` is held by someone other than `me` and still within its duration.
fn held_by_other(lease: &Lease, me: &str, now: jiff::Timestamp) -> Option<String> {
    let spec = lease.spec.as_ref()?;
    let holder = spec.holder_identity.as_deref().filter(|h| !h.is_empty())?;
    if holder == me {
        return None;
    }
    // A holder whose Lease says nothing of when it lapses holds it: free is only what is
    // known to be free.
    let (Some(renewed), Some(secs)) = (
        spec.renew_time.as_ref().or(spec.acquire_time.as_ref()),
        spec.lease_duration_seconds,
    ) else {
        return Some(holder.to_string());
    };
    let lapses = renewed
        .0
        .checked_add(jiff::SignedDuration::from_secs(i64::from(secs)))
        .ok();
    lapses.is_none_or(|t| t > now).then(|| holder.to_string())
}

impl KubeTargetLock {
    fn spec(&self, seconds: i32, now: jiff::Timestamp, acquired: Option<MicroTime>) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(seconds),
            acquire_time: Some(acquired.unwrap_or(MicroTime(now))),
            renew_time: Some(MicroTime(now)),
            ..LeaseSpec::default()
        }
    }

    async fn take(&self, target: &EntityId, for_ns: i64) -> Result<Grant, kube::Error> {
        let name = lease_name(target);
        let now = jiff::Timestamp::now();
        let seconds = i32::try_from((for_ns / 1_000_000_000).max(1)).unwrap_or(i32::MAX);
        let lost = |e: kube::Error| {
            if conflict(&e) {
                Ok(Grant::HeldBy(
                    "another replica (it took the lock first)".into(),
                ))
            } else {
                Err(e)
            }
        };
        match self.api.get_opt(&name).await? {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(name),
                        annotations: Some(BTreeMap::from([(
                            TARGET_ANNOTATION.to_string(),
                            target.to_string(),
                        )])),
                        labels: Some(BTreeMap::from([(
                            "app.kubernetes.io/managed-by".to_string(),
                            "vigil".to_string(),
                        )])),
                        ..ObjectMeta::default()
                    },
                    spec: Some(self.spec(seconds, now, None)),
                };
                match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(Grant::Taken),
                    Err(e) => lost(e),
                }
            }
            Some(mut lease) => {
                if let Some(holder) = held_by_other(&lease, &self.identity, now) {
                    return Ok(Grant::HeldBy(holder));
                }
                let ours = lease
                    .spec
                    .as_ref()
                    .and_then(|s| s.holder_identity.as_deref())
                    == Some(self.identity.as_str());
                let acquired = ours
                    .then(|| lease.spec.as_ref().and_then(|s| s.acquire_time.clone()))
                    .flatten();
                lease.spec = Some(self.spec(seconds, now, acquired));
                // Conditional on the resourceVersion read: a racing replica's write fails ours.
                match self
                    .api
                    .replace(&lease_name(target), &PostParams::default(), &lease)
                    .await
                {
                    Ok(_) => Ok(Grant::Taken),
                    Err(e) => lost(e),
                }
            }
        }
    }

    async fn give_back(&self, target: &EntityId) -> Result<(), kube::Error> {
        let name = lease_name(target);
        let Some(mut lease) = self.api.get_opt(&name).await? else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        match self
            .api
            .replace(&name, &PostParams::default(), &lease)
            .await
        {
            // Someone took it over (ours had expired): theirs now.
            Err(e) if conflict(&e) => Ok(()),
            other => other.map(|_| ()),
        }
    }
}

impl TargetLock for KubeTargetLock {
    fn acquire(&self, target: &EntityId, for_ns: i64) -> Result<Grant, LockError> {
        outbound::block_on(self.take(target, for_ns))
            .map_err(|e| lock_error(target, e))?
            .map_err(|e| lock_error(target, format!("the Lease {}: {e}", lease_name(target))))
    }

    fn release(&self, target: &EntityId) -> Result<(), LockError> {
        outbound::block_on(self.give_back(target))
            .map_err(|e| lock_error(target, e))?
            .map_err(|e| lock_error(target, format!("the Lease {}: {e}", lease_name(target))))
    }
}
