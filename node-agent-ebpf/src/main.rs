//! Vigil's eBPF programs. Built by `cargo xtask build-ebpf` for `bpfel-unknown-none`; the agent
//! embeds the object. Only tracepoints are used: this project's target kernels may have no
//! kprobes and may refuse BTF tracing programs (fentry/tp_btf).
#![no_std]
#![no_main]

mod emit;
mod maps;
mod oom;
mod process;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

// GPL-compatible: needed for bpf_probe_read_kernel and the ring buffer helpers.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
