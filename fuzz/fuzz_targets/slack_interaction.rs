//! A Slack interaction's body (after its signature is verified) on arbitrary bytes: a button
//! press, nothing to do, or a refusal — never a panic.

#![no_main]

use control_plane::adapters::slack::interactions::parse_press;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(press)) = parse_press(data) {
        assert!(press.who.starts_with("slack:"));
    }
});
