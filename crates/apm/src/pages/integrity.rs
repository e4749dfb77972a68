//! The trace integrity page: the share of whole traces over time, and the broken ones with why.

use std::fmt::Write as _;

use throughline_store::{TraceQuery, TraceReader};

use crate::OtlpEndpoints;
use crate::error::PageError;
use crate::html::{self, Esc, Nav, Url};
use crate::pages::{integrity_badge, no_data_help};
use crate::params::{self, Params};
use crate::svg;

const BUCKETS: u64 = 60;
const BROKEN_LISTED: usize = 50;

pub fn page(
    reader: &dyn TraceReader,
    params: &Params,
    now: u64,
    endpoints: &OtlpEndpoints,
) -> Result<String, PageError> {
    let (start, end) = params::window(params, now)?;
    let step = ((end - start) / BUCKETS).max(1_000_000_000);
    let series = reader.integrity_series(start, end, step)?;
    let (whole, broken, settling) = series.iter().fold((0, 0, 0), |(w, b, s), p| {
        (w + p.whole, b + p.incomplete, s + p.settling)
    });
    let services = reader.services()?;
    let palette = html::Palette::new(&services);
    let mut body = String::with_capacity(16 * 1024);
    let _ = write!(
        body,
        "<h1>Trace integrity</h1><p class=\"muted\">From {} to {} UTC. A trace is whole when its root span arrived and every span's parent did; \
a young trace is settling while its spans may still arrive. \
<a href=\"?lookback=1h\">1 hour</a> · <a href=\"?lookback=6h\">6 hours</a> · <a href=\"?lookback=1d\">1 day</a> · <a href=\"?lookback=7d\">7 days</a></p>",
        html::timestamp(start),
        html::timestamp(end)
    );
    if whole + broken + settling == 0 && services.is_empty() {
        body.push_str(&no_data_help(endpoints));
        return Ok(html::page("Trace integrity", Nav::Integrity, &body));
    }
    let _ = write!(
        body,
        "<dl class=\"facts big\"><div><dt>Whole</dt><dd data-testid=\"whole-share\">{}</dd></div><div><dt>Whole traces</dt><dd>{whole}</dd></div>\
<div><dt>Incomplete</dt><dd>{broken}</dd></div><div><dt>Settling</dt><dd>{settling}</dd></div></dl>",
        html::percent(whole, whole + broken)
    );
    let buckets: Vec<(u64, u64, u64, u64)> = series
        .iter()
        .map(|p| (p.bucket_start_unix_nanos, p.whole, p.incomplete, p.settling))
        .collect();
    body.push_str(&svg::share_chart(
        "Whole (green), incomplete (red), settling (grey) per bucket",
        &buckets,
    ));

    let broken_traces = reader.find_traces(&TraceQuery {
        start_unix_nanos: start,
        end_unix_nanos: end,
        incomplete_only: true,
        limit: BROKEN_LISTED,
        ..TraceQuery::default()
    })?;
    body.push_str("<h2>Incomplete traces</h2>");
    if broken_traces.is_empty() {
        body.push_str("<p class=\"empty\" data-testid=\"no-broken\">None in this window: every trace arrived whole.</p>");
    } else {
        body.push_str("<table class=\"results\"><thead><tr><th>Trace</th><th>Services</th><th class=\"num\">Spans</th><th>Started (UTC)</th><th>Why</th></tr></thead><tbody>");
        for t in &broken_traces {
            let _ = write!(
                body,
                "<tr><td><a class=\"tid\" href=\"/trace/{}\">{}</a></td><td>",
                t.trace_id, t.trace_id
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
            let _ = write!(
                body,
                "</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
                t.span_count,
                html::timestamp(t.start_unix_nanos),
                integrity_badge(&t.integrity)
            );
        }
        body.push_str("</tbody></table>");
        if broken_traces.len() == BROKEN_LISTED {
            let _ = write!(
                body,
                "<p><a href=\"/search?incompleteOnly=true&amp;limit=1000&amp;start={}&amp;end={}\">All incomplete traces in this window</a></p>",
                start / 1000,
                end / 1000
            );
        }
    }
    Ok(html::page("Trace integrity", Nav::Integrity, &body))
}
