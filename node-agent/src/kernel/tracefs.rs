//! tracefs and bpffs: mounting them when missing, and reading tracepoint `format` files.

use std::path::{Path, PathBuf};

use nix::{
    mount::{mount, MsFlags},
    sys::statfs::{statfs, FsType},
};

/// `TRACEFS_MAGIC` and `BPF_FS_MAGIC` from linux/magic.h.
const TRACEFS_MAGIC: i64 = 0x7472_6163;
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

#[derive(Debug, thiserror::Error)]
pub enum TracefsError {
    #[error(
        "cannot mount {fs} at {path}. Run the agent as root (or with CAP_SYS_ADMIN), \
         or mount it beforehand: `mount -t {fs} {fs} {path}`"
    )]
    Mount {
        fs: &'static str,
        path: String,
        #[source]
        source: nix::Error,
    },
    #[error(
        "tracepoint {category}:{name} does not exist on this kernel ({path} is missing); \
         the kernel was built without it"
    )]
    MissingTracepoint {
        category: String,
        name: String,
        path: String,
    },
    #[error(
        "permission denied reading {path}: the agent must run as root (CAP_BPF, CAP_PERFMON and \
         CAP_SYS_ADMIN, or a tracefs readable by its user)"
    )]
    Permission { path: String },
    #[error("cannot read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("tracepoint {tracepoint} has no field `{field}` in {path}")]
    MissingField {
        tracepoint: String,
        field: String,
        path: String,
    },
}

fn is_mounted(path: &Path, magic: i64) -> bool {
    statfs(path)
        .map(|s| s.filesystem_type() == FsType(magic as _))
        .unwrap_or(false)
}

fn ensure_mounted(path: &Path, fs: &'static str, magic: i64) -> Result<bool, TracefsError> {
    if is_mounted(path, magic) {
        return Ok(false);
    }
    let err = |source| TracefsError::Mount {
        fs,
        path: path.display().to_string(),
        source,
    };
    if !path.exists() {
        std::fs::create_dir_all(path)
            .map_err(|e| err(nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO))))?;
    }
    mount(Some(fs), path, Some(fs), MsFlags::empty(), None::<&str>).map_err(err)?;
    Ok(true)
}

/// Mounts tracefs at `path` unless it is mounted; returns whether it mounted it.
pub fn ensure_tracefs(path: &Path) -> Result<bool, TracefsError> {
    ensure_mounted(path, "tracefs", TRACEFS_MAGIC)
}

/// Mounts bpffs at `path` unless it is mounted; returns whether it mounted it.
pub fn ensure_bpffs(path: &Path) -> Result<bool, TracefsError> {
    ensure_mounted(path, "bpf", BPF_FS_MAGIC)
}

/// One `field:` line of a tracepoint format file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatField {
    pub name: String,
    pub offset: u32,
    pub size: u32,
}

/// The parsed `format` file of one tracepoint.
#[derive(Debug, Clone)]
pub struct TracepointFormat {
    pub tracepoint: String,
    pub path: PathBuf,
    pub fields: Vec<FormatField>,
}

impl TracepointFormat {
    pub fn read(tracefs: &Path, category: &str, name: &str) -> Result<Self, TracefsError> {
        let dir = tracefs.join("events").join(category).join(name);
        let path = dir.join("format");
        // `exists()` would say "missing" for a directory we may not read: tell them apart.
        let text = std::fs::read_to_string(&path).map_err(|source| {
            let shown = path.display().to_string();
            match source.kind() {
                std::io::ErrorKind::PermissionDenied => TracefsError::Permission { path: shown },
                std::io::ErrorKind::NotFound => TracefsError::MissingTracepoint {
                    category: category.into(),
                    name: name.into(),
                    path: dir.display().to_string(),
                },
                _ => TracefsError::Read {
                    path: shown,
                    source,
                },
            }
        })?;
        Ok(Self {
            tracepoint: format!("{category}:{name}"),
            fields: parse_fields(&text),
            path,
        })
    }

    pub fn field(&self, name: &str) -> Option<&FormatField> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Offset of a field the probe cannot work without.
    pub fn offset(&self, name: &str) -> Result<u32, TracefsError> {
        self.field(name)
            .map(|f| f.offset)
            .ok_or_else(|| TracefsError::MissingField {
                tracepoint: self.tracepoint.clone(),
                field: name.into(),
                path: self.path.display().to_string(),
            })
    }

    /// Offset of a field only some kernels have, or `FIELD_ABSENT`.
    pub fn optional_offset(&self, name: &str) -> u32 {
        self.field(name)
            .map_or(node_agent_common::FIELD_ABSENT, |f| f.offset)
    }
}

/// Parses lines like `field:__data_loc char[] comm; offset:12; size:4; signed:0;` (the
/// kernel separates the attributes with tabs).
fn parse_fields(text: &str) -> Vec<FormatField> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let decl = line.strip_prefix("field:")?.split(';').next()?.trim();
            // The name is the last word of the declaration, minus any array suffix.
            let name = decl.rsplit(' ').next()?.split('[').next()?.to_string();
            let attr = |key: &str| {
                line.split(';')
                    .find_map(|part| part.trim().strip_prefix(key)?.parse::<u32>().ok())
            };
            Some(FormatField {
                name,
                offset: attr("offset:")?,
                size: attr("size:")?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARK_VICTIM: &str = "name: mark_victim
ID: 498
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:int pid;\toffset:8;\tsize:4;\tsigned:1;
\tfield:__data_loc char[] comm;\toffset:12;\tsize:4;\tsigned:0;
\tfield:unsigned long total_vm;\toffset:16;\tsize:8;\tsigned:0;
\tfield:char comm2[16];\toffset:20;\tsize:16;\tsigned:0;
\tfield:short oom_score_adj;\toffset:64;\tsize:2;\tsigned:1;

print fmt: \"pid=%d\", REC->pid
";

    #[test]
    fn parses_offsets_data_loc_and_arrays() {
        let fields = parse_fields(MARK_VICTIM);
        let get = |n: &str| fields.iter().find(|f| f.name == n).cloned();
        assert_eq!(
            get("pid"),
            Some(FormatField {
                name: "pid".into(),
                offset: 8,
                size: 4
            })
        );
        assert_eq!(get("comm").map(|f| f.offset), Some(12));
        assert_eq!(get("comm2").map(|f| (f.offset, f.size)), Some((20, 16)));
        assert_eq!(get("oom_score_adj").map(|f| f.offset), Some(64));
        assert_eq!(fields.len(), 6);
    }

    #[test]
    fn missing_tracepoint_names_the_probe() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = TracepointFormat::read(dir.path(), "oom", "mark_victim").expect_err("missing");
        assert!(err.to_string().contains("oom:mark_victim"), "{err}");
    }
}
