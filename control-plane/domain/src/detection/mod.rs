//! Detection: metric intervals in, deduplicated incidents with a ranked root cause out.
//!
//! Every closed window: features per subject (`features`, polars) → baseline thresholds
//! (`baseline`, on Vigil's univariate detector: `univariate`, `robust`, `likelihood`,
//! `conformal`) → isolation forests (`forest`) → correlation over the service graph
//! (`correlate`) → root-cause ranking (`rootcause`, weighing each step by `propagation`) → incidents (`report`). `service` runs it;
//! `judge` holds the two tiers' decision.

pub mod baseline;
pub mod call_graph;
pub mod config;
pub mod conformal;
pub mod correlate;
pub mod explain;
pub mod features;
pub mod floors;
pub mod forest;
pub mod judge;
pub mod kinds;
pub mod likelihood;
pub mod ports;
pub mod propagation;
pub mod report;
pub mod robust;
pub mod rootcause;
pub mod service;
pub mod shed;
pub mod univariate;
pub mod wording;

pub use config::DetectionConfig;
pub use service::{
    BaselineStatus, DetectError, DetectionParts, DetectionService, DetectionStats, TickOutcome,
};
