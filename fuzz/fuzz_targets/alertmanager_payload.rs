//! An Alertmanager webhook body (`POST /api/v1/alerts`) on arbitrary bytes: decoded and turned
//! into the domain's alerts, or refused — never a panic.

#![no_main]

use control_plane::adapters::alertmanager::WebhookPayload;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(payload) = serde_json::from_slice::<WebhookPayload>(data) else {
        return;
    };
    if let Ok(alerts) = payload.alerts() {
        assert_eq!(alerts.len(), payload.alerts.len());
    }
});
