//! Table tests from W3C Trace Context level 2's edge cases, and extract/inject behaviour.

use std::collections::HashMap;

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceState};
use opentelemetry::{Context, SpanId, TraceId};
use throughline_propagation::{
    TraceContextPropagator, TraceparentErrorKind as K, TracestateErrorKind, parse_traceparent,
    parse_tracestate,
};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN: &str = "00f067aa0ba902b7";

/// A carrier that can hold a header several times, as HTTP can.
#[derive(Debug, Default)]
struct MultiMap(Vec<(&'static str, String)>);

impl Extractor for MultiMap {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| *k).collect()
    }
    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        let all: Vec<&str> = self
            .0
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
            .collect();
        (!all.is_empty()).then_some(all)
    }
}

fn extract(headers: &[(&'static str, &str)]) -> Context {
    let carrier = MultiMap(headers.iter().map(|(k, v)| (*k, v.to_string())).collect());
    TraceContextPropagator::new().extract_with_context(&Context::new(), &carrier)
}

fn inject(cx: &Context) -> HashMap<String, String> {
    let mut out = HashMap::new();
    TraceContextPropagator::new().inject_context(cx, &mut out);
    out
}

#[test]
fn valid_traceparents_parse() {
    let cases = [
        (format!("00-{TRACE}-{SPAN}-01"), 0u8, 0x01u8),
        (format!("00-{TRACE}-{SPAN}-00"), 0, 0x00),
        (format!("00-{TRACE}-{SPAN}-03"), 0, 0x03),
        // Unknown flags are dropped: only sampled and random are kept.
        (format!("00-{TRACE}-{SPAN}-ff"), 0, 0x03),
        (format!("00-{TRACE}-{SPAN}-02"), 0, 0x02),
        // Future versions: first four fields, then '-' or the end.
        (format!("cc-{TRACE}-{SPAN}-01"), 0xcc, 0x01),
        (
            format!("cc-{TRACE}-{SPAN}-01-what-the-future-will-be-like"),
            0xcc,
            0x01,
        ),
        (format!("01-{TRACE}-{SPAN}-09-"), 0x01, 0x01),
        // OWS around the value.
        (format!(" \t00-{TRACE}-{SPAN}-01 \t"), 0, 0x01),
    ];
    for (value, version, flags) in cases {
        let parsed = parse_traceparent(&value).unwrap_or_else(|e| panic!("{value}: {e}"));
        assert_eq!(parsed.version, version, "{value}");
        assert_eq!(
            parsed.trace_id,
            TraceId::from_hex(TRACE).unwrap(),
            "{value}"
        );
        assert_eq!(parsed.parent_id, SpanId::from_hex(SPAN).unwrap(), "{value}");
        assert_eq!(parsed.trace_flags.to_u8(), flags, "{value}");
    }
}

#[test]
fn invalid_traceparents_are_rejected_with_their_kind() {
    let cases = [
        (format!("ff-{TRACE}-{SPAN}-01"), K::ForbiddenVersion),
        (format!("00-{TRACE}-{SPAN}-01."), K::Length),
        (
            format!("00-{TRACE}-{SPAN}-01-what-the-future-will-be-like"),
            K::Length,
        ),
        (
            format!("cc-{TRACE}-{SPAN}-01.what-the-future-will-be-like"),
            K::Length,
        ),
        (format!(".0-{TRACE}-{SPAN}-01"), K::Version),
        (format!("0.-{TRACE}-{SPAN}-01"), K::Version),
        (format!("000-{TRACE}-{SPAN}-01"), K::Version),
        (format!("0-{TRACE}-{SPAN}-01"), K::Version),
        (format!("0A-{TRACE}-{SPAN}-01"), K::Version),
        (format!("00-{}-{SPAN}-01", "0".repeat(32)), K::ZeroTraceId),
        (format!("00-{}-{SPAN}-01", TRACE.to_uppercase()), K::TraceId),
        (format!("00-{}.-{SPAN}-01", &TRACE[..31]), K::TraceId),
        (format!("00-{TRACE}0-{SPAN}-01"), K::Length),
        (format!("00-{TRACE}x{SPAN}-01"), K::Delimiter),
        (format!("00-{}-{SPAN}-01", &TRACE[..31]), K::Length),
        (format!("00-{TRACE}-{}-01", "0".repeat(16)), K::ZeroParentId),
        (format!("00-{TRACE}-{}-01", "00F067AA0BA902B7"), K::ParentId),
        (format!("00-{TRACE}-{}.-01", &SPAN[..15]), K::ParentId),
        (format!("00-{TRACE}-{SPAN}0-01"), K::Length),
        (format!("00-{TRACE}-{SPAN}x01"), K::Delimiter),
        (format!("00-{TRACE}-{SPAN}-.0"), K::Flags),
        (format!("00-{TRACE}-{SPAN}-0A"), K::Flags),
        (format!("00-{TRACE}-{SPAN}-001"), K::Length),
        (format!("00-{TRACE}-{SPAN}-1"), K::Length),
        (String::new(), K::Version),
        ("00".to_owned(), K::Version),
    ];
    for (value, kind) in cases {
        let err = parse_traceparent(&value).expect_err(&value);
        assert_eq!(err.kind, kind, "{value}");
    }
}

#[test]
fn error_message_names_the_header_and_value() {
    let err = parse_traceparent("ff-x").unwrap_err();
    assert_eq!(
        err.to_string(),
        "traceparent \"ff-x\" is invalid: version ff is forbidden"
    );
}

#[test]
fn extract_keeps_ids_flags_and_tracestate() {
    let tp = format!("00-{TRACE}-{SPAN}-03");
    let cx = extract(&[("traceparent", &tp), ("tracestate", "foo=1,bar=2")]);
    let span = cx.span();
    let sc = span.span_context();
    assert!(sc.is_remote());
    assert_eq!(sc.trace_id(), TraceId::from_hex(TRACE).unwrap());
    assert_eq!(
        sc.trace_flags().to_u8(),
        0x03,
        "the random flag must survive extract"
    );
    assert_eq!(sc.trace_state().header(), "foo=1,bar=2");
}

#[test]
fn duplicated_traceparent_extracts_nothing_and_drops_tracestate() {
    let a = format!("00-{TRACE}-{SPAN}-01");
    let b = format!("00-{}-{SPAN}-01", "12345678901234567890123456789012");
    let cx = extract(&[
        ("traceparent", &a),
        ("traceparent", &b),
        ("tracestate", "foo=1"),
    ]);
    assert!(!cx.span().span_context().is_valid());
    assert!(inject(&cx).is_empty());
}

#[test]
fn invalid_traceparent_drops_tracestate() {
    let cx = extract(&[("traceparent", "00-xyz"), ("tracestate", "foo=1")]);
    assert!(!cx.span().span_context().is_valid());
    let cx = extract(&[("tracestate", "foo=1")]);
    assert!(!cx.span().span_context().is_valid());
}

#[test]
fn several_tracestate_values_are_joined_in_order() {
    let tp = format!("00-{TRACE}-{SPAN}-00");
    let cx = extract(&[
        ("traceparent", &tp),
        ("tracestate", "foo=1,bar=2"),
        ("tracestate", ""),
        ("tracestate", "rojo=1,congo=2"),
        ("tracestate", "baz=3"),
    ]);
    assert_eq!(
        cx.span().span_context().trace_state().header(),
        "foo=1,bar=2,rojo=1,congo=2,baz=3"
    );
}

fn tracestate_after_extract(value: &str) -> Option<String> {
    let tp = format!("00-{TRACE}-{SPAN}-00");
    let cx = extract(&[("traceparent", &tp), ("tracestate", value)]);
    assert!(
        cx.span().span_context().is_valid(),
        "traceparent must survive a bad tracestate"
    );
    inject(&cx).remove("tracestate")
}

#[test]
fn tracestate_grammar_table() {
    let key_256 = "z".repeat(256);
    let all_value_chars: String = (0x20u8..=0x7e)
        .filter(|b| *b != b',' && *b != b'=')
        .map(char::from)
        .collect();
    let kept = [
        ("foo=1 \t , \t bar=2, \t baz=3", "foo=1,bar=2,baz=3"),
        ("\t foo=1 \t", "foo=1"),
        ("foo@=1,bar=2", "foo@=1,bar=2"),
        ("foo@@bar=1,bar=2", "foo@@bar=1,bar=2"),
        ("foo@bar@baz=1,bar=2", "foo@bar@baz=1,bar=2"),
        ("0digit=1", "0digit=1"),
        // Duplicate keys: the first (left-most) is kept.
        ("foo=1,foo=2", "foo=1"),
        (",,foo=1,,", "foo=1"),
    ];
    for (input, expected) in kept {
        assert_eq!(
            tracestate_after_extract(input).as_deref(),
            Some(expected),
            "{input:?}"
        );
    }
    for key in [
        key_256.clone(),
        format!("{}@{}", "t".repeat(241), "v".repeat(14)),
        format!("t@{}", "v".repeat(15)),
    ] {
        let input = format!("foo=1,{key}=1");
        assert_eq!(
            tracestate_after_extract(&input),
            Some(input.clone()),
            "{input}"
        );
    }
    let all = format!("abcdefghijklmnopqrstuvwxyz0123456789_-*/@a-z0-9_-*/={all_value_chars}");
    assert_eq!(
        tracestate_after_extract(&all).as_deref(),
        Some(all.as_str()),
        "a value may start with a space"
    );
    assert_eq!(
        tracestate_after_extract("foo=1 "),
        Some("foo=1".to_owned()),
        "trailing OWS is not the value's"
    );

    let discarded = [
        "foo =1",
        "FOO=1",
        "foo.bar=1",
        "@foo=1,bar=2",
        "foo=bar=baz",
        "foo=,bar=3",
        "foo",
        "foo=1 2 ,bar=\u{e9}",
        "",
    ];
    for input in discarded {
        assert_eq!(tracestate_after_extract(input), None, "{input:?}");
    }
    assert_eq!(
        tracestate_after_extract(&format!("foo=1,{}=1", "z".repeat(257))),
        None
    );
    assert_eq!(
        tracestate_after_extract(&format!("foo=1,k={}", "v".repeat(257))),
        None
    );
}

#[test]
fn tracestate_member_limit_is_32_and_more_discards_all() {
    let members = |n: usize| {
        (1..=n)
            .map(|i| format!("bar{i:02}={i:02}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    assert_eq!(parse_tracestate(&members(32)).unwrap().len(), 32);
    let err = parse_tracestate(&members(33)).unwrap_err();
    assert_eq!(err.kind, TracestateErrorKind::TooManyMembers);
    assert_eq!(tracestate_after_extract(&members(33)), None);
    assert_eq!(tracestate_after_extract(&members(32)), Some(members(32)));
}

#[test]
fn inject_writes_version_00_known_flags_and_no_empty_tracestate() {
    let sc = SpanContext::new(
        TraceId::from_hex(TRACE).unwrap(),
        SpanId::from_hex(SPAN).unwrap(),
        TraceFlags::new(0xff),
        false,
        TraceState::NONE,
    );
    let out = inject(&Context::new().with_remote_span_context(sc));
    assert_eq!(
        out.get("traceparent").map(String::as_str),
        Some(format!("00-{TRACE}-{SPAN}-03").as_str())
    );
    assert!(
        !out.contains_key("tracestate"),
        "an empty tracestate is not sent"
    );
    assert!(
        inject(&Context::new()).is_empty(),
        "nothing is injected without a valid span"
    );
}

#[test]
fn future_version_is_downgraded_to_00_on_inject() {
    let tp = format!("cc-{TRACE}-{SPAN}-01-extra");
    let out = inject(&extract(&[("traceparent", &tp)]));
    assert_eq!(out["traceparent"], format!("00-{TRACE}-{SPAN}-01"));
}

#[test]
fn header_names_are_found_case_insensitively_by_the_carrier() {
    let tp = format!("00-{TRACE}-{SPAN}-01");
    let cx = extract(&[("TrAcEpArEnT", &tp)]);
    assert!(cx.span().span_context().is_valid());
    let cx = extract(&[("trace-parent", &tp)]);
    assert!(!cx.span().span_context().is_valid());
}
