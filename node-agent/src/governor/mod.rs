//! The agent protecting the node from itself: a CPU, memory and loss budget, and the telemetry
//! it sheds, in a fixed order, while it is over it.
//!
//! - `budget`: the `[budget]` config section;
//! - `shed`: the order, cheapest loss first (payload, then latency, then L7 requests); counts
//!   are never shed, since incidents open on them;
//! - `usage`: the agent's own CPU time and resident memory, from procfs;
//! - `state`: the judgement: over budget, one step more; calm for a while, one step back;
//! - `run`: the thread that reads, judges, switches probe groups off and on, and publishes
//!   the mode for the control plane (`AgentStats`) and `/metrics`.

pub mod budget;
pub mod run;
pub mod shed;
pub mod state;
pub mod usage;

pub use budget::BudgetConfig;
pub use run::{spawn, Degraded, Losses, Mode, ProbeSwitch};
