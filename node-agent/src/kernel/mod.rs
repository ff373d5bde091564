//! The kernel side as seen from user space: mounting, loading, attaching, reading.

pub mod decode;
pub mod probes;
pub mod reader;
pub mod tracefs;
