//! `[budget]`: what the agent may cost the node before it sheds telemetry.

use std::time::Duration;

use serde::Deserialize;

use vigil_config_file::ConfigError;

/// The defaults leave headroom over the measured footprint (`reports/overhead.md`: 7.5 % of
/// a core and 23 MiB at 6.8k requests/s with every probe group on), so a busy node is not
/// degraded, and a runaway (an exec or connection storm, a leak) is.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetConfig {
    /// Off: the agent never sheds telemetry, whatever it costs.
    pub enabled: bool,
    /// The agent's own CPU time over a check, in percent of one core.
    pub cpu_percent: f64,
    /// The agent's resident memory.
    pub memory_mib: u64,
    /// Records the kernel could not put into the full ring, as a share of the records it
    /// produced (read + lost), over a check. The agent's own buffer dropping while the control
    /// plane is away does not count: shedding would not help.
    pub drop_ratio: f64,
    /// How often usage is judged.
    pub check_interval_ms: u64,
    /// Checks in a row well within every budget before one shed step is restored.
    pub calm_checks: u32,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            cpu_percent: 20.0,
            memory_mib: 128,
            drop_ratio: 0.01,
            check_interval_ms: 5_000,
            calm_checks: 3,
        }
    }
}

impl BudgetConfig {
    pub fn check_interval(&self) -> Duration {
        Duration::from_millis(self.check_interval_ms)
    }

    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let invalid = |field, reason: &str| ConfigError::invalid(origin, field, reason);
        if !(self.cpu_percent > 0.0 && self.cpu_percent.is_finite()) {
            return Err(invalid(
                "budget.cpu_percent",
                "must be a positive percentage of one core (e.g. 20)",
            ));
        }
        if self.memory_mib == 0 {
            return Err(invalid("budget.memory_mib", "must be at least 1"));
        }
        if !(0.0..=1.0).contains(&self.drop_ratio) {
            return Err(invalid(
                "budget.drop_ratio",
                "must be in [0, 1]: events lost per event seen",
            ));
        }
        if self.check_interval_ms < 100 {
            return Err(invalid(
                "budget.check_interval_ms",
                "must be at least 100: usage is averaged over it",
            ));
        }
        if self.calm_checks == 0 {
            return Err(invalid("budget.calm_checks", "must be at least 1"));
        }
        Ok(())
    }
}
