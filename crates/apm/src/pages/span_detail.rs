//! The detail of one span: identity, timing, queue time, attributes, resource, events with
//! exception stacks, and links that open the linked span.

use std::fmt::Write as _;

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_semantic_conventions::attribute::{
    EXCEPTION_MESSAGE, EXCEPTION_STACKTRACE, EXCEPTION_TYPE,
};
use throughline_store::{AnyValue, KeyValue, SpanId, SpanKind, TraceId, TraceReader};

use crate::html::{self, Esc};
use crate::pages::trace_tree::{TraceTree, is_error, queue_text};

/// An attribute value as text: strings bare, arrays and maps in a JSON-like form.
pub(crate) fn value_text(v: Option<&AnyValue>) -> String {
    let Some(value) = v.and_then(|v| v.value.as_ref()) else {
        return String::new();
    };
    match value {
        Value::StringValue(s) => s.clone(),
        Value::BoolValue(b) => b.to_string(),
        Value::IntValue(i) => i.to_string(),
        Value::DoubleValue(d) => d.to_string(),
        Value::BytesValue(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
        Value::ArrayValue(a) => {
            let items: Vec<String> = a.values.iter().map(|v| value_text(Some(v))).collect();
            format!("[{}]", items.join(", "))
        }
        Value::KvlistValue(kv) => {
            let items: Vec<String> = kv
                .values
                .iter()
                .map(|k| format!("{}: {}", k.key, value_text(k.value.as_ref())))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        Value::StringValueStrindex(i) => format!("#{i}"),
    }
}

fn kind_text(kind: i32) -> &'static str {
    match SpanKind::try_from(kind) {
        Ok(SpanKind::Server) => "server",
        Ok(SpanKind::Client) => "client",
        Ok(SpanKind::Producer) => "producer",
        Ok(SpanKind::Consumer) => "consumer",
        Ok(SpanKind::Internal) => "internal",
        _ => "unspecified",
    }
}

fn attribute_table(out: &mut String, caption: &str, attrs: &[KeyValue], testid: &str) {
    if attrs.is_empty() {
        let _ = write!(out, "<h3>{caption}</h3><p class=\"muted\">none</p>");
        return;
    }
    let _ = write!(
        out,
        "<h3>{caption}</h3><table class=\"kv\" data-testid=\"{testid}\"><tbody>"
    );
    let mut sorted: Vec<&KeyValue> = attrs.iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    for kv in sorted {
        let _ = write!(
            out,
            "<tr><th>{}</th><td>{}</td></tr>",
            Esc(&kv.key),
            Esc(&value_text(kv.value.as_ref()))
        );
    }
    out.push_str("</tbody></table>");
}

fn span_href(trace: &str, span: &str) -> String {
    format!("/trace/{trace}?span={span}#s-{span}")
}

pub fn render(
    out: &mut String,
    reader: &dyn TraceReader,
    tree: &TraceTree<'_>,
    i: usize,
    palette: &html::Palette,
) {
    let stored = &tree.spans[i];
    let s = &stored.span;
    let trace = TraceId::from_slice(&s.trace_id)
        .map(|t| t.to_string())
        .unwrap_or_default();
    let sid = SpanId::from_slice(&s.span_id)
        .map(|x| x.to_string())
        .unwrap_or_default();
    let _ = write!(
        out,
        "<a class=\"close\" href=\"/trace/{trace}#s-{sid}\" aria-label=\"close span detail\">×</a>\
<h2><span class=\"svc\" style=\"--c:{}\">{}</span> {}</h2><dl class=\"facts\">\
<div><dt>Span id</dt><dd><code>{sid}</code></dd></div><div><dt>Kind</dt><dd>{}</dd></div>\
<div><dt>Duration</dt><dd>{}</dd></div><div><dt>Start</dt><dd>+{} ({} UTC)</dd></div>",
        palette.colour(&stored.service_name),
        Esc(&stored.service_name),
        Esc(&s.name),
        kind_text(s.kind),
        html::duration(s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano)),
        html::duration(s.start_time_unix_nano.saturating_sub(tree.start_unix_nanos)),
        html::timestamp(s.start_time_unix_nano),
    );
    match tree.parent[i] {
        Some(p) => {
            let ps = &tree.spans[p];
            let pid = SpanId::from_slice(&ps.span.span_id)
                .map(|x| x.to_string())
                .unwrap_or_default();
            let _ = write!(
                out,
                "<div><dt>Parent</dt><dd><a href=\"{}\">{} {}</a></dd></div>",
                span_href(&trace, &pid),
                Esc(&ps.service_name),
                Esc(&ps.span.name)
            );
        }
        None if !s.parent_span_id.is_empty() && s.parent_span_id.iter().any(|b| *b != 0) => {
            let _ = write!(
                out,
                "<div><dt>Parent</dt><dd><code>{}</code> <span class=\"badge broken\">did not arrive</span></dd></div>",
                SpanId::from_slice(&s.parent_span_id)
                    .map(|x| x.to_string())
                    .unwrap_or_default()
            );
        }
        None => {}
    }
    if let Some(status) = &s.status {
        let text = match status.code {
            1 => "ok".to_owned(),
            2 => "error".to_owned(),
            _ => "unset".to_owned(),
        };
        let _ = write!(
            out,
            "<div><dt>Status</dt><dd>{}{}{}</dd></div>",
            if is_error(stored) {
                "<span class=\"errmark\">error</span>"
            } else {
                &text
            },
            if status.message.is_empty() { "" } else { ": " },
            Esc(&status.message)
        );
    }
    queue_fact(out, reader, tree, i, &trace);
    out.push_str("</dl>");

    attribute_table(out, "Attributes", &s.attributes, "span-attributes");

    if !s.events.is_empty() {
        let _ = write!(
            out,
            "<h3>Events ({})</h3><ol class=\"events\">",
            s.events.len()
        );
        for e in &s.events {
            let get = |k: &str| {
                e.attributes
                    .iter()
                    .find(|kv| kv.key == k)
                    .map(|kv| value_text(kv.value.as_ref()))
            };
            let _ = write!(
                out,
                "<li><p><strong>{}</strong> <span class=\"muted\">+{}</span></p>",
                Esc(&e.name),
                html::duration(e.time_unix_nano.saturating_sub(s.start_time_unix_nano))
            );
            if let Some(kind) = get(EXCEPTION_TYPE) {
                let _ = write!(
                    out,
                    "<p class=\"exc\">{}: {}</p>",
                    Esc(&kind),
                    Esc(&get(EXCEPTION_MESSAGE).unwrap_or_default())
                );
            }
            if let Some(stack) = get(EXCEPTION_STACKTRACE) {
                let _ = write!(
                    out,
                    "<pre class=\"stack\" tabindex=\"0\">{}</pre>",
                    Esc(&stack)
                );
            }
            let rest: Vec<KeyValue> = e
                .attributes
                .iter()
                .filter(|kv| {
                    ![EXCEPTION_TYPE, EXCEPTION_MESSAGE, EXCEPTION_STACKTRACE]
                        .contains(&kv.key.as_str())
                })
                .cloned()
                .collect();
            if !rest.is_empty() {
                attribute_table(out, "Event attributes", &rest, "event-attributes");
            }
            out.push_str("</li>");
        }
        out.push_str("</ol>");
    }

    if !s.links.is_empty() {
        let _ = write!(
            out,
            "<h3>Links ({})</h3><ul class=\"links\">",
            s.links.len()
        );
        for l in &s.links {
            let lt = TraceId::from_slice(&l.trace_id)
                .map(|t| t.to_string())
                .unwrap_or_default();
            let ls = SpanId::from_slice(&l.span_id)
                .map(|x| x.to_string())
                .unwrap_or_default();
            let label = match (lt == trace, tree.find(&l.span_id)) {
                (true, Some(j)) => format!(
                    "{} {} (this trace)",
                    tree.spans[j].service_name, tree.spans[j].span.name
                ),
                (true, None) => format!("span {ls} (this trace, not arrived)"),
                (false, _) => format!("span {ls} in trace {lt}"),
            };
            let _ = write!(
                out,
                "<li><a data-testid=\"span-link\" href=\"{}\">{}</a></li>",
                span_href(&lt, &ls),
                Esc(&label)
            );
        }
        out.push_str("</ul>");
    }

    attribute_table(
        out,
        "Resource",
        &stored.resource.attributes,
        "resource-attributes",
    );
    if let Some(scope) = &stored.scope {
        let _ = write!(
            out,
            "<h3>Instrumentation scope</h3><p><code>{}</code> {}</p>",
            Esc(&scope.name),
            Esc(&scope.version)
        );
    }
}

/// The queue time fact, from the in-trace producer or, for a link into another trace, from
/// that trace's producer span (one more read, only for the selected span).
fn queue_fact(
    out: &mut String,
    reader: &dyn TraceReader,
    tree: &TraceTree<'_>,
    i: usize,
    trace: &str,
) {
    let s = &tree.spans[i].span;
    if let Some((p, wait)) = tree.queue_time(i) {
        let ps = &tree.spans[p];
        let pid = SpanId::from_slice(&ps.span.span_id)
            .map(|x| x.to_string())
            .unwrap_or_default();
        let _ = write!(
            out,
            "<div class=\"qt\"><dt>Queue time</dt><dd data-testid=\"detail-queue-time\"><strong>{}</strong> from the end of <a href=\"{}\">{} {}</a> to the start of this span</dd></div>",
            Esc(&queue_text(wait)),
            span_href(trace, &pid),
            Esc(&ps.service_name),
            Esc(&ps.span.name)
        );
        return;
    }
    if s.kind != SpanKind::Consumer as i32 {
        return;
    }
    let Some(link) = s.links.iter().find(|l| l.trace_id != s.trace_id) else {
        return;
    };
    let Some(other) = TraceId::from_slice(&link.trace_id) else {
        return;
    };
    let Ok(spans) = reader.trace(other) else {
        return;
    };
    let Some(ps) = spans
        .iter()
        .find(|x| x.span.span_id == link.span_id && x.span.kind == SpanKind::Producer as i32)
    else {
        return;
    };
    let wait = i128::from(s.start_time_unix_nano) - i128::from(ps.span.end_time_unix_nano);
    let _ = write!(
        out,
        "<div class=\"qt\"><dt>Queue time</dt><dd data-testid=\"detail-queue-time\"><strong>{}</strong> from the end of the linked <a href=\"{}\">{} {}</a> (trace {other}) to the start of this span</dd></div>",
        Esc(&queue_text(wait)),
        span_href(
            &other.to_string(),
            &SpanId::from_slice(&link.span_id)
                .map(|x| x.to_string())
                .unwrap_or_default()
        ),
        Esc(&ps.service_name),
        Esc(&ps.span.name)
    );
}
