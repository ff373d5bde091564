//! Whole-map reads and deletes in a few syscalls: `BPF_MAP_LOOKUP_BATCH` and
//! `BPF_MAP_DELETE_BATCH` (Linux 5.6), which aya does not wrap.
//!
//! Why: iterating a hash map costs two syscalls per entry (next key, then lookup) and a
//! delete one more. The flow map turns over every connection on the node: at 10k
//! connections/s that was ~30k syscalls/s of the agent's own, now a handful per interval.
//! A kernel without batch operations answers EINVAL and the caller falls back to iterating.

use std::{
    io,
    mem::size_of,
    os::fd::{AsFd, AsRawFd, BorrowedFd},
};

use aya::Pod;

const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
const BPF_MAP_DELETE_BATCH: libc::c_long = 27;

/// Entries asked for per call: the buffers stay small (per-CPU values are one per CPU) and a
/// 65,536-entry map is still read in 256 calls. Only a hash bucket holding more than this
/// would make the kernel answer ENOSPC; buckets hold a few entries.
const CHUNK: usize = 256;

/// The `batch` member of `union bpf_attr` (include/uapi/linux/bpf.h).
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

fn bpf(cmd: libc::c_long, attr: &mut BatchAttr) -> io::Result<()> {
    // SAFETY: `attr` is a live, correctly laid out `bpf_attr.batch` whose pointers the
    // callers point at buffers sized for `count` entries; the kernel writes only `count` and
    // within those buffers.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            std::ptr::from_mut(attr),
            size_of::<BatchAttr>(),
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// How the kernel lays out a map's values in a batch: one value, or one per possible CPU,
/// each rounded up to 8 bytes (kernel/bpf/hashtab.c).
#[derive(Clone, Copy)]
pub enum Values {
    Single,
    PerCpu(usize),
}

impl Values {
    /// How many values each key has, and the bytes from one to the next.
    fn copies_and_step<V>(self) -> (usize, usize) {
        match self {
            Values::Single => (1, size_of::<V>()),
            Values::PerCpu(cpus) => (cpus, size_of::<V>().next_multiple_of(8)),
        }
    }
}

/// Every entry of the hash map `fd`: each key with its value (one) or its per-CPU values.
pub fn lookup_all<K: Pod, V: Pod>(
    fd: BorrowedFd<'_>,
    layout: Values,
) -> io::Result<Vec<(K, Vec<V>)>> {
    let (copies, step) = layout.copies_and_step::<V>();
    let stride = copies * step;
    let mut keys = vec![0u8; CHUNK * size_of::<K>()];
    let mut values = vec![0u8; CHUNK * stride];
    // The kernel's position token for hash maps is a bucket index (u32); 8 bytes is ample.
    let (mut token, mut next) = (0u64, 0u64);
    let mut first = true;
    let mut out = Vec::new();
    loop {
        let mut attr = BatchAttr {
            in_batch: if first {
                0
            } else {
                std::ptr::from_ref(&token) as u64
            },
            out_batch: std::ptr::from_mut(&mut next) as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: CHUNK as u32,
            map_fd: fd.as_raw_fd() as u32,
            ..BatchAttr::default()
        };
        let result = bpf(BPF_MAP_LOOKUP_BATCH, &mut attr);
        let n = (attr.count as usize).min(CHUNK);
        for i in 0..n {
            // SAFETY: the kernel wrote `n` keys and values back to back at these strides;
            // `read_unaligned` needs no alignment and `Pod` types are valid for any bytes.
            let key = unsafe {
                keys.as_ptr()
                    .add(i * size_of::<K>())
                    .cast::<K>()
                    .read_unaligned()
            };
            let vals = (0..copies)
                .map(|c| {
                    // SAFETY: as for the key: inside the `values` buffer the kernel filled.
                    unsafe {
                        values
                            .as_ptr()
                            .add(i * stride + c * step)
                            .cast::<V>()
                            .read_unaligned()
                    }
                })
                .collect();
            out.push((key, vals));
        }
        match result {
            Ok(()) if n == 0 => return Ok(out),
            Ok(()) => {}
            // The end of the map: this call's entries (if any) were the last.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(out),
            Err(e) => return Err(e),
        }
        token = next;
        first = false;
    }
}

/// Deletes `keys` from the hash map `fd`; the number deleted. A key already gone (the
/// kernel's LRU evicted it, or it was never there) is skipped, not an error.
pub fn delete_all<K: Pod>(fd: BorrowedFd<'_>, keys: &[K]) -> io::Result<usize> {
    let mut deleted = 0;
    let mut rest = keys;
    while !rest.is_empty() {
        let mut attr = BatchAttr {
            keys: rest.as_ptr() as u64,
            count: rest.len().min(u32::MAX as usize) as u32,
            map_fd: fd.as_raw_fd() as u32,
            ..BatchAttr::default()
        };
        let result = bpf(BPF_MAP_DELETE_BATCH, &mut attr);
        let done = (attr.count as usize).min(rest.len());
        deleted += done;
        match result {
            Ok(()) => rest = &rest[done..],
            // The kernel stops at a missing key: step over it and go on.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                rest = rest.get(done + 1..).unwrap_or(&[]);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(deleted)
}

/// The fd of an aya map, for the calls above.
pub fn fd_of(map: &aya::maps::MapData) -> BorrowedFd<'_> {
    map.fd().as_fd()
}

#[cfg(test)]
mod tests {
    use std::os::fd::{FromRawFd, OwnedFd};

    use super::*;

    const BPF_MAP_CREATE: libc::c_long = 0;
    const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
    const BPF_MAP_TYPE_HASH: u32 = 1;
    const BPF_MAP_TYPE_PERCPU_HASH: u32 = 5;

    /// A real kernel map (needs root, as the agent does): `map_type`, u32 keys, u64 values.
    fn create(map_type: u32, max_entries: u32) -> OwnedFd {
        // The first members of `bpf_attr` for BPF_MAP_CREATE; the rest stays zero.
        let mut attr = [0u32; 32];
        attr[..4].copy_from_slice(&[map_type, 4, 8, max_entries]);
        // SAFETY: a zeroed `bpf_attr` prefix with the map's type and sizes.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_CREATE,
                attr.as_ptr(),
                size_of_val(&attr),
            )
        };
        assert!(
            fd >= 0,
            "creating a BPF map failed (run as root, as the agent does): {}",
            io::Error::last_os_error()
        );
        // SAFETY: the kernel just returned this fd, owned by nobody else.
        unsafe { OwnedFd::from_raw_fd(fd as i32) }
    }

    fn update(fd: &OwnedFd, key: u32, value: &[u64]) {
        #[repr(C)]
        struct Elem {
            map_fd: u32,
            _pad: u32,
            key: u64,
            value: u64,
            flags: u64,
        }
        let elem = Elem {
            map_fd: fd.as_raw_fd() as u32,
            _pad: 0,
            key: std::ptr::from_ref(&key) as u64,
            value: value.as_ptr() as u64,
            flags: 0,
        };
        // SAFETY: `elem` points at a live key and a value sized as the map expects.
        let r = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_UPDATE_ELEM,
                &raw const elem,
                size_of::<Elem>(),
            )
        };
        assert_eq!(r, 0, "update: {}", io::Error::last_os_error());
    }

    #[test]
    fn a_whole_map_is_read_and_its_keys_deleted_in_batches() {
        let fd = create(BPF_MAP_TYPE_HASH, 20_000);
        // More entries than one batch call returns.
        for k in 0..10_000u32 {
            update(&fd, k, &[u64::from(k) * 3]);
        }
        let mut read: Vec<(u32, Vec<u64>)> =
            lookup_all(fd.as_fd(), Values::Single).expect("lookup");
        read.sort_unstable_by_key(|(k, _)| *k);
        assert_eq!(read.len(), 10_000);
        assert!(read.iter().all(|(k, v)| v == &[u64::from(*k) * 3]));

        // Even keys, with one that is not there in the middle: skipped, not an error.
        let mut doomed: Vec<u32> = (0..10_000).step_by(2).collect();
        doomed.insert(2_500, 55_555);
        assert_eq!(delete_all(fd.as_fd(), &doomed).expect("delete"), 5_000);
        let left: Vec<(u32, Vec<u64>)> = lookup_all(fd.as_fd(), Values::Single).expect("lookup");
        assert_eq!(left.len(), 5_000);
        assert!(left.iter().all(|(k, _)| k % 2 == 1));
    }

    #[test]
    fn a_per_cpu_map_reads_one_value_per_possible_cpu() {
        let cpus = aya::util::nr_cpus().expect("possible CPUs");
        let fd = create(BPF_MAP_TYPE_PERCPU_HASH, 64);
        let values: Vec<u64> = (0..cpus as u64).map(|c| 100 + c).collect();
        update(&fd, 7, &values);
        let read: Vec<(u32, Vec<u64>)> =
            lookup_all(fd.as_fd(), Values::PerCpu(cpus)).expect("lookup");
        assert_eq!(read, vec![(7, values)]);
    }
}
