//! Fuzz target: the trace and span id parsers and the query-parameter parser never panic on any
//! text (issue 18.1: a non-ASCII id once sliced off a char boundary), and an id they accept
//! writes back as the same id.
#![no_main]

use libfuzzer_sys::fuzz_target;
use throughline_jaeger::params::{self, Params, SearchDefaults};
use throughline_store::{SpanId, TraceId};

const DEFAULTS: SearchDefaults = SearchDefaults {
    limit: 20,
    max_limit: 1000,
    lookback_nanos: 3_600_000_000_000,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(id) = text.parse::<TraceId>() {
        assert!(text.len() <= 32 && text.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(id.to_string().parse::<TraceId>().ok(), Some(id));
        assert_eq!(
            id.to_string(),
            format!("{:0>32}", text.to_ascii_lowercase())
        );
    }
    if let Ok(id) = text.parse::<SpanId>() {
        assert!(text.len() <= 16 && text.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(id.to_string().parse::<SpanId>().ok(), Some(id));
    }
    let _ = params::trace_id("traceID", text);
    let _ = params::span_id("span", text);
    let _ = params::go_duration_nanos("lookback", text);
    let _ = params::tags("tags", text);
    // The same text as a whole query string, as a client could send it.
    let q = Params::parse(text);
    let _ = params::trace_ids(&q, "traceID");
    let _ = params::trace_query(&q, 1_700_000_000_000_000_000, DEFAULTS);
});
