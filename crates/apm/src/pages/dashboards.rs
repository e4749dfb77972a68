//! `/dashboards` and `/dashboards/{system}`: per reference system, what seed 000's "Lambda
//! Onboarding Service" dashboard showed from CloudWatch, from the stand-ins' OTLP metrics:
//! invocations, errors, duration percentiles and cold starts per function; queue depth, oldest
//! message age and dead letters per queue; end-to-end success (whole traces, and accepted
//! requests that completed). Every chart is one metric query over the window of the URL.

use std::fmt::Write as _;

use throughline_store::{MetricQuery, MetricSeries, TraceReader};

use crate::error::PageError;
use crate::html::{self, Esc, Nav, Url};
use crate::params::{self, Params};
use crate::svg::{self, Series};

const BUCKETS: u64 = 60;

/// One system's dashboard: which functions and queues it shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dashboard {
    /// The system's name, the `{system}` of the URL.
    pub system: String,
    pub title: String,
    /// Lambda functions (`faas.name`).
    pub functions: Vec<String>,
    /// Queues (`messaging.destination.name`); dead-letter queues among them are shown as such.
    pub queues: Vec<String>,
    pub dead_letter_queues: Vec<String>,
    /// Counters of accepted and of completed requests, for the end-to-end completion share.
    pub completion: Option<(String, String)>,
}

fn step(start: u64, end: u64) -> u64 {
    ((end - start) / BUCKETS).max(1_000_000_000)
}

pub fn list(dashboards: &[Dashboard]) -> String {
    let mut body = String::from("<h1>Dashboards</h1><ul class=\"dashboards\">");
    for d in dashboards {
        let _ = write!(
            body,
            "<li><a href=\"/dashboards/{}\">{}</a> <span class=\"muted\">{} functions, {} queues</span></li>",
            Url(&d.system),
            Esc(&d.title),
            d.functions.len(),
            d.queues.len()
        );
    }
    if dashboards.is_empty() {
        body.push_str("<li>No reference system is known to this collector.</li>");
    }
    body.push_str("</ul>");
    html::page("Dashboards", Nav::None, &body)
}

struct Window {
    start: u64,
    end: u64,
    step: u64,
}

impl Window {
    fn times(&self) -> Vec<u64> {
        (0..(self.end - self.start).div_ceil(self.step))
            .map(|i| self.start + i * self.step)
            .collect()
    }

    fn query(&self, name: &str, attr: (&str, &str)) -> MetricQuery {
        MetricQuery {
            name: name.to_owned(),
            service: None,
            attributes: vec![(attr.0.to_owned(), attr.1.to_owned())],
            start_unix_nanos: self.start,
            end_unix_nanos: self.end,
            step_nanos: self.step,
        }
    }
}

/// One value per bucket from every series (summed), `pick` choosing the figure; `fill` for
/// buckets without samples (0 for counters, a gap for gauges and percentiles).
fn per_bucket(
    w: &Window,
    series: &[MetricSeries],
    pick: fn(&throughline_store::MetricPoint) -> Option<f64>,
    fill: Option<f64>,
) -> Vec<Option<f64>> {
    let mut out = vec![None; w.times().len()];
    for s in series {
        for p in &s.points {
            let i = ((p.time_unix_nanos - w.start) / w.step) as usize;
            if let (Some(slot), Some(v)) = (out.get_mut(i), pick(p)) {
                *slot = Some(slot.unwrap_or(0.0) + v);
            }
        }
    }
    out.into_iter().map(|v| v.or(fill)).collect()
}

fn total(series: &[MetricSeries]) -> f64 {
    series.iter().fold(0.0, |a, s| a + s.total.value)
}

fn chart(
    label: &str,
    w: &Window,
    values: Vec<Option<f64>>,
    format: &dyn Fn(f64) -> String,
) -> String {
    svg::line_chart(
        label,
        &w.times(),
        &[Series {
            name: label,
            colour: "#2b6cb0",
            values,
        }],
        format,
    )
}

fn count(v: f64) -> String {
    format!("{v:.0}")
}

pub fn page(
    reader: &dyn TraceReader,
    dashboards: &[Dashboard],
    system: &str,
    params: &Params,
    now: u64,
) -> Result<String, PageError> {
    let Some(d) = dashboards.iter().find(|d| d.system == system) else {
        return Err(PageError::NotFound(format!("dashboard {system:?}")));
    };
    let (start, end) = params::window(params, now)?;
    let w = Window {
        start,
        end,
        step: step(start, end),
    };
    let mut body = String::with_capacity(32 * 1024);
    let _ = write!(
        body,
        "<p class=\"crumbs\"><a href=\"/dashboards\">Dashboards</a> ›</p><h1>{}</h1>\
<p class=\"muted\">From {} to {} UTC, in {}-wide buckets. \
<a href=\"?lookback=15m\">15 min</a> · <a href=\"?lookback=1h\">1 hour</a> · <a href=\"?lookback=6h\">6 hours</a> · <a href=\"?lookback=1d\">1 day</a></p>",
        Esc(&d.title),
        html::timestamp(start),
        html::timestamp(end),
        html::duration(w.step)
    );

    body.push_str("<section data-testid=\"end-to-end\"><h2>End-to-end success</h2>");
    let integrity = reader.integrity_series(start, end, w.step)?;
    let (whole, broken) = integrity
        .iter()
        .fold((0, 0), |(a, b), p| (a + p.whole, b + p.incomplete));
    let _ = write!(
        body,
        "<p>Whole traces: <strong data-testid=\"whole-share\">{}</strong> of {} judged.",
        html::percent(whole, whole + broken),
        whole + broken
    );
    if let Some((accepted, completed)) = &d.completion {
        let sum = |name: &str| -> Result<f64, PageError> {
            let q = MetricQuery {
                attributes: vec![],
                ..w.query(name, ("", ""))
            };
            Ok(total(&reader.metric_series(&q)?))
        };
        let (a, c) = (sum(accepted)?, sum(completed)?);
        let _ = write!(
            body,
            " Accepted requests completed: <strong data-testid=\"completed-share\">{}</strong> ({c:.0} of {a:.0}: <code>{}</code> over <code>{}</code>).",
            html::percent(c as u64, a as u64),
            Esc(completed),
            Esc(accepted)
        );
    }
    let buckets: Vec<(u64, u64, u64, u64)> = integrity
        .iter()
        .map(|p| (p.bucket_start_unix_nanos, p.whole, p.incomplete, p.settling))
        .collect();
    body.push_str("</p>");
    body.push_str(&svg::share_chart("Whole traces", &buckets));
    body.push_str("</section>");

    body.push_str("<section data-testid=\"functions\"><h2>Functions</h2>");
    for f in &d.functions {
        let attr = ("faas.name", f.as_str());
        let get = |name: &str| reader.metric_series(&w.query(name, attr));
        let invocations = get("faas.invocations")?;
        let errors = get("faas.errors")?;
        let coldstarts = get("faas.coldstarts")?;
        let durations = get("faas.invoke_duration")?;
        let throttles = get("aws.lambda.throttles")?;
        let p = |pick: fn(&throughline_store::MetricPoint) -> Option<f64>| {
            durations
                .first()
                .and_then(|s| pick(&s.total))
                .map_or("–".to_owned(), |v| html::duration_ms(v * 1000.0))
        };
        let _ = write!(
            body,
            "<h3 data-testid=\"function\">{}</h3><p>Invocations <strong data-testid=\"invocations\">{}</strong> · errors <strong data-testid=\"errors\">{}</strong> · cold starts <strong data-testid=\"coldstarts\">{}</strong> · throttles {} · duration p50 {} · p95 {} · p99 {}</p><div class=\"charts\">",
            Esc(f),
            count(total(&invocations)),
            count(total(&errors)),
            count(total(&coldstarts)),
            count(total(&throttles)),
            p(|t| t.p50),
            p(|t| t.p95),
            p(|t| t.p99),
        );
        body.push_str(&chart(
            "Invocations",
            &w,
            per_bucket(&w, &invocations, |p| Some(p.value), Some(0.0)),
            &count,
        ));
        body.push_str(&chart(
            "Errors",
            &w,
            per_bucket(&w, &errors, |p| Some(p.value), Some(0.0)),
            &count,
        ));
        let ms = |v: f64| html::duration_ms(v * 1000.0);
        body.push_str(&chart(
            "Duration p95",
            &w,
            per_bucket(&w, &durations, |p| p.p95, None),
            &ms,
        ));
        body.push_str(&chart(
            "Cold starts",
            &w,
            per_bucket(&w, &coldstarts, |p| Some(p.value), Some(0.0)),
            &count,
        ));
        body.push_str("</div>");
    }
    body.push_str("</section><section data-testid=\"queues\"><h2>Queues</h2>");
    for q in &d.queues {
        let attr = ("messaging.destination.name", q.as_str());
        let get = |name: &str| reader.metric_series(&w.query(name, attr));
        let visible = get("aws.sqs.approximate_number_of_messages_visible")?;
        let age = get("aws.sqs.approximate_age_of_oldest_message")?;
        let in_flight = get("aws.sqs.approximate_number_of_messages_not_visible")?;
        let moved = get("aws.sqs.number_of_messages_moved_to_dead_letter")?;
        let dead = d.dead_letter_queues.contains(q);
        let last = |s: &[MetricSeries]| s.first().map_or(0.0, |s| s.total.value);
        let _ = write!(
            body,
            "<h3 data-testid=\"queue\">{}{}</h3><p>Visible now <strong data-testid=\"visible\">{}</strong> · in flight {} · oldest {} s · moved to its dead-letter queue {}</p><div class=\"charts\">",
            Esc(q),
            if dead {
                " <span class=\"badge broken\">dead letters</span>"
            } else {
                ""
            },
            count(last(&visible)),
            count(last(&in_flight)),
            count(last(&age)),
            count(total(&moved)),
        );
        body.push_str(&chart(
            if dead { "Dead letters" } else { "Queue depth" },
            &w,
            per_bucket(&w, &visible, |p| Some(p.value), None),
            &count,
        ));
        body.push_str(&chart(
            "Oldest message (s)",
            &w,
            per_bucket(&w, &age, |p| Some(p.value), None),
            &count,
        ));
        body.push_str("</div>");
    }
    body.push_str("</section>");
    Ok(html::page(&d.title, Nav::None, &body))
}
