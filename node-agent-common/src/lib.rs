//! Types shared by the kernel programs (`node-agent-ebpf`) and the agent (`node-agent`).
//!
//! Every struct is `#[repr(C)]` with explicit padding and a compile-time size check, so the
//! layout the eBPF program writes into the ring buffer is exactly the layout user space reads.
#![no_std]

#[cfg(test)]
extern crate std;

pub mod aggregates;
pub mod entity;
pub mod event;
pub mod l7;
pub mod layout;

pub use aggregates::*;
pub use event::*;
pub use layout::*;
