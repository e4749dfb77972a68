//! Fuzz target: `parse_tracestate` never panics, and accepted members respect the grammar.
#![no_main]

use libfuzzer_sys::fuzz_target;
use throughline_propagation::parse_tracestate;
use throughline_propagation::tracestate::{is_valid_tracestate_key, is_valid_tracestate_value};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(members) = parse_tracestate(text) {
        assert!(members.len() <= 32);
        for (key, value) in members {
            assert!(is_valid_tracestate_key(key) && is_valid_tracestate_value(value));
        }
    }
});
