//! An IncidentReport someone else created in the cluster (the CRD Vigil takes reports from),
//! as the reconciler reads it: decoded from arbitrary JSON and turned into the alert it
//! amounts to — never a panic.

#![no_main]

use control_plane::adapters::kube::{reconcile::as_alert, report::IncidentReport};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(report) = serde_json::from_slice::<IncidentReport>(data) else {
        return;
    };
    let _ = as_alert(&report, "vigil", "fuzzed", 1_700_000_000_000_000_000);
});
