//! Vigil's eBPF programs. Built by `cargo xtask build-ebpf` for `bpfel-unknown-none`; the agent
//! embeds the object. Tracepoints, raw tracepoints (`sys_enter`/`sys_exit`), cgroup_skb
//! programs and uprobes (OpenSSL) only: this project's target kernels may have no kprobes
//! and may refuse BTF tracing programs (fentry/tp_btf).
#![no_std]
#![no_main]
// Atomic adds on shared map counters (see `agg::atomic_add`); eBPF is built with nightly.
#![cfg_attr(
    target_arch = "bpf",
    expect(
        internal_features,
        reason = "core_intrinsics::atomic_xadd is the only atomic add on the BPF target"
    )
)]
#![cfg_attr(target_arch = "bpf", feature(core_intrinsics))]

mod agg;
mod block;
mod emit;
mod l7;
mod maps;
mod oom;
mod packet;
mod process;
mod sched;
mod skb;
mod syscalls;
mod tcp;
mod tls;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

// GPL-compatible: needed for bpf_probe_read_kernel and the ring buffer helpers.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
