//! Getting events to the control plane: a bounded buffer and the gRPC shipper.

pub mod buffer;
pub mod shipper;
