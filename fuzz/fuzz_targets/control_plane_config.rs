//! The control plane's TOML config on arbitrary text: a config or an error naming where it
//! came from, never a panic.

#![no_main]

use control_plane::config::ControlPlaneConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match ControlPlaneConfig::from_toml(text, "fuzz.toml") {
        Ok(config) => {
            let _ = config.validate("fuzz.toml");
        }
        Err(e) => assert!(e.to_string().contains("fuzz.toml"), "{e}"),
    }
});
