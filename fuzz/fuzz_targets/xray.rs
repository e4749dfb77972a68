//! Fuzz target: `parse_xray_header` never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use throughline_propagation::parse_xray_header;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_xray_header(text);
    }
});
