//! Getting events and metrics to the control plane: bounded buffers and the gRPC shippers.

pub mod buffer;
pub mod connection;
pub mod metrics_shipper;
pub mod sequence_file;
pub mod shipper;
