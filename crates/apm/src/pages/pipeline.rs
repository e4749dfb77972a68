//! The Pipeline view: the collector's own forwarding — each export destination's persistent
//! queue (depth, age of the oldest entry, sends, retries, failures) and tail sampling's
//! decisions — from figures the collector hands over as a [`PipelineView`] (the same counters
//! as its `/metrics`).

use std::fmt::Write as _;

use crate::html::{self, Esc, Nav};

/// One export destination's queue and counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DestinationView {
    /// The endpoint as configured.
    pub name: String,
    /// `traces,logs,metrics` or a subset.
    pub signals: String,
    pub queue_records: u64,
    pub queue_items: u64,
    pub queue_bytes: u64,
    /// Age of the oldest queued request, in milliseconds (0 when empty).
    pub oldest_age_ms: u64,
    pub sent_requests: u64,
    pub sent_items: u64,
    pub retries: u64,
    /// Items refused for good (permanent errors).
    pub failed_items: u64,
    /// Items a partial success rejected.
    pub rejected_items: u64,
    /// Items dropped past the queue's age bound.
    pub expired_items: u64,
}

/// Tail sampling's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SamplingView {
    /// The configured ratio, e.g. `0.1`.
    pub ratio: String,
    /// (decision, reason, traces), e.g. ("keep", "error", 12).
    pub decisions: Vec<(String, String, u64)>,
    pub pending_traces: u64,
    pub spool_items: u64,
    pub spool_bytes: u64,
    pub late_kept: u64,
    pub late_dropped: u64,
    pub forced: u64,
    pub kept_spans: u64,
    pub dropped_spans: u64,
}

/// What the page shows, read when it is requested.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PipelineView {
    pub destinations: Vec<DestinationView>,
    pub sampling: Option<SamplingView>,
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / f64::from(1u32 << 30)),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20)),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// The page (`None`: the collector was started without a pipeline to show).
pub fn page(view: Option<&PipelineView>) -> String {
    let mut body = String::with_capacity(8 * 1024);
    body.push_str("<h1>Pipeline</h1>");
    let view = view.cloned().unwrap_or_default();
    if view.destinations.is_empty() {
        body.push_str(
            "<section class=\"empty\" data-testid=\"no-destinations\"><h2>Not forwarding</h2>\
<p>This collector keeps what it receives and forwards nothing. Forward upstream with \
<code>--export-otlp grpcs://ingress.example.com:443</code> (repeatable; <code>env</code> reads \
<code>OTEL_EXPORTER_OTLP_*</code>): each destination gets a persistent queue in the data directory, \
shown here.</p></section>",
        );
    } else {
        body.push_str(
            "<p class=\"muted\">A request is acknowledged once it is durable in every queue, and \
leaves a queue once the upstream accepted it. The same figures are on \
<a href=\"/metrics\">/metrics</a> (<code>throughline_export_*</code>).</p>\
<table data-testid=\"destinations\"><thead><tr><th>Destination</th><th>Signals</th>\
<th class=\"num\">Queued requests</th><th class=\"num\">Queued items</th><th class=\"num\">Queued bytes</th>\
<th class=\"num\">Oldest</th><th class=\"num\">Sent requests</th><th class=\"num\">Sent items</th>\
<th class=\"num\">Retries</th><th class=\"num\">Failed items</th><th class=\"num\">Rejected items</th>\
<th class=\"num\">Expired items</th></tr></thead><tbody>",
        );
        for d in &view.destinations {
            let oldest = if d.queue_records == 0 {
                "–".to_owned()
            } else {
                html::duration_ms(d.oldest_age_ms as f64)
            };
            let _ = write!(
                body,
                "<tr data-destination=\"{name}\"><th scope=\"row\"><code>{name}</code></th><td>{signals}</td>\
<td class=\"num\" data-field=\"queue_records\">{}</td><td class=\"num\" data-field=\"queue_items\">{}</td>\
<td class=\"num\" data-field=\"queue_bytes\">{}</td><td class=\"num\" data-field=\"oldest\">{oldest}</td>\
<td class=\"num\" data-field=\"sent_requests\">{}</td><td class=\"num\" data-field=\"sent_items\">{}</td>\
<td class=\"num\" data-field=\"retries\">{}</td><td class=\"num\" data-field=\"failed_items\">{}</td>\
<td class=\"num\" data-field=\"rejected_items\">{}</td><td class=\"num\" data-field=\"expired_items\">{}</td></tr>",
                d.queue_records,
                d.queue_items,
                bytes(d.queue_bytes),
                d.sent_requests,
                d.sent_items,
                d.retries,
                d.failed_items,
                d.rejected_items,
                d.expired_items,
                name = Esc(&d.name),
                signals = Esc(&d.signals),
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("<h2>Tail sampling</h2>");
    match &view.sampling {
        None => body.push_str(
            "<p class=\"muted\" data-testid=\"no-sampling\">Off: every span is kept. Turn it on with \
<code>--tail-sampling-ratio 0.1</code> (errors and slow traces are always kept).</p>",
        ),
        Some(s) => {
            let _ = write!(
                body,
                "<p class=\"muted\">Ratio {} of the traces that are neither errors nor slow. {} traces \
pending a decision; {} spans ({}) acknowledged in the spool, not yet decided.</p>\
<table data-testid=\"sampling\"><thead><tr><th>Decision</th><th>Reason</th><th class=\"num\">Traces</th>\
</tr></thead><tbody>",
                Esc(&s.ratio),
                s.pending_traces,
                s.spool_items,
                bytes(s.spool_bytes)
            );
            for (decision, reason, n) in &s.decisions {
                let _ = write!(
                    body,
                    "<tr data-decision=\"{d}\" data-reason=\"{r}\"><td>{d}</td><td>{r}</td><td class=\"num\">{n}</td></tr>",
                    d = Esc(decision),
                    r = Esc(reason)
                );
            }
            let _ = write!(
                body,
                "</tbody></table><p class=\"muted\">Spans kept {}, dropped {}; spans after their \
trace's decision: {} kept, {} dropped; decided early (too many pending): {}.</p>",
                s.kept_spans, s.dropped_spans, s.late_kept, s.late_dropped, s.forced
            );
        }
    }
    html::page("Pipeline", Nav::Pipeline, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_are_escaped_and_the_empty_states_say_how_to_start() {
        let empty = page(None);
        assert!(empty.contains("data-testid=\"no-destinations\""));
        assert!(empty.contains("data-testid=\"no-sampling\""));
        let view = PipelineView {
            destinations: vec![DestinationView {
                name: "http://h:1/<x>\"".into(),
                signals: "traces".into(),
                queue_records: 2,
                queue_items: 7,
                queue_bytes: 2048,
                oldest_age_ms: 1500,
                retries: 3,
                ..DestinationView::default()
            }],
            sampling: Some(SamplingView {
                ratio: "0.1".into(),
                decisions: vec![("keep".into(), "error".into(), 4)],
                ..SamplingView::default()
            }),
        };
        let html = page(Some(&view));
        assert!(html.contains("http://h:1/&lt;x&gt;&quot;"), "{html}");
        assert!(!html.contains("<x>"));
        assert!(html.contains("data-field=\"queue_items\">7<"));
        assert!(html.contains("data-field=\"queue_bytes\">2.0 KiB<"));
        assert!(
            html.contains("data-field=\"oldest\">1.50 s<")
                || html.contains("data-field=\"oldest\">1.5 s<"),
            "{html}"
        );
        assert!(html.contains("data-decision=\"keep\" data-reason=\"error\"><td>keep</td><td>error</td><td class=\"num\">4<"));
    }
}
