//! `/metrics` in the Prometheus text format: span metrics and the service graph under the names
//! the OpenTelemetry Collector's `spanmetrics` and `servicegraph` connectors give them (as
//! exported by its Prometheus exporter), then the collector's own figures.

use std::fmt::Write;

use throughline_store::{
    LATENCY_BUCKETS_MS, LatencyHistogram, ServiceGraphEdge, SpanKind, SpanMetricsSeries, StoreStats,
};

use crate::self_metrics::{CollectorMetrics, RefusalReason, Signal};

/// Escapes a label value (backslash, quote, newline), as the text format requires.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Formats a float the way Prometheus clients do (`+Inf`, no trailing `.0` noise).
fn number(value: f64) -> String {
    if value.is_infinite() {
        "+Inf".to_owned()
    } else {
        format!("{value}")
    }
}

/// The connector's `span_kind` label value.
fn span_kind_label(kind: SpanKind) -> &'static str {
    kind.as_str_name()
}

fn labels(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect::<Vec<_>>()
        .join(",")
}

/// Writes `name_bucket`, `_sum` and `_count` of a histogram; the stored milliseconds are divided
/// by `ms_per_unit` (1 for milliseconds, 1000 for seconds). Dividing, not multiplying by 1e-3,
/// keeps bounds exact as printed: 1400 / 1000 is `1.4`, 1400 × 1e-3 is `1.4000000000000001`.
fn histogram(out: &mut String, name: &str, base: &str, h: &LatencyHistogram, ms_per_unit: f64) {
    let mut cumulative = 0;
    for (i, count) in h.bucket_counts.iter().enumerate() {
        cumulative += count;
        let le = LATENCY_BUCKETS_MS
            .get(i)
            .map(|b| b / ms_per_unit)
            .unwrap_or(f64::INFINITY);
        let _ = writeln!(
            out,
            "{name}_bucket{{{base},le=\"{}\"}} {cumulative}",
            number(le)
        );
    }
    if h.bucket_counts.is_empty() {
        let _ = writeln!(out, "{name}_bucket{{{base},le=\"+Inf\"}} {}", h.count);
    }
    let _ = writeln!(
        out,
        "{name}_sum{{{base}}} {}",
        number(h.sum_ms / ms_per_unit)
    );
    let _ = writeln!(out, "{name}_count{{{base}}} {}", h.count);
}

/// The span metrics, as `traces_span_metrics_*`.
pub fn span_metrics(out: &mut String, series: &[SpanMetricsSeries]) {
    let _ = writeln!(
        out,
        "# HELP traces_span_metrics_calls_total Number of spans, per service, span name, kind and status."
    );
    let _ = writeln!(out, "# TYPE traces_span_metrics_calls_total counter");
    let base = |s: &SpanMetricsSeries| {
        labels(&[
            ("service_name", &s.service),
            ("span_name", &s.span_name),
            ("span_kind", span_kind_label(s.span_kind)),
            ("status_code", s.status_code),
        ])
    };
    for s in series {
        let _ = writeln!(
            out,
            "traces_span_metrics_calls_total{{{}}} {}",
            base(s),
            s.calls
        );
    }
    let _ = writeln!(
        out,
        "# HELP traces_span_metrics_duration_milliseconds Span duration."
    );
    let _ = writeln!(
        out,
        "# TYPE traces_span_metrics_duration_milliseconds histogram"
    );
    for s in series {
        histogram(
            out,
            "traces_span_metrics_duration_milliseconds",
            &base(s),
            &s.latency,
            1.0,
        );
    }
}

/// The service graph, as `traces_service_graph_*`.
pub fn service_graph(out: &mut String, edges: &[ServiceGraphEdge]) {
    let base = |e: &ServiceGraphEdge| {
        labels(&[
            ("client", &e.client),
            ("server", &e.server),
            ("connection_type", e.connection.as_str()),
        ])
    };
    let _ = writeln!(
        out,
        "# HELP traces_service_graph_request_total Requests between two nodes."
    );
    let _ = writeln!(out, "# TYPE traces_service_graph_request_total counter");
    for e in edges {
        let _ = writeln!(
            out,
            "traces_service_graph_request_total{{{}}} {}",
            base(e),
            e.calls
        );
    }
    let _ = writeln!(
        out,
        "# HELP traces_service_graph_request_failed_total Failed requests between two nodes."
    );
    let _ = writeln!(
        out,
        "# TYPE traces_service_graph_request_failed_total counter"
    );
    for e in edges {
        let _ = writeln!(
            out,
            "traces_service_graph_request_failed_total{{{}}} {}",
            base(e),
            e.failed_calls
        );
    }
    for (side, help, pick) in [
        (
            "server",
            "Request time seen by the server.",
            (|e: &ServiceGraphEdge| &e.latency) as fn(&ServiceGraphEdge) -> &LatencyHistogram,
        ),
        ("client", "Request time seen by the client.", |e| {
            &e.client_latency
        }),
    ] {
        let name = format!("traces_service_graph_request_{side}_seconds");
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        for e in edges {
            histogram(out, &name, &base(e), pick(e), 1000.0);
        }
    }
}

/// The collector's own figures and the store's size.
pub fn own_figures(
    out: &mut String,
    metrics: &CollectorMetrics,
    inflight_bytes: u64,
    store: &StoreStats,
) {
    let counter = |out: &mut String, name: &str, help: &str, value: &dyn Fn(Signal) -> u64| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} counter");
        for signal in Signal::ALL {
            let _ = writeln!(
                out,
                "{name}{{signal=\"{}\"}} {}",
                signal.as_str(),
                value(signal)
            );
        }
    };
    counter(
        out,
        "throughline_collector_received_items_total",
        "Spans, log records and metrics received in admitted requests.",
        &|s| metrics.received(s),
    );
    counter(
        out,
        "throughline_collector_stored_items_total",
        "Spans, log records and metrics made durable.",
        &|s| metrics.stored(s),
    );
    counter(
        out,
        "throughline_collector_rejected_items_total",
        "Items received but not kept (partial success or store failure).",
        &|s| metrics.rejected_items(s),
    );
    let _ = writeln!(
        out,
        "# HELP throughline_collector_refused_requests_total Export requests refused, by reason."
    );
    let _ = writeln!(
        out,
        "# TYPE throughline_collector_refused_requests_total counter"
    );
    for signal in Signal::ALL {
        for reason in RefusalReason::ALL {
            let _ = writeln!(
                out,
                "throughline_collector_refused_requests_total{{signal=\"{}\",reason=\"{}\"}} {}",
                signal.as_str(),
                reason.as_str(),
                metrics.refused(signal, reason)
            );
        }
    }
    let gauge = |out: &mut String, name: &str, help: &str, value: u64| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        let _ = writeln!(out, "{name} {value}");
    };
    gauge(
        out,
        "throughline_collector_inflight_bytes",
        "Bytes of export requests being decoded or written.",
        inflight_bytes,
    );
    gauge(
        out,
        "throughline_store_spans",
        "Spans held by the store.",
        store.spans,
    );
    gauge(
        out,
        "throughline_store_traces",
        "Traces held by the store.",
        store.traces,
    );
    gauge(
        out,
        "throughline_store_disk_bytes",
        "Bytes the store uses on disk.",
        store.disk_bytes,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use throughline_store::ConnectionType;

    #[test]
    fn histogram_buckets_are_cumulative_and_end_at_inf() {
        let mut counts = vec![0; LATENCY_BUCKETS_MS.len() + 1];
        counts[0] = 2;
        counts[5] = 1;
        counts[LATENCY_BUCKETS_MS.len()] = 1;
        let h = LatencyHistogram {
            bucket_counts: counts,
            count: 4,
            sum_ms: 20_003.0,
        };
        let mut out = String::new();
        histogram(&mut out, "x", "a=\"b\"", &h, 1.0);
        assert!(out.contains("x_bucket{a=\"b\",le=\"2\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"50\"} 3\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"15000\"} 3\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"+Inf\"} 4\n"), "{out}");
        assert!(out.contains("x_count{a=\"b\"} 4\n"), "{out}");
    }

    #[test]
    fn second_bounds_print_as_the_connector_configures_them() {
        let h = LatencyHistogram {
            bucket_counts: vec![0; LATENCY_BUCKETS_MS.len() + 1],
            count: 0,
            sum_ms: 0.0,
        };
        let mut out = String::new();
        histogram(&mut out, "x", "a=\"b\"", &h, 1000.0);
        for bound in ["0.002", "0.006", "1.4", "15"] {
            assert!(out.contains(&format!("le=\"{bound}\"}}")), "{bound}: {out}");
        }
        assert!(!out.contains("00000"), "{out}");
    }

    #[test]
    fn edges_carry_the_connectors_connection_type() {
        let edge = |connection| ServiceGraphEdge {
            client: "api".into(),
            client_kind: throughline_store::NodeKind::Service,
            server: "worker".into(),
            server_kind: throughline_store::NodeKind::Service,
            connection,
            calls: 1,
            failed_calls: 0,
            latency: LatencyHistogram::default(),
            client_latency: LatencyHistogram::default(),
        };
        let mut out = String::new();
        service_graph(
            &mut out,
            &[
                edge(ConnectionType::MessagingSystem),
                edge(ConnectionType::Database),
                edge(ConnectionType::VirtualNode),
                edge(ConnectionType::Direct),
            ],
        );
        for label in ["messaging_system", "database", "virtual_node", ""] {
            assert!(
                out.contains(&format!(
                    "request_total{{client=\"api\",server=\"worker\",connection_type=\"{label}\"}} 1"
                )),
                "{label}: {out}"
            );
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
