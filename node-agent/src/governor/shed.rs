//! What the agent turns off under pressure, in order. Each step detaches whole probe groups:
//! a detached program costs the kernel nothing, where a program that returns early still
//! costs its call on every event. Process lifecycle and network flows (exits, OOM kills,
//! resets, retransmissions, bytes, DNS) are never shed: they are what incidents open on.

use crate::kernel::probes::ProbeGroup;

/// One step of shedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// The name reported in `AgentStats.shed` and `/metrics`.
    pub name: &'static str,
    pub groups: &'static [ProbeGroup],
}

/// Cheapest loss first: TLS payloads (uprobes on OpenSSL, and a tracepoint on every
/// read/write to learn their sockets), then latency (every syscall's slow path, every context
/// switch, every block request), then L7 requests parsed from packets.
pub const STEPS: [Step; 3] = [
    Step {
        name: "payload",
        groups: &[ProbeGroup::Tls],
    },
    Step {
        name: "latency",
        groups: &[
            ProbeGroup::Syscalls,
            ProbeGroup::RunQueue,
            ProbeGroup::BlockIo,
        ],
    },
    Step {
        name: "requests",
        groups: &[ProbeGroup::Requests],
    },
];

/// The names of the steps in force at `level` (the first `level` steps).
pub fn shed_at(level: usize) -> Vec<String> {
    STEPS
        .iter()
        .take(level)
        .map(|s| s.name.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_never_shed_and_no_group_is_shed_twice() {
        let shed: Vec<ProbeGroup> = STEPS.iter().flat_map(|s| s.groups).copied().collect();
        assert!(!shed.contains(&ProbeGroup::Process));
        assert!(!shed.contains(&ProbeGroup::Network));
        for g in &shed {
            assert_eq!(shed.iter().filter(|x| *x == g).count(), 1, "{g:?}");
        }
        assert_eq!(shed_at(0), Vec::<String>::new());
        assert_eq!(shed_at(2), ["payload", "latency"]);
    }
}
