//! The Database page: statement classes ranked by total time, the patterns found (N+1 queries
//! and their kin) with how many traces show each, slow queries with their own attributes, and
//! connection-pool pressure, for one service or all, from the store's database report.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use throughline_store::database::{DEFAULT_SLOW_QUERY_MS, SpanRef};
use throughline_store::{DatabaseQuery, Finding, FindingQuery, TraceReader};

use crate::error::PageError;
use crate::html::{self, Esc, Nav, Url};
use crate::pages::findings::{kind_label, short_statement};
use crate::params::{self, Params};

/// Rows of the statement table shown (the report ranks them; the rest are summed).
const MAX_STATEMENTS: usize = 200;
/// Attributes a slow query shows beside its statement, when it has them (the seed's).
const NOTABLE_ATTRIBUTES: &[&str] = &[
    "db.slow_query",
    "db.missing_index",
    "db.full_table_scan",
    "db.rows_scanned",
];

fn span_link(r: &SpanRef, label: &str) -> String {
    format!(
        "<a href=\"/trace/{t}?span={s}#s-{s}\" title=\"{d} at {at} UTC\">{label}</a>",
        t = r.trace_id,
        s = r.span_id,
        d = html::duration(r.duration_nanos),
        at = html::timestamp(r.start_unix_nanos),
    )
}

fn ms(nanos: u64) -> String {
    html::duration(nanos)
}

pub fn page(reader: &dyn TraceReader, params: &Params, now: u64) -> Result<String, PageError> {
    let (start, end) = params::window(params, now)?;
    let service = params.get("service").filter(|s| !s.is_empty());
    let slow_ms = match params.get("slowQueryMs") {
        Some(v) => params::unsigned("slowQueryMs", v)?,
        None => DEFAULT_SLOW_QUERY_MS,
    };
    let report = reader.database(&DatabaseQuery {
        service: service.map(str::to_owned),
        start_unix_nanos: start,
        end_unix_nanos: end,
        slow_query_nanos: slow_ms.saturating_mul(1_000_000),
        max_scanned_spans: throughline_store::database::MAX_SCANNED_SPANS,
    })?;
    let findings = reader.findings(&FindingQuery {
        service: service.map(str::to_owned),
        start_unix_nanos: start,
        end_unix_nanos: end,
        ..FindingQuery::default()
    })?;
    let services = reader.services()?;
    let mut body = String::with_capacity(32 * 1024);
    let _ = write!(
        body,
        "<h1>Database</h1><p class=\"muted\">Queries from {} to {} UTC, read from the database spans (<code>db.query.text</code> or <code>db.statement</code>, else the span name) with literals, numbers, <code>IN</code> lists and placeholders folded to <code>?</code>.</p>",
        html::timestamp(start),
        html::timestamp(end)
    );
    body.push_str("<form class=\"search\" method=\"get\" action=\"/database\"><label>Service<select name=\"service\"><option value=\"\">any</option>");
    for s in &services {
        let sel = if Some(s.as_str()) == service {
            " selected"
        } else {
            ""
        };
        let _ = write!(body, "<option{sel}>{}</option>", Esc(s));
    }
    let _ = write!(
        body,
        "</select></label><label>Window<input name=\"lookback\" value=\"{}\" size=\"6\"></label><label>Slow query threshold (ms)<input name=\"slowQueryMs\" type=\"number\" min=\"0\" value=\"{slow_ms}\"></label><button type=\"submit\">Show</button></form>",
        Esc(params.get("lookback").unwrap_or("1h"))
    );
    if report.truncated {
        let _ = write!(
            body,
            "<p class=\"muted\" data-testid=\"truncated\">This window holds more than {} spans: the figures below are of its most recent {}. Narrow the window or pick a service for all of it.</p>",
            throughline_store::database::MAX_SCANNED_SPANS,
            throughline_store::database::MAX_SCANNED_SPANS
        );
    }
    findings_section(&mut body, &findings);
    statements_section(&mut body, &report.statements);
    slow_section(&mut body, &report.slow_queries, slow_ms);
    pools_section(&mut body, &report.pools);
    Ok(html::page("Database", Nav::Database, &body))
}

fn findings_section(body: &mut String, findings: &[Finding]) {
    body.push_str("<h2>Patterns found</h2>");
    if findings.is_empty() {
        body.push_str("<p class=\"muted\" data-testid=\"no-findings\">No N+1 queries, repeated HTTP calls or unbatched sends in this window (5 or more in a row under one parent, 50 ms or more together).</p>");
        return;
    }
    // One row per (kind, service, statement): how many traces show it, the latest of them.
    let mut groups: BTreeMap<(&str, &str, &str), Vec<&Finding>> = BTreeMap::new();
    for f in findings {
        groups
            .entry((f.kind.as_str(), &f.service, &f.statement))
            .or_default()
            .push(f);
    }
    body.push_str("<table class=\"findings\" data-testid=\"findings\"><thead><tr><th>Pattern</th><th>Service</th><th>Statement or call</th><th class=\"num\">Traces</th><th class=\"num\">Repeats (max)</th><th class=\"num\">Time (max)</th><th>Latest</th></tr></thead><tbody>");
    for ((_, service, statement), list) in &groups {
        let traces = {
            let mut ids: Vec<_> = list.iter().map(|f| f.trace_id).collect();
            ids.sort();
            ids.dedup();
            ids.len()
        };
        let max_count = list.iter().map(|f| f.count).max().unwrap_or(0);
        let max_time = list.iter().map(|f| f.duration_nanos).max().unwrap_or(0);
        // Findings are listed most recent first.
        let latest = list[0];
        let first_span = latest
            .span_ids
            .first()
            .map(ToString::to_string)
            .unwrap_or_default();
        let _ = write!(
            body,
            "<tr><td><span class=\"badge finding\">{}</span></td><td>{}</td><td><code>{}</code></td><td class=\"num\">{traces}</td><td class=\"num\">{max_count}</td><td class=\"num\">{}</td><td><a href=\"/trace/{}?span={first_span}#s-{first_span}\">trace</a></td></tr>",
            Esc(kind_label(latest.kind)),
            Esc(service),
            Esc(&short_statement(statement)),
            ms(max_time),
            latest.trace_id,
        );
    }
    body.push_str("</tbody></table>");
}

fn statements_section(
    body: &mut String,
    statements: &[throughline_store::database::StatementClass],
) {
    body.push_str("<h2>Statements by total time</h2>");
    if statements.is_empty() {
        body.push_str("<p class=\"muted\" data-testid=\"no-statements\">No database spans in this window. Spans with <code>db.system.name</code> (or <code>db.system</code>) show here.</p>");
        return;
    }
    body.push_str("<table class=\"statements\" data-testid=\"statements\"><thead><tr><th>Statement</th><th>Database</th><th class=\"num\">Total</th><th class=\"num\">Share</th><th class=\"num\">Calls</th><th class=\"num\">Calls/min</th><th class=\"num\">Errors</th><th class=\"num\">p50</th><th class=\"num\">p95</th><th class=\"num\">p99</th><th>Callers</th><th>Tables</th><th>Spans</th></tr></thead><tbody>");
    for c in statements.iter().take(MAX_STATEMENTS) {
        let callers = c
            .callers
            .iter()
            .map(|s| format!("<a href=\"/database?service={}\">{}</a>", Url(s), Esc(s)))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = write!(
            body,
            "<tr{}><td><code>{}</code></td><td>{} <span class=\"muted\">{}</span></td><td class=\"num\">{}</td><td class=\"num\">{:.0}%</td><td class=\"num\">{}</td><td class=\"num\">{:.1}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{callers}</td><td>{}</td><td>{} · {}</td></tr>",
            if c.errors > 0 { " class=\"err\"" } else { "" },
            Esc(&c.statement),
            Esc(&c.database),
            Esc(&c.db_system),
            ms(c.total_nanos),
            c.share_of_service_db_time * 100.0,
            c.calls,
            c.calls_per_minute,
            c.errors,
            ms(c.p50_nanos),
            ms(c.p95_nanos),
            ms(c.p99_nanos),
            Esc(&c.tables.join(", ")),
            span_link(&c.slowest, "slowest"),
            span_link(&c.most_recent, "latest"),
        );
    }
    body.push_str("</tbody></table>");
    if statements.len() > MAX_STATEMENTS {
        let _ = write!(
            body,
            "<p class=\"muted\">{} more statement classes not shown.</p>",
            statements.len() - MAX_STATEMENTS
        );
    }
}

fn slow_section(body: &mut String, slow: &[throughline_store::database::SlowQuery], slow_ms: u64) {
    let _ = write!(
        body,
        "<h2>Slow queries</h2><p class=\"muted\">{slow_ms} ms or longer, or marked <code>db.slow_query</code> by the application; slowest first.</p>"
    );
    if slow.is_empty() {
        body.push_str(
            "<p class=\"muted\" data-testid=\"no-slow-queries\">None in this window.</p>",
        );
        return;
    }
    body.push_str("<table class=\"slow\" data-testid=\"slow-queries\"><thead><tr><th class=\"num\">Duration</th><th>Statement</th><th>Service</th><th>What the span says</th><th>Span</th></tr></thead><tbody>");
    for q in slow {
        let notable = NOTABLE_ATTRIBUTES
            .iter()
            .filter_map(|k| {
                let (_, v) = q.attributes.iter().find(|(key, _)| key == k)?;
                Some(format!("<code>{}={}</code>", Esc(k), Esc(v)))
            })
            .collect::<Vec<_>>()
            .join(" ");
        let _ = write!(
            body,
            "<tr{}><td class=\"num\">{}</td><td><code>{}</code></td><td>{}</td><td>{notable}{}</td><td>{}</td></tr>",
            if q.error { " class=\"err\"" } else { "" },
            ms(q.span.duration_nanos),
            Esc(&q.statement),
            Esc(&q.service),
            if q.error {
                " <span class=\"errmark\">error</span>"
            } else {
                ""
            },
            span_link(&q.span, "open"),
        );
    }
    body.push_str("</tbody></table>");
}

fn pools_section(body: &mut String, pools: &[throughline_store::database::PoolPressure]) {
    body.push_str("<h2>Connection pools</h2>");
    if pools.is_empty() {
        body.push_str("<p class=\"muted\" data-testid=\"no-pools\">No span carries <code>db.connection.pool.*</code> attributes and no <code>db.client.connection.*</code> metrics arrived in this window.</p>");
        return;
    }
    body.push_str("<table class=\"pools\" data-testid=\"pools\"><thead><tr><th>Service</th><th>Database</th><th class=\"num\">Spans</th><th class=\"num\">Pool exhausted</th><th class=\"num\">Pool size</th><th class=\"num\">Longest wait</th><th>Latest exhaustion</th><th>Metrics (<code>db.client.connection.*</code>)</th></tr></thead><tbody>");
    for p in pools {
        let _ = write!(
            body,
            "<tr{}><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
            if p.exhausted > 0 || p.metrics.as_ref().is_some_and(|m| m.points_at_limit > 0) {
                " class=\"err\""
            } else {
                ""
            },
            Esc(&p.service),
            Esc(&p.database),
            p.spans,
            p.exhausted,
            p.max_pool_size
                .map_or_else(|| "–".to_owned(), |n| n.to_string()),
            p.max_wait_ms
                .map_or_else(|| "–".to_owned(), html::duration_ms),
            p.last_exhausted
                .as_ref()
                .map_or_else(String::new, |r| span_link(r, "open")),
            p.metrics.as_ref().map_or_else(String::new, |m| {
                let n = |v: Option<i64>| v.map_or_else(|| "–".to_owned(), |v| v.to_string());
                format!(
                    "in use up to {} of {}, up to {} waiting, {} timeouts; at the limit {} time{}",
                    n(m.max_in_use),
                    n(m.limit),
                    n(m.max_pending_requests),
                    n(m.timeouts),
                    m.points_at_limit,
                    if m.points_at_limit == 1 { "" } else { "s" }
                )
            }),
        );
    }
    body.push_str("</tbody></table>");
}
