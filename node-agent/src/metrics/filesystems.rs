//! Filesystem usage of the node's writable filesystems (statfs), one sample per device: a
//! device mounted at several places (bind mounts, a container's volume) is counted once.
//!
//! The mounts are those of the agent's mount namespace — the host's, for an agent run with
//! the host's mounts. Pseudo filesystems are skipped, and so are the system's own tmpfs
//! mounts (`/dev`, `/run`, `/sys`): what is left is where workloads keep data.

use std::{collections::BTreeMap, path::Path};

use vigil_proto::v1;

/// Filesystem types that hold no data of anyone's.
const PSEUDO: &[&str] = &[
    "proc",
    "sysfs",
    "cgroup",
    "cgroup2",
    "devpts",
    "mqueue",
    "debugfs",
    "tracefs",
    "bpf",
    "securityfs",
    "pstore",
    "hugetlbfs",
    "configfs",
    "fusectl",
    "binfmt_misc",
    "autofs",
    "devtmpfs",
    "nsfs",
    "rpc_pipefs",
    "efivarfs",
    "ramfs",
    "squashfs",
    "iso9660",
    "overlay",
    "nfsd",
    "selinuxfs",
];

/// Where the system keeps its own small tmpfs mounts.
const SYSTEM_PREFIXES: &[&str] = &["/dev", "/run", "/sys", "/proc"];

/// One line of mountinfo, the parts that matter here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub device: String,
    pub mount_point: String,
    pub fs_type: String,
    pub writable: bool,
}

/// `36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue`
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mut l = left.split_whitespace();
            let device = l.nth(2)?.to_string();
            let mount_point = unescape(l.nth(1)?);
            let options = l.next()?;
            let fs_type = right.split_whitespace().next()?.to_string();
            Some(Mount {
                device,
                mount_point,
                fs_type,
                writable: options.split(',').any(|o| o == "rw"),
            })
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\\ooo`.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..=i + 3].iter().all(u8::is_ascii_digit) {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..=i + 3], 8) {
                out.push(char::from(v));
                i += 4;
                continue;
            }
        }
        out.push(char::from(b[i]));
        i += 1;
    }
    out
}

/// Whether a mount holds data someone writes (and so can fill up).
pub fn holds_data(m: &Mount) -> bool {
    if !m.writable || PSEUDO.contains(&m.fs_type.as_str()) {
        return false;
    }
    let system = SYSTEM_PREFIXES
        .iter()
        .any(|p| m.mount_point == *p || m.mount_point.starts_with(&format!("{p}/")));
    !(system && m.fs_type == "tmpfs")
}

/// Usage of every data filesystem, one per device (the shortest mount point names it).
pub fn sample(mountinfo: &Path) -> Vec<v1::FilesystemSample> {
    let Ok(text) = std::fs::read_to_string(mountinfo) else {
        return Vec::new();
    };
    let mut by_device: BTreeMap<String, Mount> = BTreeMap::new();
    for m in parse_mountinfo(&text).into_iter().filter(holds_data) {
        let keep = by_device
            .get(&m.device)
            .is_none_or(|k| m.mount_point.len() < k.mount_point.len());
        if keep {
            by_device.insert(m.device.clone(), m);
        }
    }
    by_device
        .into_values()
        .filter_map(|m| {
            let s = nix::sys::statvfs::statvfs(Path::new(&m.mount_point)).ok()?;
            let frag = s.fragment_size();
            let size = s.blocks().saturating_mul(frag);
            if size == 0 {
                return None;
            }
            let free = s.blocks_free().saturating_mul(frag);
            let available = s.blocks_available().saturating_mul(frag);
            Some(v1::FilesystemSample {
                device: m.device,
                mount_point: m.mount_point,
                fs_type: m.fs_type,
                size_bytes: size,
                used_bytes: size.saturating_sub(free),
                available_bytes: available,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_filesystems_are_kept_pseudo_and_system_ones_skipped() {
        let text = "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n\
                    23 22 0:5 / /proc rw - proc proc rw\n\
                    24 22 0:20 / /run rw,nosuid - tmpfs tmpfs rw\n\
                    25 22 0:44 / /srv/app\\040data rw - tmpfs lab-data rw,size=4096k\n\
                    26 22 8:1 /var/lib /mnt/bind rw - ext4 /dev/sda1 rw\n\
                    27 22 8:2 / /ro ro - ext4 /dev/sdb rw\n";
        let mounts = parse_mountinfo(text);
        assert_eq!(mounts.len(), 6);
        assert_eq!(mounts[3].mount_point, "/srv/app data");
        let kept: Vec<&str> = mounts
            .iter()
            .filter(|m| holds_data(m))
            .map(|m| m.mount_point.as_str())
            .collect();
        assert_eq!(kept, ["/", "/srv/app data", "/mnt/bind"]);
    }

    #[test]
    fn the_root_filesystem_is_sampled_once() {
        let s = sample(Path::new("/proc/self/mountinfo"));
        let roots = s.iter().filter(|f| f.mount_point == "/").count();
        assert!(roots <= 1, "{s:?}");
        assert!(s.iter().all(|f| f.used_bytes <= f.size_bytes));
    }
}
