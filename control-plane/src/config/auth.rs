//! `[auth]`: where the first admin API token lives.

use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// The admin token's file. A fresh install writes a new token there (mode 0600); a file
    /// put there beforehand (a mounted Secret, mode 0400 or 0600) is installed as the admin
    /// token instead, and replacing it rotates the token at the next start. Default:
    /// `admin-token` beside the store file.
    pub admin_token_path: Option<PathBuf>,
}

impl AuthConfig {
    pub fn admin_token_path(&self, store_path: &Path) -> PathBuf {
        self.admin_token_path.clone().unwrap_or_else(|| {
            store_path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or_else(|| Path::new("."))
                .join("admin-token")
        })
    }
}
