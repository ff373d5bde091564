//! A remediation playbook (YAML, an operator's file) on arbitrary text: a playbook or an
//! error naming the file — never a panic.

#![no_main]

use control_plane::adapters::playbooks;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = playbooks::parse("fuzz.yaml", text) {
        assert!(e.to_string().contains("fuzz.yaml"), "{e}");
    }
});
