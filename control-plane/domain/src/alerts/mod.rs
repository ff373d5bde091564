//! Alerts raised outside Vigil — an Alertmanager rule, an IncidentReport someone created — as
//! incidents: a firing alert opens (or joins) an incident on the workload it names, enriched
//! with what Vigil itself saw there; resolved alerts resolve it once none of its alerts still
//! fire. The outside formats are translated by adapters into `ExternalAlert`.

pub mod matching;
pub mod model;
pub mod service;

pub use model::{AlertOutcome, AlertSource, ExternalAlert};
pub use service::{AlertError, AlertService};
