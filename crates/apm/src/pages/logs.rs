//! The Logs page: log records searched by service, severity, text, trace and span id over a
//! window, newest first, each linking to its trace and span; and the pieces the trace page uses
//! to show a trace's log records.

use std::fmt::Write as _;

use throughline_jaeger::logs::log_query;
use throughline_store::{LogQuery, Severity, StoredLog, TraceId, TraceReader};

use crate::error::PageError;
use crate::html::{self, Esc, Nav};
use crate::params::{DEFAULT_LOOKBACK_NANOS, Params};

/// The lookback choices offered by the form.
const LOOKBACKS: &[(&str, &str)] = &[
    ("15m", "Last 15 minutes"),
    ("1h", "Last hour"),
    ("6h", "Last 6 hours"),
    ("1d", "Last day"),
    ("7d", "Last 7 days"),
];

/// The most records the trace page shows (a trace's own logs; more are one search away).
pub const TRACE_LOG_LIMIT: usize = 1000;

/// Every log record of a trace, oldest first.
pub fn of_trace(reader: &dyn TraceReader, id: TraceId) -> Result<Vec<StoredLog>, PageError> {
    let mut logs = reader.search_logs(&LogQuery {
        trace_id: Some(id),
        start_unix_nanos: 0,
        end_unix_nanos: u64::MAX,
        limit: TRACE_LOG_LIMIT,
        ..LogQuery::default()
    })?;
    logs.reverse();
    Ok(logs)
}

/// The severity as a coloured badge.
pub fn severity_badge(log: &StoredLog) -> String {
    let class = Severity::of_number(throughline_store::logs::severity_number(&log.record)).map_or(
        "unset",
        |s| match s {
            Severity::Trace | Severity::Debug => "debug",
            Severity::Info => "info",
            Severity::Warn => "warn",
            Severity::Error | Severity::Fatal => "error",
        },
    );
    format!(
        "<span class=\"sev sev-{class}\">{}</span>",
        Esc(&log.severity_text())
    )
}

/// The body and, muted after it, the attributes as `key=value`.
pub fn body_and_attributes(log: &StoredLog) -> String {
    let mut out = format!("<span class=\"lgbody\">{}</span>", Esc(&log.body_text()));
    if !log.record.attributes.is_empty() {
        out.push_str(" <span class=\"muted lgattrs\">");
        for (i, kv) in log.record.attributes.iter().enumerate() {
            let value = kv
                .value
                .as_ref()
                .map(throughline_store::logs::any_value_text)
                .unwrap_or_default();
            let _ = write!(
                out,
                "{}{}={}",
                if i == 0 { "" } else { " " },
                Esc(&kv.key),
                Esc(&value)
            );
        }
        out.push_str("</span>");
    }
    out
}

/// The link from a log record to its trace (and span), when it has one.
fn trace_link(log: &StoredLog) -> String {
    let Some(t) = log.trace_id() else {
        return "<span class=\"muted\">–</span>".to_owned();
    };
    match log.span_id() {
        Some(s) => format!(
            "<a class=\"tid\" href=\"/trace/{t}?span={s}#s-{s}\" data-testid=\"log-trace\">{}</a>",
            &t.to_string()[..8]
        ),
        None => format!(
            "<a class=\"tid\" href=\"/trace/{t}\" data-testid=\"log-trace\">{}</a>",
            &t.to_string()[..8]
        ),
    }
}

pub fn page(reader: &dyn TraceReader, params: &Params, now: u64) -> Result<String, PageError> {
    let query = log_query(params, now, DEFAULT_LOOKBACK_NANOS)?;
    let services = reader.services()?;
    let logs = reader.search_logs(&query)?;
    let mut body = String::with_capacity(logs.len() * 300 + 8192);
    body.push_str(
        "<h1>Logs</h1><form class=\"search\" method=\"get\" action=\"/logs\" data-testid=\"log-form\">\
<label>Service<select name=\"service\"><option value=\"\">any</option>",
    );
    for s in &services {
        let sel = if query.service.as_deref() == Some(s) {
            " selected"
        } else {
            ""
        };
        let _ = write!(body, "<option{sel}>{}</option>", Esc(s));
    }
    body.push_str(
        "</select></label><label>Severity<select name=\"severity\"><option value=\"\">any</option>",
    );
    for s in Severity::ALL {
        let sel = if query.min_severity == Some(s) {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            body,
            "<option value=\"{}\"{sel}>{} and above</option>",
            s.as_str().to_ascii_lowercase(),
            s.as_str()
        );
    }
    let lookback = params.get("lookback").unwrap_or("1h");
    let _ = write!(
        body,
        "</select></label><label class=\"wide\">Text<input name=\"q\" value=\"{}\" placeholder=\"words in the message or attributes\"></label>\
<label>Trace id<input name=\"traceID\" value=\"{}\" size=\"32\" spellcheck=\"false\"></label>\
<label>Span id<input name=\"spanID\" value=\"{}\" size=\"16\" spellcheck=\"false\"></label><label>Window<select name=\"lookback\">",
        Esc(query.text.as_deref().unwrap_or_default()),
        query.trace_id.map(|t| t.to_string()).unwrap_or_default(),
        query.span_id.map(|s| s.to_string()).unwrap_or_default(),
    );
    for (value, label) in LOOKBACKS {
        let sel = if *value == lookback { " selected" } else { "" };
        let _ = write!(body, "<option value=\"{value}\"{sel}>{label}</option>");
    }
    if !LOOKBACKS.iter().any(|(v, _)| *v == lookback) {
        let _ = write!(
            body,
            "<option value=\"{0}\" selected>Last {0}</option>",
            Esc(lookback)
        );
    }
    let _ = write!(
        body,
        "</select></label><label>Limit<input name=\"limit\" type=\"number\" min=\"1\" max=\"{}\" value=\"{}\" size=\"4\"></label>\
<button type=\"submit\">Find logs</button></form>",
        throughline_jaeger::logs::MAX_LOG_LIMIT,
        query.limit
    );
    let _ = write!(
        body,
        "<p class=\"muted\">{} record{} from {} to {} UTC, newest first.</p>",
        logs.len(),
        if logs.len() == 1 { "" } else { "s" },
        html::timestamp(query.start_unix_nanos),
        html::timestamp(query.end_unix_nanos)
    );
    if logs.is_empty() {
        body.push_str(
            "<p class=\"muted\" data-testid=\"no-logs\">No log records match. Services send theirs \
over OTLP (<code>OTEL_LOGS_EXPORTER=otlp</code>, which <code>throughline up</code> sets).</p>",
        );
        return Ok(html::page("Logs", Nav::Logs, &body));
    }
    body.push_str(
        "<table class=\"logs\" data-testid=\"log-records\"><thead><tr><th>Time (UTC)</th><th>Service</th>\
<th>Severity</th><th>Message</th><th>Trace</th></tr></thead><tbody>",
    );
    for log in &logs {
        let _ = write!(
            body,
            "<tr data-testid=\"log-row\"><td class=\"nowrap\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            html::timestamp(log.time_unix_nanos),
            Esc(&log.service_name),
            severity_badge(log),
            body_and_attributes(log),
            trace_link(log),
        );
    }
    body.push_str("</tbody></table>");
    Ok(html::page("Logs", Nav::Logs, &body))
}
