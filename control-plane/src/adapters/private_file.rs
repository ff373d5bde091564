//! Files only the control plane may read: the audit log's signing key and the first admin
//! token. Created once with mode 0600 (`create_new`, so two starts racing never both write
//! one), and refused at load when others can read them, since a readable secret is a leaked
//! one. Their paths go to the log; their content never.

use std::{
    io::Write,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

#[derive(Debug, thiserror::Error)]
pub enum PrivateFileError {
    #[error("cannot read the {what} {path}")]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the {what} {path} can be read by others (mode {mode:o}): chmod 600 it (a mounted Secret: defaultMode 0400)")]
    Exposed {
        what: &'static str,
        path: PathBuf,
        mode: u32,
    },
    #[error("cannot create the {what} {path}")]
    Create {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The content of the private file `what` at `path`, or `None` when there is none yet.
pub fn read(what: &'static str, path: &Path) -> Result<Option<String>, PrivateFileError> {
    let read = |source| PrivateFileError::Read {
        what,
        path: path.into(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            // A mounted Secret is a symlink: the mode that matters is its target's.
            let mode = std::fs::metadata(path).map_err(read)?.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(PrivateFileError::Exposed {
                    what,
                    path: path.into(),
                    mode: mode & 0o777,
                });
            }
            Ok(Some(text))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(read(source)),
    }
}

/// Creates the private file `what` at `path` holding `content`, its directory too; fails if
/// one already exists rather than overwrite it.
pub fn create(what: &'static str, path: &Path, content: &str) -> Result<(), PrivateFileError> {
    let create = |source| PrivateFileError::Create {
        what,
        path: path.into(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(create)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(create)?;
    file.write_all(content.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(create)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_created_private_never_overwritten_and_refused_once_exposed() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("sub/secret");
        assert_eq!(read("secret", &path).expect("absent"), None);
        create("secret", &path, "s3\n").expect("create");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(create("secret", &path, "other").is_err(), "overwrote");
        assert_eq!(
            read("secret", &path).expect("read").as_deref(),
            Some("s3\n")
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = read("secret", &path).expect_err("exposed");
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }
}
