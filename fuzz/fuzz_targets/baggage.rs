//! Fuzz target: `parse_baggage` never panics, and what it accepts survives format then parse.
#![no_main]

use libfuzzer_sys::fuzz_target;
use throughline_propagation::{format_baggage, parse_baggage};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(baggage) = parse_baggage(text) {
        if let Some(header) = format_baggage(&baggage) {
            let again = parse_baggage(&header).expect("our own baggage header parses");
            // Re-encoding can lengthen a value (a stray `%` becomes `%25`), so the 8192-byte
            // limit may drop a member; it never adds one.
            assert!(again.len() <= baggage.len());
        }
    }
});
