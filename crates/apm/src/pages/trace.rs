//! The trace page: a waterfall (service colours, depth, time axis, errors, queue time) and the
//! selected span's detail, each span's log records under its row and in its detail, and the
//! trace's logs as one list. Rows are plain HTML with positioned bars so that a 10k-span trace stays
//! one linear pass and light to render; deep subtrees of big traces start collapsed.

use std::collections::HashMap;
use std::fmt::Write as _;

use throughline_store::{
    Finding, FindingQuery, SpanId, StoredLog, TraceId, TraceReader, error_spans,
};

use crate::error::PageError;
use crate::html::{self, Esc, Nav};
use crate::pages::search::error_words;
use crate::pages::trace_tree::{TraceTree, is_error, queue_text};
use crate::pages::{findings, logs, span_detail};
use crate::params::Params;

/// Traces with more spans than this start with subtrees below [`COLLAPSE_DEPTH`] collapsed.
pub const COLLAPSE_ABOVE_SPANS: usize = 500;
const COLLAPSE_DEPTH: usize = 2;

pub fn page(reader: &dyn TraceReader, id: TraceId, params: &Params) -> Result<String, PageError> {
    let spans = reader.trace(id)?;
    if spans.is_empty() {
        return Err(PageError::TraceNotFound(id));
    }
    let selected = match params.get("span") {
        Some(v) => {
            let sid: SpanId = crate::params::span_id("span", v)?;
            let found = spans
                .iter()
                .position(|s| s.span.span_id.as_slice() == sid.0.as_slice());
            Some(found.ok_or_else(|| PageError::NotFound(format!("span {sid} in trace {id}")))?)
        }
        None => None,
    };
    let tree = TraceTree::new(&spans);
    let palette = html::Palette::new(&reader.services()?);
    let found = reader.findings(&FindingQuery {
        trace_id: Some(id),
        end_unix_nanos: u64::MAX,
        ..FindingQuery::default()
    })?;
    let marks = Marks::new(&tree, &found);
    let trace_logs = logs::of_trace(reader, id)?;
    let mut span_logs: HashMap<usize, Vec<&StoredLog>> = HashMap::new();
    for log in &trace_logs {
        if let Some(i) = log.span_id().and_then(|s| tree.find(&s.0)) {
            span_logs.entry(i).or_default().push(log);
        }
    }
    let mut body = String::with_capacity(spans.len() * 320 + trace_logs.len() * 300 + 8192);
    header(&mut body, &tree, id, &palette, trace_logs.len());
    findings_and_errors(&mut body, &tree, &marks);
    body.push_str(
        "<div class=\"trace-layout\"><section class=\"waterfall\" aria-label=\"waterfall\">",
    );
    waterfall(&mut body, &tree, selected, &palette, &marks, &span_logs);
    body.push_str("</section>");
    if let Some(i) = selected {
        body.push_str(
            "<aside class=\"detail\" aria-label=\"span detail\" data-testid=\"span-detail\">",
        );
        span_detail::render(&mut body, reader, &tree, i, &palette);
        selected_span_logs(
            &mut body,
            &tree,
            span_logs.get(&i).map_or(&[][..], Vec::as_slice),
        );
        body.push_str("</aside>");
    }
    body.push_str("</div>");
    trace_log_list(&mut body, &tree, &trace_logs);
    Ok(html::page(
        &format!("Trace {}", &id.to_string()[..8]),
        Nav::Trace,
        &body,
    ))
}

fn header(
    body: &mut String,
    tree: &TraceTree<'_>,
    id: TraceId,
    palette: &html::Palette,
    log_count: usize,
) {
    let root = tree.order.first().map(|p| &tree.spans[p.index]);
    let mut services: Vec<&str> = Vec::new();
    for p in &tree.order {
        let s = tree.spans[p.index].service_name.as_str();
        if !services.contains(&s) {
            services.push(s);
        }
    }
    let orphans = tree.order.iter().filter(|p| p.orphan).count();
    let errors = tree.spans.iter().filter(|s| is_error(s)).count();
    let _ = write!(
        body,
        "<h1 class=\"trace-title\">{} <span class=\"muted\">{}</span></h1><p class=\"trace-id\">Trace <code data-testid=\"trace-id\">{id}</code></p><dl class=\"facts\">",
        Esc(root.map_or("", |r| r.service_name.as_str())),
        Esc(root.map_or("", |r| r.span.name.as_str())),
    );
    let _ = write!(body, "<div><dt>Services</dt><dd>");
    for s in &services {
        let _ = write!(
            body,
            "<span class=\"svc\" style=\"--c:{}\">{}</span> ",
            palette.colour(s),
            Esc(s)
        );
    }
    let _ = write!(
        body,
        "</dd></div><div><dt>Spans</dt><dd>{}</dd></div><div><dt>Duration</dt><dd>{}</dd></div><div><dt>Started</dt><dd>{} UTC</dd></div><div><dt>Errors</dt><dd>{}</dd></div><div><dt>Logs</dt><dd>{}</dd></div><div><dt>Integrity</dt><dd>{}</dd></div></dl>",
        tree.spans.len(),
        html::duration(tree.end_unix_nanos - tree.start_unix_nanos),
        html::timestamp(tree.start_unix_nanos),
        if errors == 0 {
            "none".to_owned()
        } else {
            format!("<span class=\"errmark\">{errors}</span>")
        },
        if log_count == 0 {
            "none".to_owned()
        } else {
            format!("<a href=\"#logs\">{log_count}</a>")
        },
        if tree.order.iter().any(|p| p.depth == 0 && !p.orphan) && orphans == 0 {
            "<span class=\"badge whole\">whole</span>".to_owned()
        } else if orphans > 0 {
            format!(
                "<span class=\"badge broken\">incomplete</span> {orphans} span{} whose parent did not arrive",
                if orphans == 1 { "" } else { "s" }
            )
        } else {
            "<span class=\"badge broken\">incomplete</span> missing root span".to_owned()
        }
    );
}

/// The trace's findings in words, and which waterfall rows each marks.
struct Marks<'f> {
    /// Each finding with its sentence.
    findings: Vec<(&'f Finding, String)>,
    /// Span index → (finding number, whether it is the run's first span).
    by_span: HashMap<usize, (usize, bool)>,
}

impl<'f> Marks<'f> {
    fn new(tree: &TraceTree<'_>, found: &'f [Finding]) -> Self {
        let mut by_span = HashMap::new();
        let findings = found
            .iter()
            .enumerate()
            .map(|(n, f)| {
                for (k, sid) in f.span_ids.iter().enumerate() {
                    if let Some(i) = tree.find(&sid.0) {
                        by_span.insert(i, (n, k == 0));
                    }
                }
                let parent = tree
                    .find(&f.parent_span_id.0)
                    .map(|p| tree.spans[p].span.name.as_str());
                (f, findings::sentence(f, parent))
            })
            .collect();
        Self { findings, by_span }
    }
}

/// The header's lists: what the detector found, and every error span with what went wrong.
fn findings_and_errors(body: &mut String, tree: &TraceTree<'_>, marks: &Marks<'_>) {
    if !marks.findings.is_empty() {
        let all: Vec<&Finding> = marks.findings.iter().map(|(f, _)| *f).collect();
        let _ = write!(
            body,
            "<section class=\"findings-box\" data-testid=\"trace-findings\"><h2>Found in this trace {}</h2><ul>",
            findings::badges(&all)
        );
        for (f, text) in &marks.findings {
            let first = f
                .span_ids
                .first()
                .map(ToString::to_string)
                .unwrap_or_default();
            let _ = write!(
                body,
                "<li><a href=\"?span={first}#s-{first}\">{}</a> <span class=\"muted\">({})</span></li>",
                Esc(text),
                Esc(&f.service)
            );
        }
        body.push_str("</ul></section>");
    }
    let errors = error_spans(tree.spans);
    if errors.is_empty() {
        return;
    }
    body.push_str("<section class=\"errors-box\" data-testid=\"trace-errors\"><h2>Errors</h2><ul>");
    for e in &errors {
        let _ = write!(
            body,
            "<li><a href=\"?span={sid}#s-{sid}\"><i>{}</i> {}</a>: <span class=\"errmsg\">{}</span>{}</li>",
            Esc(&e.service),
            Esc(&e.span_name),
            Esc(&error_words(&e.error)),
            // The status message too, when it says something the exception does not.
            if e.error.status_message.is_empty() || e.error.status_message == e.error.message {
                String::new()
            } else {
                format!(
                    " <span class=\"muted\">(status: {})</span>",
                    Esc(&e.error.status_message)
                )
            },
            sid = e.span_id,
        );
    }
    body.push_str("</ul></section>");
}

fn waterfall(
    body: &mut String,
    tree: &TraceTree<'_>,
    selected: Option<usize>,
    palette: &html::Palette,
    marks: &Marks<'_>,
    span_logs: &HashMap<usize, Vec<&StoredLog>>,
) {
    let total = (tree.end_unix_nanos - tree.start_unix_nanos).max(1) as f64;
    let big = tree.spans.len() > COLLAPSE_ABOVE_SPANS;
    // One class per service keeps each row's markup short.
    let mut service_class: HashMap<&str, usize> = HashMap::new();
    body.push_str("<style>");
    for p in &tree.order {
        let s = tree.spans[p.index].service_name.as_str();
        if !service_class.contains_key(s) {
            let n = service_class.len();
            service_class.insert(s, n);
            let _ = write!(body, ".c{n}{{--c:{}}}", palette.colour(s));
        }
    }
    body.push_str("</style>");
    // The selected span's ancestors stay open even in a big trace.
    let mut open = vec![false; tree.spans.len()];
    let mut cursor = selected;
    while let Some(i) = cursor {
        open[i] = true;
        cursor = tree.parent[i];
    }
    let _ = write!(
        body,
        "<div class=\"wf-tools\"><button type=\"button\" data-action=\"expand-all\">Expand all</button>\
<button type=\"button\" data-action=\"collapse-all\">Collapse all</button>{}</div>\
<div class=\"wf-head\"><span class=\"l\">Service · operation</span><svg class=\"axis\" viewBox=\"0 0 1000 20\" preserveAspectRatio=\"none\" aria-hidden=\"true\">",
        if big {
            format!(
                "<span class=\"muted\">{} spans: subtrees below depth {COLLAPSE_DEPTH} start collapsed</span>",
                tree.spans.len()
            )
        } else {
            String::new()
        }
    );
    for tick in 0..=4 {
        let x = tick as f64 * 250.0;
        let _ = write!(body, "<line x1=\"{x}\" y1=\"12\" x2=\"{x}\" y2=\"20\"/>");
    }
    body.push_str("</svg><span class=\"ticks\">");
    for tick in 0..=4 {
        let _ = write!(
            body,
            "<span>{}</span>",
            html::duration((total * tick as f64 / 4.0) as u64)
        );
    }
    body.push_str("</span></div><div class=\"rows\" role=\"tree\">");
    // hidden_below[d]: rows deeper than d are hidden because the row at depth d is collapsed.
    let mut hidden_from: Option<usize> = None;
    for p in &tree.order {
        let i = p.index;
        let s = &tree.spans[i];
        if hidden_from.is_some_and(|d| p.depth <= d) {
            hidden_from = None;
        }
        let hidden = hidden_from.is_some();
        let collapsed = big && p.child_count > 0 && p.depth >= COLLAPSE_DEPTH && !open[i];
        if collapsed && hidden_from.is_none() {
            hidden_from = Some(p.depth);
        }
        let sid = SpanId::from_slice(&s.span.span_id)
            .map(|x| x.to_string())
            .unwrap_or_default();
        let start = s
            .span
            .start_time_unix_nano
            .saturating_sub(tree.start_unix_nanos) as f64;
        let dur = s
            .span
            .end_time_unix_nano
            .saturating_sub(s.span.start_time_unix_nano);
        let err = is_error(s);
        let _ = write!(
            body,
            "<div class=\"r c{}{}{}{}{}\" id=\"s-{sid}\" data-d=\"{}\" role=\"treeitem\" aria-level=\"{}\"{}>",
            service_class
                .get(s.service_name.as_str())
                .copied()
                .unwrap_or(0),
            if err { " e" } else { "" },
            if marks.by_span.contains_key(&i) {
                " f"
            } else {
                ""
            },
            if hidden { " h" } else { "" },
            if Some(i) == selected { " sel" } else { "" },
            p.depth,
            p.depth + 1,
            if p.child_count > 0 {
                format!(" aria-expanded=\"{}\"", !collapsed)
            } else {
                String::new()
            },
        );
        let _ = write!(body, "<span class=\"l\" style=\"--d:{}\">", p.depth.min(40));
        if p.child_count > 0 {
            let _ = write!(
                body,
                "<button type=\"button\" class=\"t\" aria-label=\"{} {} child spans\">{}</button>",
                if collapsed { "expand" } else { "collapse" },
                p.child_count,
                if collapsed { "▸" } else { "▾" }
            );
        } else {
            body.push_str("<span class=\"t\"></span>");
        }
        let _ = write!(
            body,
            "<a href=\"?span={sid}#s-{sid}\"><i>{}</i> {}</a>",
            Esc(&s.service_name),
            Esc(&s.span.name)
        );
        if err {
            body.push_str(" <span class=\"errmark\">error</span>");
            if let Some(e) = throughline_store::span_error(&s.span) {
                let _ = write!(
                    body,
                    " <span class=\"errmsg\" data-testid=\"row-error\">{}</span>",
                    Esc(&error_words(&e))
                );
            }
        }
        if let Some(&(n, first)) = marks.by_span.get(&i) {
            let (f, text) = &marks.findings[n];
            let _ = write!(
                body,
                " <span class=\"fmark\" title=\"{}\">{}</span>",
                Esc(text),
                Esc(findings::kind_label(f.kind))
            );
            if first {
                let _ = write!(
                    body,
                    " <span class=\"finding-note\" data-testid=\"finding-note\">{}</span>",
                    Esc(text)
                );
            }
        }
        if p.orphan {
            body.push_str(" <span class=\"badge broken\" title=\"its parent span did not arrive\">orphan</span>");
        }
        let own_logs = span_logs.get(&i).map_or(&[][..], Vec::as_slice);
        if !own_logs.is_empty() {
            let _ = write!(
                body,
                " <a class=\"logmark\" href=\"?span={sid}#span-logs\" data-testid=\"row-logs\">{} log{}</a>",
                own_logs.len(),
                if own_logs.len() == 1 { "" } else { "s" }
            );
        }
        body.push_str("</span><span class=\"b\">");
        // Queue time: a dotted stretch from the producer's end to this consumer's start, with
        // its figure over it (in the bar column, where the eye follows the time).
        if let Some((producer, wait)) = tree.queue_time(i) {
            let pend = tree.spans[producer]
                .span
                .end_time_unix_nano
                .saturating_sub(tree.start_unix_nanos) as f64
                * 100.0
                / total;
            if wait > 0 {
                let _ = write!(
                    body,
                    "<s style=\"left:{pend:.3}%;width:{:.3}%\" title=\"in the queue\"></s>",
                    wait as f64 * 100.0 / total
                );
            }
            let _ = write!(
                body,
                "<span class=\"queue\" style=\"left:{:.3}%\" data-testid=\"queue-time\">queued {}</span>",
                pend.min(60.0),
                Esc(&queue_text(wait))
            );
        }
        let left = start * 100.0 / total;
        let width = (dur as f64 * 100.0 / total).max(0.15);
        // The duration sits right of the bar, or left of it when the bar ends near the edge.
        let label = if left + width > 80.0 {
            format!(
                "<em class=\"before\" style=\"right:{:.3}%\">{}</em>",
                100.0 - left,
                html::duration(dur)
            )
        } else {
            format!(
                "<em style=\"left:{:.3}%\">{}</em>",
                left + width,
                html::duration(dur)
            )
        };
        let _ = write!(
            body,
            "<b style=\"left:{left:.3}%;width:{width:.3}%\"></b>{label}</span></div>"
        );
        // The span's first log records under it, one level deeper, so that they fold with it.
        let log_hidden = hidden || collapsed;
        for log in own_logs.iter().take(ROW_LOGS) {
            let at =
                log.time_unix_nanos.saturating_sub(tree.start_unix_nanos) as f64 * 100.0 / total;
            let _ = write!(
                body,
                "<div class=\"r lg{}\" data-d=\"{}\" data-testid=\"waterfall-log\"><span class=\"l\" style=\"--d:{}\"><span class=\"t\"></span>{} {}</span><span class=\"b\"><i class=\"lgdot\" style=\"left:{:.3}%\" title=\"+{}\"></i></span></div>",
                if log_hidden { " h" } else { "" },
                p.depth + 1,
                (p.depth + 1).min(40),
                logs::severity_badge(log),
                logs::body_and_attributes(log),
                at.clamp(0.0, 100.0),
                html::duration(log.time_unix_nanos.saturating_sub(tree.start_unix_nanos)),
            );
        }
        if own_logs.len() > ROW_LOGS {
            let _ = write!(
                body,
                "<div class=\"r lg{}\" data-d=\"{}\"><span class=\"l\" style=\"--d:{}\"><span class=\"t\"></span><a href=\"?span={sid}#span-logs\">{} more log records</a></span><span class=\"b\"></span></div>",
                if log_hidden { " h" } else { "" },
                p.depth + 1,
                (p.depth + 1).min(40),
                own_logs.len() - ROW_LOGS,
            );
        }
    }
    body.push_str("</div>");
}

/// Log records shown under a span's row in the waterfall; the rest are in its detail.
const ROW_LOGS: usize = 3;

/// The selected span's log records, in its detail.
fn selected_span_logs(body: &mut String, tree: &TraceTree<'_>, own: &[&StoredLog]) {
    let _ = write!(
        body,
        "<section id=\"span-logs\" data-testid=\"span-logs\"><h3>Logs of this span ({})</h3>",
        own.len()
    );
    if own.is_empty() {
        body.push_str("<p class=\"muted\">No log records carry this span's id.</p></section>");
        return;
    }
    body.push_str("<ul class=\"loglist\">");
    for log in own {
        let _ = write!(
            body,
            "<li><span class=\"muted\">+{}</span> {} {}</li>",
            html::duration(log.time_unix_nanos.saturating_sub(tree.start_unix_nanos)),
            logs::severity_badge(log),
            logs::body_and_attributes(log)
        );
    }
    body.push_str("</ul></section>");
}

/// Every log record of the trace as one list, each linking to its span.
fn trace_log_list(body: &mut String, tree: &TraceTree<'_>, all: &[StoredLog]) {
    let _ = write!(
        body,
        "<section class=\"trace-logs\" id=\"logs\" data-testid=\"trace-logs\"><h2>Logs of this trace ({})</h2>",
        all.len()
    );
    if all.is_empty() {
        body.push_str("<p class=\"muted\">No log records carry this trace's id.</p></section>");
        return;
    }
    body.push_str("<table class=\"logs\"><thead><tr><th>At</th><th>Service</th><th>Severity</th><th>Message</th><th>Span</th></tr></thead><tbody>");
    for log in all {
        let span = match log.span_id() {
            Some(sid) => match tree.find(&sid.0) {
                Some(i) => format!(
                    "<a href=\"?span={sid}#span-logs\" data-testid=\"log-span\">{}</a>",
                    Esc(&tree.spans[i].span.name)
                ),
                None => {
                    format!("<code>{sid}</code> <span class=\"muted\">(not in this trace)</span>")
                }
            },
            None => "<span class=\"muted\">–</span>".to_owned(),
        };
        let _ = write!(
            body,
            "<tr><td class=\"nowrap\">+{}</td><td>{}</td><td>{}</td><td>{}</td><td>{span}</td></tr>",
            html::duration(log.time_unix_nanos.saturating_sub(tree.start_unix_nanos)),
            Esc(&log.service_name),
            logs::severity_badge(log),
            logs::body_and_attributes(log),
        );
    }
    body.push_str("</tbody></table></section>");
}
