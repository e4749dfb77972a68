//! `throughline load onboarding`: drives the onboarding API with realistic payloads, shows
//! progress, and ends with throughput, latency percentiles, errors by kind, and trace integrity
//! read back from the collector's query API.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use rand::Rng;
use rand::seq::IndexedRandom;
use serde_json::{Value, json};

#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    #[command(subcommand)]
    pub scenario: Scenario,
}

#[derive(Debug, clap::Subcommand)]
pub enum Scenario {
    /// POST /onboard to the onboarding API, then check every accepted request's trace.
    Onboarding(OnboardingArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct OnboardingArgs {
    /// The onboarding API.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    pub api: String,
    /// The collector's query API, where traces are read back.
    #[arg(long, default_value = "http://127.0.0.1:16686")]
    pub query: String,
    /// How many requests to send (ignored with --rate/--duration).
    #[arg(long, default_value_t = 500)]
    pub requests: u64,
    /// How many requests in flight at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Requests per second; with --duration replaces --requests.
    #[arg(long, requires = "duration")]
    pub rate: Option<f64>,
    /// How long to send at --rate, in seconds.
    #[arg(long, requires = "rate")]
    pub duration: Option<f64>,
    /// Share of requests sent invalid on purpose (a 400 is then the expected answer).
    #[arg(long, default_value_t = 0.05)]
    pub invalid_ratio: f64,
    /// Skip reading traces back from the collector.
    #[arg(long)]
    pub no_verify: bool,
    /// How long to wait for the worker's spans to arrive, in seconds.
    #[arg(long, default_value_t = 30)]
    pub settle_secs: u64,
    /// Print the summary as JSON (for scripts and tests).
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// What became of the load, as the summary prints it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadSummary {
    pub sent: u64,
    pub accepted: u64,
    pub rejected_as_expected: u64,
    pub elapsed_secs: f64,
    pub throughput_rps: f64,
    pub latency_ms: BTreeMap<String, f64>,
    pub errors: BTreeMap<String, u64>,
    pub traces: Option<TraceCheck>,
}

/// Trace integrity over every accepted request.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TraceCheck {
    pub checked: u64,
    pub whole: u64,
    /// Consumer spans beyond the first: records the worker saw more than once.
    pub redeliveries: u64,
    /// Why traces were not whole, with counts.
    pub problems: BTreeMap<String, u64>,
}

struct Outcome {
    latency: Histogram<u64>,
    accepted_traces: Vec<String>,
    accepted: u64,
    rejected_as_expected: u64,
    errors: BTreeMap<String, u64>,
}

pub fn run(args: LoadArgs) -> anyhow::Result<()> {
    let Scenario::Onboarding(args) = args.scenario;
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    let summary = runtime.block_on(onboarding(args.clone()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(&summary);
    }
    let whole = summary.traces.as_ref().is_none_or(|t| t.whole == t.checked);
    let unexpected = summary.errors.values().sum::<u64>();
    if !whole || unexpected > 0 {
        std::process::exit(1);
    }
    Ok(())
}

/// Sends the load and checks the traces.
pub async fn onboarding(args: OnboardingArgs) -> anyhow::Result<LoadSummary> {
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.invalid_ratio),
        "--invalid-ratio must be between 0 and 1"
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(10))
        .build()?;
    let total = match (args.rate, args.duration) {
        (Some(rate), Some(secs)) => {
            anyhow::ensure!(
                rate > 0.0 && secs > 0.0,
                "--rate and --duration must be positive"
            );
            (rate * secs).round() as u64
        }
        _ => args.requests,
    };
    let interval = args.rate.map(|r| Duration::from_secs_f64(1.0 / r));
    let run_id = format!("{:06x}", rand::rng().random_range(0..0xff_ffff));
    let progress = if args.quiet || args.json {
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
    let url = format!("{}/onboard", args.api.trim_end_matches('/'));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (client, next, url, run_id, progress) = (
            client.clone(),
            next.clone(),
            url.clone(),
            run_id.clone(),
            progress.clone(),
        );
        let invalid_ratio = args.invalid_ratio;
        tasks.push(tokio::spawn(async move {
            let mut out = Outcome {
                // 1 µs to 60 s, 3 significant digits: the bounds are constants, so this is valid.
                latency: Histogram::new_with_bounds(1, 60_000_000, 3)
                    .expect("valid histogram bounds"),
                accepted_traces: Vec::new(),
                accepted: 0,
                rejected_as_expected: 0,
                errors: BTreeMap::new(),
            };
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    break;
                }
                if let Some(interval) = interval {
                    let due = started + interval.mul_f64(n as f64);
                    tokio::time::sleep_until(due.into()).await;
                }
                let (payload, valid) = payload(&run_id, n, invalid_ratio);
                let t = Instant::now();
                let result = client.post(&url).json(&payload).send().await;
                let kind = match result {
                    Err(e) if e.is_timeout() => Some("timeout".to_owned()),
                    Err(e) if e.is_connect() => Some("connect".to_owned()),
                    Err(_) => Some("transport".to_owned()),
                    Ok(resp) => {
                        let status = resp.status();
                        let body: Value = resp.json().await.unwrap_or(Value::Null);
                        match (status.as_u16(), valid) {
                            (200..=299, true) => {
                                out.accepted += 1;
                                if let Some(id) = body.get("trace_id").and_then(Value::as_str) {
                                    out.accepted_traces.push(id.to_owned());
                                }
                                None
                            }
                            (400, false) => {
                                out.rejected_as_expected += 1;
                                None
                            }
                            (code, true) => Some(format!("http {code}")),
                            (code, false) => Some(format!("http {code} for an invalid request")),
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
    let mut latency =
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds");
    let (mut accepted, mut rejected, mut errors, mut traces) = (0, 0, BTreeMap::new(), Vec::new());
    for task in tasks {
        let out = task.await.context("a load task panicked")?;
        latency
            .add(&out.latency)
            .context("merging latency histograms")?;
        accepted += out.accepted;
        rejected += out.rejected_as_expected;
        traces.extend(out.accepted_traces);
        for (k, v) in out.errors {
            *errors.entry(k).or_default() += v;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    progress.finish_and_clear();
    let sent = latency.len();
    let ms = |q: f64| latency.value_at_quantile(q) as f64 / 1000.0;
    let latency_ms = BTreeMap::from([
        ("p50".to_owned(), ms(0.50)),
        ("p90".to_owned(), ms(0.90)),
        ("p99".to_owned(), ms(0.99)),
        ("max".to_owned(), latency.max() as f64 / 1000.0),
    ]);
    let traces = if args.no_verify || traces.is_empty() {
        None
    } else {
        Some(
            check_traces(
                &client,
                &args.query,
                traces,
                Duration::from_secs(args.settle_secs),
                args.quiet || args.json,
            )
            .await,
        )
    };
    Ok(LoadSummary {
        sent,
        accepted,
        rejected_as_expected: rejected,
        elapsed_secs: elapsed,
        throughput_rps: sent as f64 / elapsed.max(1e-9),
        latency_ms,
        errors,
        traces,
    })
}

/// A realistic payload in one of the seeds' two shapes; `false` when invalid on purpose.
fn payload(run_id: &str, n: u64, invalid_ratio: f64) -> (Value, bool) {
    const COMPANIES: &[&str] = &[
        "Acme Corp",
        "Globex",
        "Initech",
        "Umbrella Labs",
        "Stark Industries",
        "Wayne Enterprises",
        "Hooli",
        "Vandelay Imports",
    ];
    let mut rng = rand::rng();
    let id = format!("LOAD-{run_id}-{n:07}");
    let email = format!("customer{n}@example.com");
    let company = COMPANIES.choose(&mut rng).copied().unwrap_or("Acme Corp");
    let roll: f64 = rng.random();
    let tier = if roll < 0.6 {
        "standard"
    } else if roll < 0.9 {
        "premium"
    } else {
        "enterprise"
    };
    let size = match tier {
        "standard" => "small",
        "premium" => "medium",
        _ => "large",
    };
    if rng.random::<f64>() < invalid_ratio {
        let bad = match n % 3 {
            0 => json!({"customer_id": id, "name": company, "type": tier}),
            1 => {
                json!({"customer_id": id, "email": "not-an-email", "company_name": company, "type": tier})
            }
            _ => {
                json!({"customer_id": id, "email": email, "company_name": company, "type": "platinum"})
            }
        };
        return (bad, false);
    }
    let body = if n.is_multiple_of(2) {
        json!({"customer_id": id, "email": email, "name": company, "company_size": size})
    } else {
        json!({"customer_id": id, "email": email, "company_name": company, "type": tier})
    };
    (body, true)
}

/// Reads every trace back until each is whole or `settle` has passed.
async fn check_traces(
    client: &reqwest::Client,
    query: &str,
    ids: Vec<String>,
    settle: Duration,
    quiet: bool,
) -> TraceCheck {
    let deadline = Instant::now() + settle;
    let progress = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(ids.len() as u64)
    };
    progress.set_style(
        ProgressStyle::with_template("{spinner} {bar:40} {pos}/{len} traces whole")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut pending = ids;
    let mut check = TraceCheck {
        checked: pending.len() as u64,
        ..TraceCheck::default()
    };
    let mut last_problems: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let verdicts = check_batch(client, query, &pending).await;
        let mut still = Vec::new();
        for (id, verdict) in pending.into_iter().zip(verdicts) {
            match verdict {
                Ok(redeliveries) => {
                    check.whole += 1;
                    check.redeliveries += redeliveries;
                    progress.inc(1);
                }
                Err(problem) => {
                    last_problems.insert(id.clone(), problem);
                    still.push(id);
                }
            }
        }
        pending = still;
        if pending.is_empty() || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    progress.finish_and_clear();
    for id in &pending {
        let problem = last_problems
            .get(id)
            .cloned()
            .unwrap_or_else(|| "unknown".into());
        *check.problems.entry(problem).or_default() += 1;
    }
    check
}

/// Checks `ids` with up to 32 requests in flight.
async fn check_batch(
    client: &reqwest::Client,
    query: &str,
    ids: &[String],
) -> Vec<Result<u64, String>> {
    let semaphore = Arc::new(tokio::sync::Semaphore::new(32));
    let mut handles = Vec::with_capacity(ids.len());
    for id in ids {
        let (client, url, semaphore) = (
            client.clone(),
            format!("{}/api/traces/{id}", query.trim_end_matches('/')),
            semaphore.clone(),
        );
        handles.push(tokio::spawn(async move {
            let _permit = semaphore.acquire().await.map_err(|e| e.to_string())?;
            let resp = client
                .get(&url)
                .send()
                .await
                .map_err(|e| format!("query api: {}", e.without_url()))?;
            if resp.status() == reqwest::StatusCode::NOT_FOUND {
                return Err("trace not in the collector".to_owned());
            }
            let body: Value = resp
                .json()
                .await
                .map_err(|e| format!("query api: {}", e.without_url()))?;
            onboarding_trace_verdict(&body)
        }));
    }
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.unwrap_or_else(|e| Err(e.to_string())));
    }
    out
}

/// Whether a Jaeger-format trace (`{"data":[trace]}`) is whole for the onboarding flow: one root,
/// no orphan, the API's SERVER and PRODUCER spans, and the worker's CONSUMER span as the
/// producer's child. `Ok` carries how many extra deliveries the worker made.
pub fn onboarding_trace_verdict(body: &Value) -> Result<u64, String> {
    let trace = body
        .get("data")
        .and_then(|d| d.get(0))
        .ok_or("trace not in the collector")?;
    let spans = trace
        .get("spans")
        .and_then(Value::as_array)
        .ok_or("trace has no spans")?;
    let processes = trace.get("processes").cloned().unwrap_or(Value::Null);
    let service = |s: &Value| {
        let pid = s.get("processID").and_then(Value::as_str).unwrap_or("");
        processes
            .get(pid)
            .and_then(|p| p.get("serviceName"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let kind = |s: &Value| {
        s.get("tags")
            .and_then(Value::as_array)
            .and_then(|tags| {
                tags.iter()
                    .find(|t| t.get("key").and_then(Value::as_str) == Some("span.kind"))
            })
            .and_then(|t| t.get("value").and_then(Value::as_str))
            .unwrap_or("")
            .to_owned()
    };
    let id = |s: &Value| {
        s.get("spanID")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let parent = |s: &Value| {
        s.get("references")
            .and_then(Value::as_array)
            .and_then(|refs| {
                refs.iter()
                    .find(|r| r.get("refType").and_then(Value::as_str) == Some("CHILD_OF"))
                    .and_then(|r| r.get("spanID").and_then(Value::as_str))
                    .map(str::to_owned)
            })
    };
    let ids: std::collections::HashSet<String> = spans.iter().map(&id).collect();
    let roots = spans.iter().filter(|s| parent(s).is_none()).count();
    if roots != 1 {
        return Err(format!("{roots} root spans"));
    }
    if let Some(orphan) = spans
        .iter()
        .find(|s| parent(s).is_some_and(|p| !ids.contains(&p)))
    {
        return Err(format!(
            "orphan span {:?}",
            orphan
                .get("operationName")
                .and_then(Value::as_str)
                .unwrap_or("")
        ));
    }
    let server = spans
        .iter()
        .find(|s| service(s) == "onboarding-api" && kind(s) == "server")
        .ok_or("no onboarding-api SERVER span")?;
    let producer = spans
        .iter()
        .find(|s| service(s) == "onboarding-api" && kind(s) == "producer")
        .ok_or("no onboarding-api PRODUCER span")?;
    if parent(producer).as_deref() != Some(id(server).as_str()) {
        return Err("PRODUCER span is not the SERVER span's child".into());
    }
    let consumers = spans
        .iter()
        .filter(|s| {
            service(s) == "onboarding-lambda"
                && kind(s) == "consumer"
                && parent(s).as_deref() == Some(id(producer).as_str())
        })
        .count() as u64;
    if consumers == 0 {
        return Err("no onboarding-lambda CONSUMER span under the PRODUCER span".into());
    }
    Ok(consumers - 1)
}

fn print_summary(s: &LoadSummary) {
    println!();
    println!(
        "onboarding load: {} requests in {:.2} s = {:.0} req/s",
        s.sent, s.elapsed_secs, s.throughput_rps
    );
    println!(
        "  accepted {}   rejected as expected (invalid on purpose) {}   errors {}",
        s.accepted,
        s.rejected_as_expected,
        s.errors.values().sum::<u64>()
    );
    let l = &s.latency_ms;
    let get = |k: &str| l.get(k).copied().unwrap_or(0.0);
    println!(
        "  latency  p50 {:.2} ms   p90 {:.2} ms   p99 {:.2} ms   max {:.2} ms",
        get("p50"),
        get("p90"),
        get("p99"),
        get("max")
    );
    for (kind, n) in &s.errors {
        println!("  error  {kind}: {n}");
    }
    match &s.traces {
        None => println!("  traces not checked"),
        Some(t) => {
            println!(
                "  {}/{} traces whole: onboarding-api → onboarding-queue → onboarding-lambda ({} redelivered records seen)",
                t.whole, t.checked, t.redeliveries
            );
            for (problem, n) in &t.problems {
                println!("  not whole  {problem}: {n}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(spans: Value) -> Value {
        json!({"data": [{"traceID": "t", "spans": spans,
            "processes": {"p1": {"serviceName": "onboarding-api"}, "p2": {"serviceName": "onboarding-lambda"}}}]})
    }
    fn span(id: &str, parent: Option<&str>, pid: &str, kind: &str) -> Value {
        let refs: Vec<Value> = parent
            .map(|p| json!({"refType": "CHILD_OF", "traceID": "t", "spanID": p}))
            .into_iter()
            .collect();
        json!({"spanID": id, "operationName": id, "processID": pid, "references": refs,
               "tags": [{"key": "span.kind", "type": "string", "value": kind}]})
    }

    #[test]
    fn whole_trace_counts_redeliveries() {
        let t = trace(json!([
            span("s", None, "p1", "server"),
            span("p", Some("s"), "p1", "producer"),
            span("c1", Some("p"), "p2", "consumer"),
            span("c2", Some("p"), "p2", "consumer"),
        ]));
        assert_eq!(onboarding_trace_verdict(&t), Ok(1));
    }

    #[test]
    fn names_what_is_missing() {
        let no_consumer = trace(json!([
            span("s", None, "p1", "server"),
            span("p", Some("s"), "p1", "producer")
        ]));
        assert!(
            onboarding_trace_verdict(&no_consumer)
                .unwrap_err()
                .contains("CONSUMER")
        );
        let orphan = trace(json!([
            span("s", None, "p1", "server"),
            span("c", Some("gone"), "p2", "consumer")
        ]));
        assert!(
            onboarding_trace_verdict(&orphan)
                .unwrap_err()
                .contains("orphan")
        );
        let two_roots = trace(json!([
            span("s", None, "p1", "server"),
            span("c", None, "p2", "consumer")
        ]));
        assert!(
            onboarding_trace_verdict(&two_roots)
                .unwrap_err()
                .contains("2 root")
        );
        assert!(onboarding_trace_verdict(&json!({"data": []})).is_err());
    }

    #[test]
    fn payloads_follow_the_seed_shapes() {
        let (a, ok) = payload("r", 0, 0.0);
        assert!(ok && a.get("company_size").is_some() && a.get("name").is_some());
        let (b, ok) = payload("r", 1, 0.0);
        assert!(ok && b.get("type").is_some() && b.get("company_name").is_some());
        let (_, ok) = payload("r", 2, 1.0);
        assert!(!ok);
    }
}
