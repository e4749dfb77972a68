//! Fuzz target: a binary trace export read in place (`EncodedTraces::decode`, the collector's
//! OTLP/HTTP path) is refused exactly when prost's decode refuses it, the view of every span reads
//! what prost reads (compared encoded, so a NaN equals itself), and every span it would store as
//! it came decodes to the span prost reads, less its trace id.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use throughline_store::{EncodedTraces, ExportTraceServiceRequest, Span};

fuzz_target!(|data: &[u8]| {
    let decoded = ExportTraceServiceRequest::decode(data);
    let in_place = EncodedTraces::decode(data.to_vec().into());
    assert_eq!(
        decoded.is_ok(),
        in_place.is_ok(),
        "prost: {:?}, in place: {:?}",
        decoded.as_ref().err(),
        in_place.as_ref().err()
    );
    let (Ok(decoded), Ok(in_place)) = (decoded, in_place) else {
        return;
    };
    let spans = decoded
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans);
    let read = in_place
        .resources()
        .iter()
        .flat_map(|r| &r.scopes)
        .flat_map(|s| &s.spans);
    let mut n = 0;
    for (span, encoded) in spans.zip(read) {
        n += 1;
        assert_eq!(encoded.decode().encode_to_vec(), span.encode_to_vec());
        assert_eq!(encoded.view_as_span().encode_to_vec(), span.encode_to_vec());
        if encoded.needs_decoding() {
            continue;
        }
        let mut stored = Vec::new();
        assert_eq!(encoded.write_without_trace_id(&mut stored), stored.len());
        let back = Span::decode(&stored[..]).expect("a stored span decodes");
        let less_trace_id = Span {
            trace_id: Vec::new(),
            ..span.clone()
        };
        assert_eq!(back.encode_to_vec(), less_trace_id.encode_to_vec());
    }
    assert_eq!(n, in_place.span_count());
});
