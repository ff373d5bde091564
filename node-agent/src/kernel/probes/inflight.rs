//! State a group keeps between two events: a syscall's entry and its exit, a task's wake-up
//! and its switch-in, a block request's issue and its completion. A detached group misses the
//! second event of whatever was in flight; attached again, it would time a call's exit now
//! against an entry from before it was detached (a latency as long as the outage). So that
//! state is cleared before a group attaches again.

use std::mem::size_of;

use aya::{
    maps::{HashMap, MapError},
    Ebpf,
};
use node_agent_common::{BlockRequest, BlockRequestKey, SyscallStart};

use super::ProbeGroup;

/// Removes every entry of the hash map `name`, whose keys and values are `K` and `V` bytes.
fn clear<const K: usize, const V: usize>(
    ebpf: &mut Ebpf,
    name: &'static str,
) -> Result<usize, MapError> {
    let Some(map) = ebpf.map_mut(name) else {
        return Ok(0);
    };
    let mut map = HashMap::<_, [u8; K], [u8; V]>::try_from(map)?;
    let keys: Vec<[u8; K]> = map.keys().filter_map(Result::ok).collect();
    let mut removed = 0;
    for k in &keys {
        // Gone already (completed, or evicted by the LRU) is as good as removed.
        if map.remove(k).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

/// Clears the in-flight state of `group`'s programs; returns how many entries went.
pub fn clear_group(ebpf: &mut Ebpf, group: ProbeGroup) -> Result<usize, MapError> {
    match group {
        ProbeGroup::Syscalls => {
            clear::<{ size_of::<u32>() }, { size_of::<SyscallStart>() }>(ebpf, "SYSCALL_START")
        }
        ProbeGroup::RunQueue => {
            clear::<{ size_of::<u32>() }, { size_of::<u64>() }>(ebpf, "RUNNABLE_SINCE")
        }
        ProbeGroup::BlockIo => clear::<
            { size_of::<BlockRequestKey>() },
            { size_of::<BlockRequest>() },
        >(ebpf, "BLOCK_INFLIGHT"),
        _ => Ok(0),
    }
}
