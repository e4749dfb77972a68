//! Table tests for W3C Baggage, the X-Ray header and `OTEL_PROPAGATORS`.

use std::collections::HashMap;

use opentelemetry::baggage::{Baggage, BaggageExt};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceState};
use opentelemetry::{Context, KeyValue, SpanId, TraceId};
use throughline_propagation::{
    BaggageErrorKind, BaggagePropagator, PropagatorName, Propagators, PropagatorsError,
    XRayErrorKind, XRayPropagator, format_baggage, format_xray_header, parse_baggage,
    parse_xray_header,
};

#[test]
fn baggage_parses_values_properties_and_percent_encoding() {
    let b = parse_baggage(
        " userId = alice , serverNode=DF%2028 ;prop1;k=v, isProduction=false, eq=a=b",
    )
    .unwrap();
    assert_eq!(b.get("userId").map(|v| v.as_str()), Some("alice"));
    assert_eq!(b.get("serverNode").map(|v| v.as_str()), Some("DF 28"));
    assert_eq!(
        b.get_with_metadata("serverNode").unwrap().1.as_str(),
        "prop1;k=v"
    );
    assert_eq!(
        b.get("eq").map(|v| v.as_str()),
        Some("a=b"),
        "'=' is a baggage-octet"
    );
    assert_eq!(b.len(), 4);
}

#[test]
fn baggage_grammar_errors_discard_the_header() {
    let cases = [
        ("novalue", BaggageErrorKind::MissingEquals),
        ("bad key=1", BaggageErrorKind::Key),
        ("=1", BaggageErrorKind::Key),
        ("k=a b", BaggageErrorKind::Value),
        ("k=\"q\"", BaggageErrorKind::Value),
        ("k=%ff", BaggageErrorKind::Encoding),
        ("k=1;bad prop", BaggageErrorKind::Property),
    ];
    for (input, kind) in cases {
        assert_eq!(parse_baggage(input).unwrap_err().kind, kind, "{input}");
    }
}

#[test]
fn baggage_limits_drop_whole_members() {
    let many: String = (0..100)
        .map(|i| format!("k{i}=v"))
        .collect::<Vec<_>>()
        .join(",");
    assert_eq!(parse_baggage(&many).unwrap().len(), 64);
    let big = format!("a={},b=1", "x".repeat(8191));
    let parsed = parse_baggage(&big).unwrap();
    assert!(
        parsed.get("a").is_none(),
        "a member over 8192 bytes is dropped whole"
    );
    assert_eq!(parsed.get("b").map(|v| v.as_str()), Some("1"));
    let fits = format!("a={},b=1", "x".repeat(8190));
    let parsed = parse_baggage(&fits).unwrap();
    assert_eq!(
        parsed.get("a").map(|v| v.as_str().len()),
        Some(8190),
        "8192 bytes fit"
    );
    assert!(
        parsed.get("b").is_none(),
        "the member that would pass 8192 bytes is dropped"
    );
}

#[test]
fn baggage_inject_percent_encodes_and_round_trips() {
    let values = ["50%", "%41", "a,b;c d", "\\\"q\"", "caf\u{e9}", "a=b"];
    for value in values {
        let baggage = Baggage::from_iter([KeyValue::new("k", value)]);
        let header = format_baggage(&baggage).unwrap();
        assert!(header.bytes().all(|b| b.is_ascii_graphic()), "{header}");
        let back = parse_baggage(&header).unwrap();
        assert_eq!(back.get("k").map(|v| v.as_str()), Some(value), "{header}");
    }
    assert_eq!(format_baggage(&Baggage::new()), None);
}

#[test]
fn baggage_propagator_joins_several_headers() {
    #[derive(Debug)]
    struct Two;
    impl opentelemetry::propagation::Extractor for Two {
        fn get(&self, _: &str) -> Option<&str> {
            Some("a=1")
        }
        fn keys(&self) -> Vec<&str> {
            vec!["baggage"]
        }
        fn get_all(&self, key: &str) -> Option<Vec<&str>> {
            (key == "baggage").then(|| vec!["a=1", "b=2"])
        }
    }
    let cx = BaggagePropagator::new().extract_with_context(&Context::new(), &Two);
    assert_eq!(cx.baggage().len(), 2);
}

const ROOT: &str = "1-5759e988-bd862e3fe1be46a994272793";

#[test]
fn xray_accepts_any_field_order_and_extra_fields() {
    for value in [
        format!("Root={ROOT};Parent=53995c3f42cd8ad8;Sampled=1"),
        format!("Sampled=1;Parent=53995c3f42cd8ad8;Root={ROOT}"),
        format!("Root={ROOT}; Parent=53995c3f42cd8ad8; Sampled=1; Lineage=a87bd80c:1|68fd508a:5"),
        format!(
            "Self=1-67891234-12456789abcdef012345678;Root={ROOT};Parent=53995c3f42cd8ad8;Sampled=1"
        ),
    ] {
        let h = parse_xray_header(&value).unwrap_or_else(|e| panic!("{value}: {e}"));
        assert_eq!(
            h.trace_id,
            TraceId::from_hex("5759e988bd862e3fe1be46a994272793").unwrap()
        );
        assert_eq!(h.parent_id, SpanId::from_hex("53995c3f42cd8ad8").unwrap());
        assert!(h.sampled);
    }
    let h = parse_xray_header(&format!("Root={ROOT};Parent=53995c3f42cd8ad8")).unwrap();
    assert!(!h.sampled, "Sampled absent means not sampled");
}

#[test]
fn xray_is_strict_on_values() {
    let cases = [
        (
            format!("Root={};Parent=53995c3f42cd8ad8", ROOT.to_uppercase()),
            XRayErrorKind::Root,
        ),
        (
            "Root=2-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8".to_owned(),
            XRayErrorKind::Root,
        ),
        (
            "Root=1-5759e98-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8".to_owned(),
            XRayErrorKind::Root,
        ),
        (
            "Root=1-00000000-000000000000000000000000;Parent=53995c3f42cd8ad8".to_owned(),
            XRayErrorKind::Root,
        ),
        (
            format!("Root={ROOT};Parent=53995c3f42cd8ad"),
            XRayErrorKind::Parent,
        ),
        (
            format!("Root={ROOT};Parent=0000000000000000"),
            XRayErrorKind::Parent,
        ),
        (
            format!("Root={ROOT};Parent=53995c3f42cd8ad8;Sampled=?"),
            XRayErrorKind::Sampled,
        ),
        (
            format!("Root={ROOT};Root={ROOT};Parent=53995c3f42cd8ad8"),
            XRayErrorKind::Duplicated,
        ),
        (format!("Root={ROOT}"), XRayErrorKind::MissingParent),
        (
            "Parent=53995c3f42cd8ad8".to_owned(),
            XRayErrorKind::MissingRoot,
        ),
        (format!("Root={ROOT};garbage"), XRayErrorKind::Field),
    ];
    for (value, kind) in cases {
        assert_eq!(parse_xray_header(&value).unwrap_err().kind, kind, "{value}");
    }
}

#[test]
fn xray_format_and_propagator_round_trip() {
    let sc = SpanContext::new(
        TraceId::from_hex("5759e988bd862e3fe1be46a994272793").unwrap(),
        SpanId::from_hex("53995c3f42cd8ad8").unwrap(),
        TraceFlags::SAMPLED,
        false,
        TraceState::NONE,
    );
    assert_eq!(
        format_xray_header(&sc).unwrap(),
        format!("Root={ROOT};Parent=53995c3f42cd8ad8;Sampled=1")
    );
    let mut carrier = HashMap::new();
    XRayPropagator::new().inject_context(
        &Context::new().with_remote_span_context(sc.clone()),
        &mut carrier,
    );
    let cx = XRayPropagator::new().extract_with_context(&Context::new(), &carrier);
    assert_eq!(cx.span().span_context().trace_id(), sc.trace_id());
    assert_eq!(cx.span().span_context().span_id(), sc.span_id());
    assert!(cx.span().span_context().is_sampled());
}

#[test]
fn otel_propagators_values() {
    use PropagatorName::*;
    let cases: [(&str, &[PropagatorName]); 6] = [
        ("", &[TraceContext, Baggage]),
        (" , ", &[TraceContext, Baggage]),
        ("tracecontext,baggage", &[TraceContext, Baggage]),
        ("xray, tracecontext", &[XRay, TraceContext]),
        ("TraceContext,tracecontext", &[TraceContext]),
        ("none", &[None]),
    ];
    for (value, names) in cases {
        assert_eq!(
            Propagators::from_otel_propagators(value).unwrap().names(),
            names,
            "{value:?}"
        );
    }
    assert!(
        Propagators::from_otel_propagators("none")
            .unwrap()
            .is_noop()
    );
    let err = Propagators::from_otel_propagators("tracecontext,b3").unwrap_err();
    assert_eq!(
        err.to_string(),
        "OTEL_PROPAGATORS: \"tracecontext,b3\" names \"b3\", which is not one of tracecontext, baggage, xray, none"
    );
    assert!(matches!(
        Propagators::from_otel_propagators("none,xray"),
        Err(PropagatorsError::NoneCombined { .. })
    ));
}

#[test]
fn composite_injects_every_named_header_and_none_injects_nothing() {
    let sc = SpanContext::new(
        TraceId::from(7u128),
        SpanId::from(9u64),
        TraceFlags::SAMPLED,
        false,
        TraceState::NONE,
    );
    let cx = Context::new()
        .with_remote_span_context(sc)
        .with_baggage([KeyValue::new("k", "v")]);
    let mut out = HashMap::new();
    Propagators::from_otel_propagators("tracecontext,baggage,xray")
        .unwrap()
        .inject_context(&cx, &mut out);
    let mut keys: Vec<_> = out.keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["baggage", "traceparent", "x-amzn-trace-id"]);

    let mut out = HashMap::new();
    Propagators::from_otel_propagators("none")
        .unwrap()
        .inject_context(&cx, &mut out);
    assert!(out.is_empty());
}

#[test]
fn xray_after_tracecontext_keeps_the_richer_context_for_the_same_span() {
    let mut carrier = HashMap::new();
    carrier.insert(
        "traceparent".to_owned(),
        "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-03".to_owned(),
    );
    carrier.insert("tracestate".to_owned(), "v=1".to_owned());
    carrier.insert(
        "x-amzn-trace-id".to_owned(),
        format!("Root={ROOT};Parent=53995c3f42cd8ad8;Sampled=1"),
    );
    let p = Propagators::from_otel_propagators("tracecontext,xray").unwrap();
    let cx = p.extract_with_context(&Context::new(), &carrier);
    assert_eq!(cx.span().span_context().trace_flags().to_u8(), 0x03);
    assert_eq!(cx.span().span_context().trace_state().header(), "v=1");

    carrier.insert(
        "x-amzn-trace-id".to_owned(),
        format!("Root={ROOT};Parent=1111111111111111;Sampled=0"),
    );
    let cx = p.extract_with_context(&Context::new(), &carrier);
    assert_eq!(
        cx.span().span_context().span_id(),
        SpanId::from(0x1111111111111111)
    );
}
