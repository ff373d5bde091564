//! IncidentReports as tests seed them.

use serde_json::{json, Value};

/// The group/version of IncidentReports.
pub const GV: &str = "vigil.dev/v1alpha1";

/// A report somebody created with kubectl (not Vigil): `checkout-slow` in namespace `vigil`.
pub fn handed_in_report() -> Value {
    json!({
        "apiVersion": GV, "kind": "IncidentReport",
        "metadata": {"name": "checkout-slow", "namespace": "vigil", "uid": "u-1",
                     "creationTimestamp": "2026-11-25T02:59:00Z"},
        "spec": {"title": "Checkout is slow", "target": "checkout", "severity": "critical", "source": "oncall"},
    })
}
