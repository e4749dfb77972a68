//! The services pages: per service (and per operation of one service) rate, errors and
//! p50/p95/p99 over time as small charts, from the store's RED series.

use std::fmt::Write as _;

use throughline_store::database::DEFAULT_SLOW_QUERY_MS;
use throughline_store::{DatabaseQuery, RedPoint, RedScope, TraceReader};

use crate::OtlpEndpoints;
use crate::error::PageError;
use crate::histogram;
use crate::html::{self, Esc, Nav, Url};
use crate::pages::no_data_help;
use crate::params::{self, Params};
use crate::svg::{self, Series};

/// Points per chart: the window is cut into this many buckets.
const BUCKETS: u64 = 60;
/// At most this many services or operations are charted on one page (each costs a store read).
const MAX_ROWS: usize = 50;

fn step(start: u64, end: u64) -> u64 {
    ((end - start) / BUCKETS).max(1_000_000_000)
}

pub fn overview(
    reader: &dyn TraceReader,
    params: &Params,
    now: u64,
    endpoints: &OtlpEndpoints,
) -> Result<String, PageError> {
    let (start, end) = params::window(params, now)?;
    let services = reader.services()?;
    let palette = html::Palette::new(&services);
    let mut body = String::with_capacity(32 * 1024);
    window_intro(&mut body, "Services", start, end);
    if services.is_empty() {
        body.push_str(&no_data_help(endpoints));
        return Ok(html::page("Services", Nav::Services, &body));
    }
    body.push_str(&table_head("Service", true));
    for service in services.iter().take(MAX_ROWS) {
        let points = reader.red_series(service, RedScope::Entry, start, end, step(start, end))?;
        let outgoing: u64 = reader
            .red_series(
                service,
                RedScope::Outgoing,
                start,
                end,
                (end - start).max(1),
            )?
            .iter()
            .map(|p| p.calls)
            .sum();
        let name = format!(
            "<a class=\"svc\" style=\"--c:{}\" href=\"/services/{}\">{}</a><br><a class=\"small\" href=\"/search?service={}\">traces</a>",
            palette.colour(service),
            Url(service),
            Esc(service),
            Url(service)
        );
        row(&mut body, &name, &points, start, end, Some(outgoing));
    }
    body.push_str("</tbody></table>");
    body.push_str("<p class=\"muted\">Calls are the requests a service serves (its SERVER and CONSUMER spans); the calls and messages it sends are counted under Outgoing.</p>");
    if services.len() > MAX_ROWS {
        let _ = write!(
            body,
            "<p class=\"muted\">{} more services not shown.</p>",
            services.len() - MAX_ROWS
        );
    }
    Ok(html::page("Services", Nav::Services, &body))
}

pub fn detail(
    reader: &dyn TraceReader,
    service: &str,
    params: &Params,
    now: u64,
) -> Result<String, PageError> {
    let (start, end) = params::window(params, now)?;
    let services = reader.services()?;
    if !services.iter().any(|s| s == service) {
        return Err(PageError::NotFound(format!(
            "service {service:?} in the store"
        )));
    }
    let mut body = String::with_capacity(32 * 1024);
    let _ = write!(
        body,
        "<p class=\"crumbs\"><a href=\"/services\">Services</a> ›</p>"
    );
    window_intro(&mut body, service, start, end);
    let _ = write!(
        body,
        "<p><a href=\"/search?service={}\">Find traces of {}</a></p>",
        Url(service),
        Esc(service)
    );
    database_time(&mut body, reader, service, start, end)?;
    let all = reader.red_series(service, RedScope::Entry, start, end, step(start, end))?;
    body.push_str(&table_head("Operation", false));
    row(
        &mut body,
        "<strong>requests served</strong>",
        &all,
        start,
        end,
        None,
    );
    let mut operations = reader.operations(service)?;
    operations.sort();
    operations.dedup_by(|a, b| a.name == b.name);
    for op in operations.iter().take(MAX_ROWS) {
        let points = reader.red_series(
            service,
            RedScope::Operation(&op.name),
            start,
            end,
            step(start, end),
        )?;
        let name = format!(
            "<a href=\"/search?service={}&amp;operation={}\">{}</a>",
            Url(service),
            Url(&op.name),
            Esc(&op.name)
        );
        row(&mut body, &name, &points, start, end, None);
    }
    body.push_str("</tbody></table>");
    service_metrics(&mut body, reader, service, start, end)?;
    Ok(html::page(service, Nav::Services, &body))
}

/// The most metric series the service page lists.
const MAX_METRIC_ROWS: usize = 60;

/// The service's own OTLP metrics over the window (its business metrics, such as
/// `onboarding.requests` by `customer.type`): counters with their increase and rate, histograms
/// with their count and percentiles, gauges with their last value; one row per series.
fn service_metrics(
    body: &mut String,
    reader: &dyn TraceReader,
    service: &str,
    start: u64,
    end: u64,
) -> Result<(), PageError> {
    let names = reader.metric_names(Some(service))?;
    if names.is_empty() {
        return Ok(());
    }
    body.push_str(
        "<h2>Metrics</h2><table class=\"grid\" data-testid=\"service-metrics\"><thead><tr><th>Metric</th><th>Attributes</th>\
<th>Total</th><th>Per second</th><th>p50</th><th>p95</th><th>p99</th></tr></thead><tbody>",
    );
    let mut rows = 0;
    for name in &names {
        let series = reader.metric_series(&throughline_store::MetricQuery {
            name: name.clone(),
            service: Some(service.to_owned()),
            attributes: vec![],
            start_unix_nanos: start,
            end_unix_nanos: end,
            step_nanos: 0,
        })?;
        for s in series {
            if rows == MAX_METRIC_ROWS {
                break;
            }
            rows += 1;
            let attrs: Vec<String> = s
                .attributes
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let num = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.3}"));
            let _ = write!(
                body,
                "<tr><td><code>{}</code> <span class=\"muted\">{}</span></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                Esc(&s.name),
                Esc(&s.unit),
                Esc(&attrs.join(", ")),
                num(Some(s.total.value)),
                num(s.total.rate),
                num(s.total.p50),
                num(s.total.p95),
                num(s.total.p99),
            );
        }
    }
    body.push_str("</tbody></table>");
    Ok(())
}

/// The service's time in the database against its time serving requests, with its costliest
/// statements.
fn database_time(
    body: &mut String,
    reader: &dyn TraceReader,
    service: &str,
    start: u64,
    end: u64,
) -> Result<(), PageError> {
    let report = reader.database(&DatabaseQuery {
        service: Some(service.to_owned()),
        start_unix_nanos: start,
        end_unix_nanos: end,
        slow_query_nanos: DEFAULT_SLOW_QUERY_MS * 1_000_000,
        max_scanned_spans: throughline_store::database::MAX_SCANNED_SPANS,
    })?;
    let Some(t) = report.services.iter().find(|s| s.service == service) else {
        return Ok(());
    };
    if t.db_calls == 0 {
        return Ok(());
    }
    let share = if t.entry_nanos == 0 {
        None
    } else {
        Some((t.db_nanos as f64 / t.entry_nanos as f64).min(1.0))
    };
    let _ = write!(
        body,
        "<section class=\"dbtime\" data-testid=\"db-time\"><strong>Time in the database:</strong> {} in {} queries, against {} serving {} requests{} <a href=\"/database?service={}\">Database page</a> · <a href=\"/errors?service={}\">Errors</a>",
        html::duration(t.db_nanos),
        t.db_calls,
        html::duration(t.entry_nanos),
        t.entry_calls,
        match share {
            Some(s) => format!(
                " (<span data-testid=\"db-share\">{:.0}%</span>) <span class=\"track\" aria-hidden=\"true\"><b style=\"width:{:.1}%\"></b></span>",
                s * 100.0,
                s * 100.0
            ),
            None => ".".to_owned(),
        },
        Url(service),
        Url(service),
    );
    if let Some(top) = report.statements.first() {
        let _ = write!(
            body,
            "<br><span class=\"muted\">Costliest statement:</span> <code>{}</code> ({}, {} calls)",
            Esc(&top.statement),
            html::duration(top.total_nanos),
            top.calls
        );
    }
    body.push_str("</section>");
    Ok(())
}

fn window_intro(body: &mut String, title: &str, start: u64, end: u64) {
    let _ = write!(
        body,
        "<h1>{}</h1><p class=\"muted\">From {} to {} UTC, in {}-wide buckets. \
<a href=\"?lookback=15m\">15 min</a> · <a href=\"?lookback=1h\">1 hour</a> · <a href=\"?lookback=6h\">6 hours</a> · <a href=\"?lookback=1d\">1 day</a></p>",
        Esc(title),
        html::timestamp(start),
        html::timestamp(end),
        html::duration(step(start, end))
    );
}

fn table_head(first: &str, outgoing: bool) -> String {
    format!(
        "<table class=\"red\"><thead><tr><th>{first}</th><th class=\"num\">Calls</th><th class=\"num\">Errors</th><th class=\"num\">p95</th>{}\
<th>Rate</th><th>Errors</th><th>Latency</th></tr></thead><tbody>",
        if outgoing {
            "<th class=\"num\">Outgoing</th>"
        } else {
            ""
        }
    )
}

fn row(
    body: &mut String,
    name: &str,
    points: &[RedPoint],
    start: u64,
    end: u64,
    outgoing: Option<u64>,
) {
    let times: Vec<u64> = points.iter().map(|p| p.bucket_start_unix_nanos).collect();
    let step_min = step(start, end) as f64 / 6e10;
    let calls: u64 = points.iter().map(|p| p.calls).sum();
    let errors: u64 = points.iter().map(|p| p.errors).sum();
    let mut all = histogram::empty();
    for p in points {
        histogram::merge(&mut all, &p.latency);
    }
    let rate = Series {
        name: "calls/min",
        colour: "#2f6fdf",
        values: points
            .iter()
            .map(|p| Some(p.calls as f64 / step_min))
            .collect(),
    };
    let err = Series {
        name: "error %",
        colour: "#d0342c",
        values: points
            .iter()
            .map(|p| (p.calls > 0).then(|| p.errors as f64 * 100.0 / p.calls as f64))
            .collect(),
    };
    let q = |name, colour, q| Series {
        name,
        colour,
        values: points
            .iter()
            .map(|p| histogram::quantile_ms(&p.latency, q))
            .collect(),
    };
    let latency = [
        q("p99", "#8a4fd8", 0.99),
        q("p95", "#d9822b", 0.95),
        q("p50", "#2a9d6f", 0.5),
    ];
    let _ = write!(
        body,
        "<tr><th scope=\"row\">{name}</th><td class=\"num\" data-testid=\"calls\">{calls}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>{}<td>{}</td><td>{}</td><td>{}</td></tr>",
        html::percent(errors, calls),
        histogram::quantile_ms(&all, 0.95).map_or_else(|| "–".to_owned(), html::duration_ms),
        outgoing.map_or_else(String::new, |n| format!(
            "<td class=\"num\" data-testid=\"outgoing\">{n}</td>"
        )),
        svg::line_chart("calls/min", &times, &[rate], &|v| if v >= 10.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.1}")
        }),
        svg::line_chart("error %", &times, &[err], &|v| format!("{v:.1}%")),
        svg::line_chart("latency", &times, &latency, &html::duration_ms),
    );
}
