//! The load driver: sends a system's [`Scenario`] at a target, by concurrency or at a rate,
//! with a progress bar, into a latency histogram, and collects the trace id of every accepted
//! request (from the W3C `traceresponse` header, or a `trace_id` field of the JSON answer).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use serde_json::Value;

/// The all-zero trace id an untraced service answers with.
const NO_TRACE: &str = "00000000000000000000000000000000";

/// What the answer to a request should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A 2xx; its trace is checked.
    Accepted,
    /// Invalid on purpose: a 400 is the expected answer.
    Rejected,
    /// Refused on purpose with this status (a 409 for a conflicting request); counted with the
    /// rejected.
    Refused(u16),
}

/// One request of a scenario.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: reqwest::Method,
    /// Path and query, appended to the target URL.
    pub path: String,
    pub body: Option<Value>,
    pub expect: Expect,
}

/// A system's load: the `n`th request of a run. `run_id` tells runs apart (unique ids).
pub trait Scenario: Send + Sync + 'static {
    fn request(&self, run_id: &str, n: u64, invalid_ratio: f64) -> Request;
}

/// How much load, how fast.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    /// Requests in all (replaced by `rate × duration` when both are given).
    pub requests: u64,
    pub concurrency: usize,
    /// Requests per second.
    pub rate: Option<f64>,
    /// Seconds to send at `rate`.
    pub duration: Option<f64>,
    /// Share of requests sent invalid on purpose.
    pub invalid_ratio: f64,
    pub quiet: bool,
}

/// A plan that cannot run.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PlanError {
    #[error("--concurrency must be at least 1")]
    Concurrency,
    #[error("--invalid-ratio must be between 0 and 1")]
    InvalidRatio,
    #[error("--rate and --duration must be positive")]
    Rate,
    #[error("cannot build the HTTP client")]
    Client(#[source] Arc<reqwest::Error>),
}

/// What the sending found.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub sent: u64,
    pub accepted: u64,
    pub rejected_as_expected: u64,
    pub elapsed_secs: f64,
    pub throughput_rps: f64,
    pub latency_ms: BTreeMap<String, f64>,
    pub errors: BTreeMap<String, u64>,
    /// Accepted answers that named no trace (the target is untraced).
    pub untraced: u64,
    /// The first transport error, with the URL it was for.
    pub first_error: Option<String>,
    #[serde(skip)]
    pub trace_ids: Vec<String>,
}

struct Outcome {
    latency: Histogram<u64>,
    trace_ids: Vec<String>,
    accepted: u64,
    rejected: u64,
    untraced: u64,
    errors: BTreeMap<String, u64>,
    first_error: Option<String>,
}

fn histogram() -> Histogram<u64> {
    // 1 µs to 60 s, 3 significant digits: constant bounds, always valid.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// Sends the plan's requests at `target` and reports.
pub async fn drive(
    target: &str,
    scenario: Arc<dyn Scenario>,
    plan: &LoadPlan,
) -> Result<LoadReport, PlanError> {
    if plan.concurrency == 0 {
        return Err(PlanError::Concurrency);
    }
    if !(0.0..=1.0).contains(&plan.invalid_ratio) {
        return Err(PlanError::InvalidRatio);
    }
    let total = match (plan.rate, plan.duration) {
        (Some(rate), Some(secs)) => {
            if !(rate > 0.0 && secs > 0.0) {
                return Err(PlanError::Rate);
            }
            (rate * secs).round() as u64
        }
        _ => plan.requests,
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(plan.concurrency)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| PlanError::Client(Arc::new(e)))?;
    let interval = plan.rate.map(|r| Duration::from_secs_f64(1.0 / r));
    let run_id = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
    let progress = if plan.quiet {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {bar:40} {pos}/{len} requests  {per_sec}  eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    };
    let next = Arc::new(AtomicU64::new(0));
    let target = target.trim_end_matches('/').to_owned();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..plan.concurrency {
        let (client, next, target, run_id, progress, scenario) = (
            client.clone(),
            next.clone(),
            target.clone(),
            run_id.clone(),
            progress.clone(),
            scenario.clone(),
        );
        let invalid_ratio = plan.invalid_ratio;
        tasks.push(tokio::spawn(async move {
            let mut out = Outcome {
                latency: histogram(),
                trace_ids: Vec::new(),
                accepted: 0,
                rejected: 0,
                untraced: 0,
                errors: BTreeMap::new(),
                first_error: None,
            };
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    break;
                }
                if let Some(interval) = interval {
                    tokio::time::sleep_until((started + interval.mul_f64(n as f64)).into()).await;
                }
                let request = scenario.request(&run_id, n, invalid_ratio);
                let url = format!("{target}{}", request.path);
                let mut builder = client.request(request.method.clone(), &url);
                if let Some(body) = &request.body {
                    builder = builder.json(body);
                }
                let t = Instant::now();
                let kind = match builder.send().await {
                    Err(e) => {
                        if out.first_error.is_none() {
                            out.first_error = Some(format!("{url}: {}", describe(&e)));
                        }
                        Some(
                            if e.is_timeout() {
                                "timeout"
                            } else if e.is_connect() {
                                "connect"
                            } else {
                                "transport"
                            }
                            .to_owned(),
                        )
                    }
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        let header = resp
                            .headers()
                            .get("traceresponse")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.split('-').nth(1))
                            .map(str::to_owned);
                        let body: Value = resp.json().await.unwrap_or(Value::Null);
                        match (status, request.expect) {
                            (200..=299, Expect::Accepted) => {
                                out.accepted += 1;
                                let id = header.or_else(|| {
                                    body.get("trace_id")
                                        .and_then(Value::as_str)
                                        .map(str::to_owned)
                                });
                                match id {
                                    Some(id) if id != NO_TRACE && !id.is_empty() => {
                                        out.trace_ids.push(id)
                                    }
                                    _ => out.untraced += 1,
                                }
                                None
                            }
                            (400, Expect::Rejected) => {
                                out.rejected += 1;
                                None
                            }
                            (code, Expect::Refused(want)) if code == want => {
                                out.rejected += 1;
                                None
                            }
                            (code, Expect::Refused(want)) => {
                                Some(format!("http {code} where {want} was expected"))
                            }
                            (code, Expect::Accepted) => Some(format!("http {code}")),
                            (code, Expect::Rejected) => {
                                Some(format!("http {code} for an invalid request"))
                            }
                        }
                    }
                };
                let _ = out.latency.record(t.elapsed().as_micros().max(1) as u64);
                if let Some(kind) = kind {
                    *out.errors.entry(kind).or_default() += 1;
                }
                progress.inc(1);
            }
            out
        }));
    }
    let mut latency = histogram();
    let mut report = LoadReport {
        sent: 0,
        accepted: 0,
        rejected_as_expected: 0,
        elapsed_secs: 0.0,
        throughput_rps: 0.0,
        latency_ms: BTreeMap::new(),
        errors: BTreeMap::new(),
        untraced: 0,
        first_error: None,
        trace_ids: Vec::new(),
    };
    for task in tasks {
        let out = match task.await {
            Ok(out) => out,
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        };
        let _ = latency.add(&out.latency);
        report.accepted += out.accepted;
        report.rejected_as_expected += out.rejected;
        report.untraced += out.untraced;
        report.trace_ids.extend(out.trace_ids);
        report.first_error = report.first_error.take().or(out.first_error);
        for (k, v) in out.errors {
            *report.errors.entry(k).or_default() += v;
        }
    }
    report.elapsed_secs = started.elapsed().as_secs_f64();
    progress.finish_and_clear();
    report.sent = latency.len();
    report.throughput_rps = report.sent as f64 / report.elapsed_secs.max(1e-9);
    let ms = |q: f64| latency.value_at_quantile(q) as f64 / 1000.0;
    report.latency_ms = BTreeMap::from([
        ("p50".to_owned(), ms(0.50)),
        ("p90".to_owned(), ms(0.90)),
        ("p99".to_owned(), ms(0.99)),
        ("max".to_owned(), latency.max() as f64 / 1000.0),
    ]);
    Ok(report)
}

/// The error and its causes on one line.
fn describe(e: &reqwest::Error) -> String {
    let mut text = if e.is_connect() {
        "could not connect".to_owned()
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}
