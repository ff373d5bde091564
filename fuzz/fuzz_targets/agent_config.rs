//! The agent's TOML config on arbitrary text: parsed and validated, it is either a config or
//! an error that names where it came from — never a panic, whatever the bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use node_agent::config::AgentConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match AgentConfig::from_toml(text, "fuzz.toml") {
        Ok(config) => {
            let _ = config.validate("fuzz.toml");
        }
        Err(e) => assert!(e.to_string().contains("fuzz.toml"), "{e}"),
    }
});
