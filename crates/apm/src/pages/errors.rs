//! The Errors view: a service's errors grouped by exception type and message, with counts and the
//! most recent traces, from the store's error groups.

use std::fmt::Write as _;

use throughline_store::{ErrorQuery, TraceReader};

use crate::error::PageError;
use crate::html::{self, Esc, Nav, Url};
use crate::params::{self, Params};

pub fn page(reader: &dyn TraceReader, params: &Params, now: u64) -> Result<String, PageError> {
    let (start, end) = params::window(params, now)?;
    let service = params.get("service").filter(|s| !s.is_empty());
    let groups = reader.errors(&ErrorQuery {
        service: service.map(str::to_owned),
        start_unix_nanos: start,
        end_unix_nanos: end,
    })?;
    let mut body = String::with_capacity(16 * 1024);
    let _ = write!(
        body,
        "<h1>Errors{}</h1><p class=\"muted\">Error spans from {} to {} UTC, grouped by exception type and message (the status message when the span recorded no exception).</p>",
        service.map_or_else(String::new, |s| format!(" of {}", Esc(s))),
        html::timestamp(start),
        html::timestamp(end)
    );
    if groups.is_empty() {
        body.push_str(
            "<p class=\"muted\" data-testid=\"no-errors\">No error spans in this window.</p>",
        );
        return Ok(html::page("Errors", Nav::Errors, &body));
    }
    body.push_str("<table class=\"errors\" data-testid=\"error-groups\"><thead><tr><th class=\"num\">Count</th><th>Service</th><th>Exception</th><th>Message</th><th>Seen on</th><th>Recent traces</th></tr></thead><tbody>");
    for g in &groups {
        let recent = g
            .recent
            .iter()
            .map(|r| {
                format!(
                    "<a class=\"tid\" href=\"/trace/{t}?span={s}#s-{s}\" title=\"{at} UTC\">{short}</a>",
                    t = r.trace_id,
                    s = r.span_id,
                    at = html::timestamp(r.start_unix_nanos),
                    short = &r.trace_id.to_string()[..8],
                )
            })
            .collect::<Vec<_>>()
            .join(" ");
        let _ = write!(
            body,
            "<tr class=\"err\"><td class=\"num\">{}</td><td><a href=\"/errors?service={}\">{}</a></td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{recent}</td></tr>",
            g.count,
            Url(&g.service),
            Esc(&g.service),
            Esc(g.exception_type.as_deref().unwrap_or("–")),
            Esc(&g.message),
            Esc(&g.span_names.join(", ")),
        );
    }
    body.push_str("</tbody></table>");
    Ok(html::page("Errors", Nav::Errors, &body))
}
