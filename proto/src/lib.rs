//! Vigil's wire contract (`vigil.agent.v1`), generated from `proto/vigil/agent/v1/agent.proto`.

/// Minor revision of the v1 protocol this build speaks (carried in `NodeHello`).
pub const PROTOCOL_VERSION: u32 = 2;

pub mod agent {
    pub mod v1 {
        tonic::include_proto!("vigil.agent.v1");
    }
}

pub use agent::v1;
