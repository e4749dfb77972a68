//! The search page: the form, with its state in the URL, and the matching traces.

use std::fmt::Write as _;

use std::collections::HashMap;

use throughline_store::{Finding, FindingQuery, SpanError, TraceId, TraceReader, TraceSummary};

use crate::OtlpEndpoints;
use crate::error::PageError;
use crate::html::{self, Esc, Nav, Url};
use crate::pages::{findings, integrity_badge, no_data_help};
use crate::params::{self, Params};

/// The lookback choices offered by the form.
const LOOKBACKS: &[(&str, &str)] = &[
    ("15m", "Last 15 minutes"),
    ("1h", "Last hour"),
    ("6h", "Last 6 hours"),
    ("1d", "Last day"),
    ("7d", "Last 7 days"),
];

pub fn page(
    reader: &dyn TraceReader,
    params: &Params,
    now: u64,
    endpoints: &OtlpEndpoints,
) -> Result<String, PageError> {
    let query = params::trace_query(params, now)?;
    let services = reader.services()?;
    let palette = html::Palette::new(&services);
    let operations = match &query.service {
        Some(s) => reader.operations(s)?,
        None => Vec::new(),
    };
    let mut body = String::with_capacity(16 * 1024);
    body.push_str("<h1>Find traces</h1><form class=\"search\" method=\"get\" action=\"/search\">");
    let _ = write!(
        body,
        "<label>Service<select name=\"service\" id=\"service\"><option value=\"\">any</option>"
    );
    for s in &services {
        let sel = if query.service.as_deref() == Some(s) {
            " selected"
        } else {
            ""
        };
        let _ = write!(body, "<option{sel}>{}</option>", Esc(s));
    }
    let _ = write!(
        body,
        "</select></label><label>Operation<input name=\"operation\" list=\"ops\" value=\"{}\" placeholder=\"any\"></label><datalist id=\"ops\">",
        Esc(query.operation.as_deref().unwrap_or_default())
    );
    for op in &operations {
        let _ = write!(body, "<option value=\"{}\">", Esc(&op.name));
    }
    let lookback = params.get("lookback").unwrap_or("1h");
    let _ = write!(
        body,
        "</datalist><label class=\"wide\">Tags<input name=\"tags\" value=\"{}\" placeholder=\"http.response.status_code=500 messaging.system=aws_sqs\"></label>\
<label>Min duration<input name=\"minDuration\" value=\"{}\" placeholder=\"e.g. 100ms\" size=\"8\"></label>\
<label>Max duration<input name=\"maxDuration\" value=\"{}\" placeholder=\"e.g. 2s\" size=\"8\"></label><label>Window<select name=\"lookback\">",
        Esc(params.get("tags").unwrap_or_default()),
        Esc(params.get("minDuration").unwrap_or_default()),
        Esc(params.get("maxDuration").unwrap_or_default()),
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
<label class=\"check\"><input type=\"checkbox\" name=\"errors\" value=\"true\"{}> Errors only</label>",
        params::MAX_LIMIT,
        query.limit,
        if query.errors_only { " checked" } else { "" }
    );
    // Explicit start/end from a shared link are kept, so the form reproduces the same search.
    for key in ["start", "end", "incompleteOnly"] {
        if let Some(v) = params.get(key) {
            let _ = write!(
                body,
                "<input type=\"hidden\" name=\"{key}\" value=\"{}\">",
                Esc(v)
            );
        }
    }
    body.push_str("<button type=\"submit\">Find traces</button></form>");

    if services.is_empty() {
        body.push_str(&no_data_help(endpoints));
        return Ok(html::page("Search", Nav::Search, &body));
    }
    let traces = reader.find_traces(&query)?;
    // The findings of the listed traces: one read from the earliest listed start.
    let findings = match traces.iter().map(|t| t.start_unix_nanos).min() {
        Some(earliest) => reader.findings(&FindingQuery {
            start_unix_nanos: earliest,
            end_unix_nanos: u64::MAX,
            ..FindingQuery::default()
        })?,
        None => Vec::new(),
    };
    let mut by_trace: HashMap<TraceId, Vec<&Finding>> = HashMap::new();
    for f in &findings {
        by_trace.entry(f.trace_id).or_default().push(f);
    }
    results(&mut body, &traces, &by_trace, query.limit, &palette);
    Ok(html::page("Search", Nav::Search, &body))
}

fn results(
    body: &mut String,
    traces: &[TraceSummary],
    findings: &HashMap<TraceId, Vec<&Finding>>,
    limit: usize,
    palette: &html::Palette,
) {
    if traces.is_empty() {
        body.push_str(
            "<section class=\"empty\" data-testid=\"no-results\"><h2>No traces match</h2>\
<p>Widen the window, clear a filter, or check the service name. New spans are searchable a moment after they arrive.</p></section>",
        );
        return;
    }
    let longest = traces
        .iter()
        .map(|t| t.duration_nanos)
        .max()
        .unwrap_or(1)
        .max(1);
    let _ = write!(
        body,
        "<p class=\"count\">{} trace{}{}, most recent first</p><table class=\"results\"><thead><tr>\
<th>Trace</th><th>Root</th><th>Services</th><th class=\"num\">Spans</th><th class=\"num\">Duration</th><th>Started (UTC)</th><th>Integrity</th></tr></thead><tbody>",
        traces.len(),
        if traces.len() == 1 { "" } else { "s" },
        if traces.len() == limit {
            " (limit reached)"
        } else {
            ""
        }
    );
    for t in traces {
        let id = t.trace_id.to_string();
        let root = match (&t.root_service, &t.root_name) {
            (Some(s), Some(n)) => format!(
                "<span class=\"svc\" style=\"--c:{}\">{}</span> {}",
                palette.colour(s),
                Esc(s),
                Esc(n)
            ),
            _ => "<span class=\"muted\">no root span</span>".to_owned(),
        };
        let _ = write!(
            body,
            "<tr{}><td><a class=\"tid\" href=\"/trace/{id}\">{}</a>{}{}</td><td>{root}{}</td><td>",
            if t.has_error { " class=\"err\"" } else { "" },
            id,
            if t.has_error {
                " <span class=\"errmark\" title=\"a span has error status\">error</span>"
            } else {
                ""
            },
            match findings.get(&t.trace_id) {
                Some(list) => format!(" {}", findings::badges(list)),
                None => String::new(),
            },
            match &t.first_error {
                Some(e) => format!(
                    "<br><span class=\"errmsg\" data-testid=\"first-error\">{} · {}: {}</span>",
                    Esc(&e.service),
                    Esc(&e.span_name),
                    Esc(&error_words(&e.error))
                ),
                None => String::new(),
            },
        );
        for s in &t.services {
            let _ = write!(
                body,
                "<a class=\"svc\" style=\"--c:{}\" href=\"/search?service={}\">{}</a> ",
                palette.colour(s),
                Url(s),
                Esc(s)
            );
        }
        let width = (t.duration_nanos as f64 * 48.0 / longest as f64).max(1.0);
        let _ = write!(
            body,
            "</td><td class=\"num\">{}</td><td class=\"num\"><span class=\"dbar\" style=\"width:{width:.0}px\"></span>{}</td><td>{}</td><td>{}</td></tr>",
            t.span_count,
            html::duration(t.duration_nanos),
            html::timestamp(t.start_unix_nanos),
            integrity_badge(&t.integrity)
        );
    }
    body.push_str("</tbody></table>");
}

/// An error in words: `TypeError: message`, or the message alone.
pub fn error_words(e: &SpanError) -> String {
    match (&e.exception_type, e.message.is_empty()) {
        (Some(t), false) => format!("{t}: {}", e.message),
        (Some(t), true) => t.clone(),
        (None, false) => e.message.clone(),
        (None, true) => "error status without a message".to_owned(),
    }
}
