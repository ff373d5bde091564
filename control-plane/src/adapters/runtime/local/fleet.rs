//! The fleet as a host's supervisor shows it: the live service graph's workloads and
//! dependents, with a supervised workload's real replica count (the members of its service's
//! group) and how many of them serve. Without it every workload is its only replica and a
//! disruptive action on anything with callers is refused; with it, restarting one of two app
//! replicas is judged as a Deployment's would be.

use std::collections::BTreeMap;

use tracing::warn;

use super::Supervisor;
use crate::domain::{
    entity::EntityId,
    remediate::{ports::FleetView, supervisor::Supervised, GraphFleet, Workload},
    store::StoreError,
};

pub struct SupervisorFleet {
    pub graph: GraphFleet,
    pub supervisor: Supervisor,
}

/// The supervisor's name for a `cgroup/…` entity: its cgroup's last part.
fn name(id: &EntityId) -> Option<&str> {
    id.as_str().strip_prefix("cgroup/")?.rsplit('/').next()
}

fn fill(w: &mut Workload, name: &str, supervised: &[Supervised]) -> bool {
    let Some(me) = supervised.iter().find(|s| s.workload == name) else {
        return false;
    };
    let group: Vec<&Supervised> = supervised.iter().filter(|s| s.group == me.group).collect();
    w.replicas = u32::try_from(group.len()).unwrap_or(u32::MAX);
    w.healthy = u32::try_from(group.iter().filter(|s| s.serving).count()).unwrap_or(0);
    w.down = !me.serving;
    true
}

impl SupervisorFleet {
    fn supervised(&self) -> Vec<Supervised> {
        self.supervisor.fleet().unwrap_or_else(|e| {
            // Judged as the graph alone says: one replica each, the conservative answer.
            warn!(error = %e, "the supervisor's fleet is unknown; every workload counts as its only replica");
            Vec::new()
        })
    }
}

impl FleetView for SupervisorFleet {
    fn fleet(&self) -> Result<BTreeMap<EntityId, Workload>, StoreError> {
        let mut fleet = self.graph.fleet()?;
        let supervised = self.supervised();
        for (id, w) in fleet.iter_mut() {
            if let Some(n) = name(id) {
                fill(w, n, &supervised);
            }
        }
        Ok(fleet)
    }

    fn unlisted(&self, target: &EntityId) -> Option<Workload> {
        let mut w = self.graph.unlisted(target)?;
        if let Some(n) = name(target) {
            fill(&mut w, n, &self.supervised());
        }
        Some(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(workload: &str, group: &str, serving: bool) -> Supervised {
        Supervised {
            workload: workload.into(),
            group: group.into(),
            serving,
        }
    }

    #[test]
    fn replicas_are_the_group_and_healthy_the_ones_serving() {
        let sup = [
            s("app1", "app", true),
            s("app2", "app", false),
            s("db", "db", true),
        ];
        let mut w = Workload::default();
        assert!(fill(&mut w, "app1", &sup));
        assert_eq!((w.replicas, w.healthy, w.down), (2, 1, false));
        assert!(fill(&mut w, "app2", &sup));
        assert!(w.down, "app2 does not serve");
        assert!(fill(&mut w, "db", &sup));
        assert_eq!((w.replicas, w.healthy), (1, 1));
        let mut unknown = Workload {
            replicas: 1,
            healthy: 1,
            ..Workload::default()
        };
        assert!(
            !fill(&mut unknown, "cron", &sup),
            "not the supervisor's: as the graph says"
        );
        assert_eq!((unknown.replicas, unknown.healthy), (1, 1));
        assert_eq!(
            name(&EntityId::new("cgroup/x/vigil-lab-app1")),
            Some("vigil-lab-app1")
        );
        assert_eq!(name(&EntityId::new("k8s-pod/abc")), None);
    }
}
