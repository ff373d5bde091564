//! Metric batches waiting for the control plane: the agent's bounded buffer, holding
//! intervals. Past the bound the oldest interval is dropped and counted.

use vigil_proto::v1;

pub type MetricQueue = crate::stream::buffer::EventBuffer<v1::MetricBatch>;

pub fn metric_queue(capacity: usize) -> MetricQueue {
    MetricQueue::of("metric intervals", capacity)
}
