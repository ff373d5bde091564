//! `[console]`: the operator console the control plane serves on its HTTP port.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Serve `/console` (sign-in with an API token). The JSON API is served either way.
    pub enabled: bool,
    /// The fault lab's latest `summary.md` (what `cargo xtask lab` writes to
    /// `reports/lab/summary.md`), shown on the console's lab page. None: the page says how to
    /// set it.
    pub lab_report: Option<PathBuf>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            lab_report: None,
        }
    }
}
