//! Root-cause ranking of a recorded case where no service graph exists (replayed metrics,
//! public datasets): which service changed most, on most metrics, first.
//!
//! The live path ranks on the service graph (`detection::rootcause`); this is its graph-free
//! counterpart, built on the same comparable scores (`scoring`). What it takes from the
//! published methods:
//! - BARO: robust scaling against the pre-fault period (median and IQR, not mean and σ), and
//!   a metric's score from its largest deviation after the change;
//! - ε-Diagnosis: a metric is anomalous when the window after the change is unlike the one
//!   before as a distribution, not when one point is far: hence the sustained (rolling
//!   median) deviation and the calibration against the reference's own deviations;
//! - RCD and the change-point methods: the root cause tends to change first, so among
//!   services with the same evidence the earliest onset ranks higher.
//!
//! Not taken: RCD's causal discovery (PC on discretised metrics) and BARO's Bayesian
//! change-point search for the onset — the recordings carry their injection time.

pub mod rank;
pub mod recording;

pub use rank::{rank, rank_robust_z, RankConfig, Ranked};
pub use recording::{service_of, Recording};
