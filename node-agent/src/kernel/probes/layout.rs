//! Reading, for each probe group, the `format` files of the tracepoints it attaches to and the
//! field offsets its programs use. What is read comes from the group's declaration
//! (`groups.rs`, which runs the read: `read_layouts`); nothing here names a tracepoint.

use std::{collections::HashMap, path::Path, sync::Arc};

use node_agent_common::{
    SockTupleLayout, TelemetryLayout, TracepointLayout, TUPLE_SOCKADDR, TUPLE_SPLIT,
};

use super::spec::{ProbeGroup, ProbeSpec};
use crate::kernel::tracefs::{TracefsError, TracepointFormat};

/// The two load-time globals of the eBPF object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layouts {
    /// `TP_LAYOUT`: the process group's offsets.
    pub process: TracepointLayout,
    /// `TELEMETRY_LAYOUT`: the telemetry groups' offsets.
    pub telemetry: TelemetryLayout,
}

impl Layouts {
    /// Every offset `FIELD_ABSENT`.
    pub const fn absent() -> Self {
        Self {
            process: TracepointLayout::absent(),
            telemetry: TelemetryLayout::absent(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error(transparent)]
    Tracefs(#[from] TracefsError),
    /// The group's layout reads a tracepoint none of its programs attaches to: a mistake in
    /// the probe table, not in the kernel.
    #[error(
        "the {group:?} probe group reads tracepoint {tracepoint} but attaches no program to \
         it: declare that tracepoint in the group (node-agent/src/kernel/probes/groups.rs)"
    )]
    Undeclared {
        group: ProbeGroup,
        tracepoint: String,
    },
    /// One program serves two tracepoints whose field offsets differ on this kernel.
    #[error(
        "tracepoint {tracepoint} has `{field}` at offset {offset} but {like} at {expected}; \
         one program serves both, so this kernel's layouts must match"
    )]
    Mismatch {
        field: &'static str,
        tracepoint: &'static str,
        offset: u32,
        like: &'static str,
        expected: u32,
    },
}

/// The formats of one group's tracepoints, read from tracefs.
#[derive(Debug)]
pub struct Formats {
    group: ProbeGroup,
    formats: Vec<((&'static str, &'static str), TracepointFormat)>,
}

impl Formats {
    /// Reads the format of every (raw) tracepoint `probes` (the group's) attach to, in
    /// declaration order; the first missing one fails the group.
    pub fn read(
        tracefs: &Path,
        group: ProbeGroup,
        probes: &[ProbeSpec],
    ) -> Result<Self, TracefsError> {
        let mut formats: Vec<((&'static str, &'static str), TracepointFormat)> = Vec::new();
        for point in probes.iter().filter_map(|p| p.attach.tracepoint()) {
            if formats.iter().all(|(read, _)| *read != point) {
                formats.push((point, TracepointFormat::read(tracefs, point.0, point.1)?));
            }
        }
        Ok(Self { group, formats })
    }

    /// The format of one of the group's tracepoints.
    pub fn get(&self, category: &str, name: &str) -> Result<&TracepointFormat, LayoutError> {
        self.formats
            .iter()
            .find(|((c, n), _)| *c == category && *n == name)
            .map(|(_, format)| format)
            .ok_or_else(|| LayoutError::Undeclared {
                group: self.group,
                tracepoint: format!("{category}:{name}"),
            })
    }
}

/// Where a TCP tracepoint keeps its 4-tuple: whole `sockaddr`s (28-byte `saddr`) or split
/// fields.
pub fn sock_tuple(f: &TracepointFormat) -> Result<SockTupleLayout, TracefsError> {
    let saddr = f.field("saddr");
    if saddr.is_some_and(|s| s.size >= 16) {
        return Ok(SockTupleLayout {
            mode: TUPLE_SOCKADDR,
            saddr: f.offset("saddr")?,
            daddr: f.offset("daddr")?,
            ..SockTupleLayout::absent()
        });
    }
    Ok(SockTupleLayout {
        mode: TUPLE_SPLIT,
        sport: f.offset("sport")?,
        dport: f.offset("dport")?,
        family: f.offset("family")?,
        saddr: f.offset("saddr")?,
        daddr: f.offset("daddr")?,
        saddr_v6: f.offset("saddr_v6")?,
        daddr_v6: f.offset("daddr_v6")?,
    })
}

/// Why each group that cannot run on this kernel cannot; shared by the group's probes.
pub type GroupFailures = HashMap<ProbeGroup, Arc<LayoutError>>;
