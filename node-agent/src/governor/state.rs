//! The judgement, free of the system: readings in, shed or restore out.
//!
//! Over any budget: one step more, every check, until the last. Back only after
//! `calm_checks` checks in a row under `RESTORE_SHARE` of every budget, one step at a time:
//! between that share and the budget the level holds, so an agent just under its budget does
//! not flap between two levels.

use std::fmt;

use super::{budget::BudgetConfig, shed::STEPS};

/// Share of each budget a reading must stay under to count as calm.
pub const RESTORE_SHARE: f64 = 0.8;

/// What the agent cost over one check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub cpu_percent: f64,
    pub rss_mib: f64,
    pub drop_ratio: f64,
}

/// The budget a reading exceeded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pressure {
    Cpu { used: f64, budget: f64 },
    Memory { used: f64, budget: f64 },
    Drops { ratio: f64, budget: f64 },
}

impl Pressure {
    /// The label `/metrics` reports it under.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Cpu { .. } => "cpu",
            Self::Memory { .. } => "memory",
            Self::Drops { .. } => "drops",
        }
    }
}

impl fmt::Display for Pressure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu { used, budget } => write!(
                f,
                "cpu: {used:.1} % of a core over a budget of {budget:.1} % (budget.cpu_percent)"
            ),
            Self::Memory { used, budget } => write!(
                f,
                "memory: {used:.0} MiB resident over a budget of {budget:.0} MiB (budget.memory_mib)"
            ),
            Self::Drops { ratio, budget } => write!(
                f,
                "drops: {:.2} % of events lost over a budget of {:.2} % (budget.drop_ratio)",
                ratio * 100.0,
                budget * 100.0
            ),
        }
    }
}

/// A change of level the caller must carry out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Change {
    /// Turn off step `level - 1`; the agent is now at `level`.
    Shed { level: usize, cause: Pressure },
    /// Turn step `level` back on; the agent is now at `level`.
    Restore { level: usize },
}

#[derive(Debug, Clone)]
pub struct Governor {
    cpu_percent: f64,
    memory_mib: f64,
    drop_ratio: f64,
    calm_needed: u32,
    level: usize,
    calm: u32,
    cause: Option<Pressure>,
}

impl Governor {
    pub fn new(budget: &BudgetConfig) -> Self {
        Self {
            cpu_percent: budget.cpu_percent,
            memory_mib: budget.memory_mib as f64,
            drop_ratio: budget.drop_ratio,
            calm_needed: budget.calm_checks,
            level: 0,
            calm: 0,
            cause: None,
        }
    }

    /// Steps in force.
    pub fn level(&self) -> usize {
        self.level
    }

    /// The pressure that made the agent shed last, while it is degraded.
    pub fn cause(&self) -> Option<Pressure> {
        self.cause
    }

    fn over(&self, r: &Reading, share: f64) -> Option<Pressure> {
        if r.cpu_percent > share * self.cpu_percent {
            return Some(Pressure::Cpu {
                used: r.cpu_percent,
                budget: self.cpu_percent,
            });
        }
        if r.rss_mib > share * self.memory_mib {
            return Some(Pressure::Memory {
                used: r.rss_mib,
                budget: self.memory_mib,
            });
        }
        if r.drop_ratio > share * self.drop_ratio {
            return Some(Pressure::Drops {
                ratio: r.drop_ratio,
                budget: self.drop_ratio,
            });
        }
        None
    }

    pub fn judge(&mut self, r: &Reading) -> Option<Change> {
        if let Some(cause) = self.over(r, 1.0) {
            self.calm = 0;
            if self.level == STEPS.len() {
                self.cause = Some(cause);
                return None;
            }
            self.level += 1;
            self.cause = Some(cause);
            return Some(Change::Shed {
                level: self.level,
                cause,
            });
        }
        if self.over(r, RESTORE_SHARE).is_some() {
            self.calm = 0;
            return None;
        }
        self.calm += 1;
        if self.level == 0 || self.calm < self.calm_needed {
            return None;
        }
        self.calm = 0;
        self.level -= 1;
        if self.level == 0 {
            self.cause = None;
        }
        Some(Change::Restore { level: self.level })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget() -> BudgetConfig {
        BudgetConfig {
            cpu_percent: 10.0,
            memory_mib: 100,
            drop_ratio: 0.01,
            calm_checks: 2,
            ..BudgetConfig::default()
        }
    }

    fn cpu(percent: f64) -> Reading {
        Reading {
            cpu_percent: percent,
            rss_mib: 20.0,
            drop_ratio: 0.0,
        }
    }

    #[test]
    fn over_budget_sheds_a_step_per_check_then_holds_at_the_last() {
        let mut g = Governor::new(&budget());
        assert_eq!(g.judge(&cpu(5.0)), None);
        for level in 1..=STEPS.len() {
            match g.judge(&cpu(30.0)) {
                Some(Change::Shed { level: l, cause }) => {
                    assert_eq!(l, level);
                    assert_eq!(cause.kind(), "cpu");
                }
                other => panic!("expected a shed step, got {other:?}"),
            }
        }
        assert_eq!(g.judge(&cpu(30.0)), None);
        assert_eq!(g.level(), STEPS.len());
        assert!(g
            .cause()
            .is_some_and(|c| c.to_string().contains("budget.cpu_percent")));
    }

    #[test]
    fn it_comes_back_a_step_at_a_time_only_after_calm_checks_and_holds_in_between() {
        let mut g = Governor::new(&budget());
        g.judge(&cpu(30.0));
        g.judge(&cpu(30.0));
        // Under the budget but above 80 % of it: holds, and the calm count starts over.
        assert_eq!(g.judge(&cpu(9.0)), None);
        assert_eq!(g.judge(&cpu(2.0)), None);
        assert_eq!(g.judge(&cpu(9.0)), None);
        assert_eq!(g.judge(&cpu(2.0)), None);
        assert_eq!(g.judge(&cpu(2.0)), Some(Change::Restore { level: 1 }));
        assert!(g.cause().is_some());
        assert_eq!(g.judge(&cpu(2.0)), None);
        assert_eq!(g.judge(&cpu(2.0)), Some(Change::Restore { level: 0 }));
        assert_eq!(g.cause(), None);
        assert_eq!(g.judge(&cpu(2.0)), None);
    }

    #[test]
    fn memory_and_losses_count_as_well_as_cpu() {
        let mut g = Governor::new(&budget());
        let heavy = Reading {
            cpu_percent: 1.0,
            rss_mib: 150.0,
            drop_ratio: 0.0,
        };
        assert!(matches!(
            g.judge(&heavy),
            Some(Change::Shed {
                cause: Pressure::Memory { .. },
                ..
            })
        ));
        let lossy = Reading {
            cpu_percent: 1.0,
            rss_mib: 10.0,
            drop_ratio: 0.2,
        };
        assert!(matches!(
            g.judge(&lossy),
            Some(Change::Shed {
                cause: Pressure::Drops { .. },
                level: 2
            })
        ));
    }
}
