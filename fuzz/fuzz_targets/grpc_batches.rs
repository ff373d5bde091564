//! What an agent (or anyone who reaches the gRPC port) sends, decoded as the ingest decodes
//! it and turned into domain types: an `EventBatch`, a `MetricBatch` or a `NodeHello` from
//! arbitrary bytes (the first byte picks which). Never a panic; an accepted batch holds what
//! the domain relies on: within the size limit, sequence numbers increasing.

#![no_main]

use control_plane::adapters::wire;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use vigil_proto::v1;

const MAX: usize = 64;

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => {
            let Ok(batch) = v1::EventBatch::decode(bytes) else {
                return;
            };
            if let Ok(b) = wire::batch(&batch, MAX) {
                assert!(b.events.len() <= MAX);
                assert!(b.events.windows(2).all(|w| w[0].seq < w[1].seq));
                assert!(!b.node.is_empty());
            }
        }
        1 => {
            let Ok(batch) = v1::MetricBatch::decode(bytes) else {
                return;
            };
            let _ = wire::metric_batch(&batch, MAX);
        }
        _ => {
            let Ok(hello) = v1::NodeHello::decode(bytes) else {
                return;
            };
            let _ = wire::node_info(&hello, 1_700_000_000_000_000_000);
        }
    }
});
