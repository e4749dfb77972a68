//! `throughline load SYSTEM`: drives a system with its scenario (the harness's load driver),
//! shows progress, and ends with throughput, latency percentiles, errors by kind, and the
//! traces read back and judged as `throughline verify` judges them.
//!
//! With `--scenario NAME` (the shop's `blackfriday` or `normal`) it instead starts the system's
//! own demo on the running system (its `demo_path`): the system drives its own traffic through
//! the demo's phases while `load` shows the phase, then reports by phase, journey and step from
//! the system's stats, and reads back the sample of traces the system kept of each phase.
//!
//! Exit status: 0 when every request was answered as expected and every trace is whole (with
//! `--scenario`: and every phase of the demo had journeys, and no journey failed but those the
//! phase fails on purpose); 1 when not; 2 when the target or the query API could not be reached
//! at all, or the system refused the scenario.

use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;
use throughline_harness::load::drive;
use throughline_harness::readback::ReadError;
use throughline_harness::{LoadPlan, LoadReport, TraceCheck, TraceExpectation, TraceQuery};

use crate::systems;

#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// The system to load (e.g. onboarding).
    #[arg(value_parser = systems::parse_name)]
    pub system: String,
    /// The system's front door (default: where `up` puts it).
    #[arg(long, alias = "target")]
    pub api: Option<String>,
    /// The collector's query API, where traces are read back.
    #[arg(long, default_value = "http://127.0.0.1:16686")]
    pub query: String,
    /// How many requests to send (ignored with --rate/--duration); `--journeys` for the shop,
    /// whose every request is one journey.
    #[arg(long, visible_alias = "journeys", default_value_t = 500)]
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
    /// How long to wait for every trace to be judged (settled, redeliveries done), in seconds.
    #[arg(long, alias = "wait-secs", default_value_t = 30)]
    pub settle_secs: u64,
    /// Print the summary as JSON (for scripts and tests).
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Run the system's own demo instead of sending requests (the shop: `blackfriday`, or
    /// `normal`: the peak rate for as long, nothing degraded).
    #[arg(long, conflicts_with_all = ["rate", "duration"])]
    pub scenario: Option<String>,
    /// Seconds one demo minute lasts (60: the seed's 30-minute demo; 1: a 30-second one).
    #[arg(long, requires = "scenario", default_value_t = 60.0)]
    pub minute_secs: f64,
    /// Journeys a second at the demo's peak (default: the system's own setting).
    #[arg(long, requires = "scenario")]
    pub peak_rate: Option<f64>,
}

/// What became of a demo (`--scenario`), as the summary prints it.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioSummary {
    pub system: String,
    pub target: String,
    pub scenario: String,
    pub minute_secs: f64,
    pub elapsed_secs: f64,
    /// The system's own stats at the end: by journey, step and phase.
    pub system_stats: serde_json::Value,
    /// Phases the demo should have passed through that had no journey.
    pub phases_missing: Vec<String>,
    /// Journeys that failed other than as their phase fails them on purpose.
    pub unexpected_errors: u64,
    pub traces: Option<TraceCheck>,
    pub traces_skipped: Option<String>,
}

/// What became of the load, as the summary prints it.
#[derive(Debug, Clone, Serialize)]
pub struct LoadSummary {
    pub system: String,
    pub target: String,
    #[serde(flatten)]
    pub load: LoadReport,
    pub traces: Option<TraceCheck>,
    /// Why the traces were not checked, when they were not.
    pub traces_skipped: Option<String>,
    /// The system's own stats of the load (by journey and step), when it keeps them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_stats: Option<serde_json::Value>,
}

pub fn run(args: LoadArgs) -> anyhow::Result<()> {
    let known = systems::find(&args.system).context("unknown system")?;
    let target = args
        .api
        .clone()
        .unwrap_or_else(|| known.default_target.to_owned());
    let plan = LoadPlan {
        requests: args.requests,
        concurrency: args.concurrency,
        rate: args.rate,
        duration: args.duration,
        invalid_ratio: args.invalid_ratio,
        quiet: args.quiet || args.json,
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    if let Some(scenario) = args.scenario.clone() {
        return run_scenario(&args, known, &target, &scenario, &runtime);
    }
    let expected = (known.expected)();
    let stats_url = known
        .load_stats_path
        .map(|path| format!("{}{path}", target.trim_end_matches('/')));
    let stats_client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .context("building the HTTP client")?;
    if let Some(url) = &stats_url {
        // Best effort: a target that cannot be reached is reported by the load itself.
        // (`send` starts its timeout at once: inside the runtime.)
        let _ = runtime.block_on(async { stats_client.post(url).send().await });
    }
    let load = runtime.block_on(drive(&target, (known.scenario)(), &plan))?;
    let system_stats = match &stats_url {
        Some(url) => runtime.block_on(async {
            let response = stats_client.get(url).send().await.ok()?;
            response.json::<serde_json::Value>().await.ok()
        }),
        None => None,
    };
    let mut summary = LoadSummary {
        system: known.name.to_owned(),
        target: target.clone(),
        load,
        traces: None,
        traces_skipped: None,
        system_stats,
    };
    let connect_errors = summary.load.errors.get("connect").copied().unwrap_or(0);
    if connect_errors == summary.load.sent && summary.load.sent > 0 {
        eprintln!(
            "could not reach {target} ({}): is `throughline up` running? Start it, or pass --api with the address it printed",
            summary
                .load
                .first_error
                .as_deref()
                .unwrap_or("connection refused")
        );
        std::process::exit(2);
    }
    if args.no_verify {
        summary.traces_skipped = Some("--no-verify".into());
    } else if summary.load.accepted > 0 && summary.load.untraced == summary.load.accepted {
        summary.traces_skipped = Some(format!(
            "{target} answered without trace ids: it runs untraced (as `up --untraced-api` starts it)"
        ));
    } else if !summary.load.trace_ids.is_empty() {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .context("building the HTTP client")?;
        let query = TraceQuery::new(client, &args.query);
        let ids = std::mem::take(&mut summary.load.trace_ids);
        let check = runtime.block_on(query.check(
            ids,
            &expected,
            Duration::from_secs(args.settle_secs),
            Duration::from_secs_f64(summary.load.elapsed_secs + args.settle_secs as f64),
            plan.quiet,
        ));
        match check {
            Ok(check) => summary.traces = Some(check),
            Err(err @ ReadError::Unreachable { .. }) => {
                print_summary(&summary, &expected);
                eprintln!(
                    "{err}: is the collector of `throughline up` running? Start it, or pass --query with the address it printed"
                );
                std::process::exit(2);
            }
            Err(err) => return Err(err.into()),
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(&summary, &expected);
    }
    let whole = summary.traces.as_ref().is_none_or(TraceCheck::passed);
    let unexpected = summary.load.errors.values().sum::<u64>();
    if !whole || unexpected > 0 {
        std::process::exit(1);
    }
    Ok(())
}

fn print_summary(s: &LoadSummary, expected: &TraceExpectation) {
    let l = &s.load;
    println!();
    println!(
        "{} load: {} requests in {:.2} s = {:.0} req/s",
        s.system, l.sent, l.elapsed_secs, l.throughput_rps
    );
    println!(
        "  accepted {}   rejected as expected (invalid on purpose) {}   errors {}",
        l.accepted,
        l.rejected_as_expected,
        l.errors.values().sum::<u64>()
    );
    let get = |k: &str| l.latency_ms.get(k).copied().unwrap_or(0.0);
    println!(
        "  latency  p50 {:.2} ms   p90 {:.2} ms   p99 {:.2} ms   max {:.2} ms",
        get("p50"),
        get("p90"),
        get("p99"),
        get("max")
    );
    for (kind, n) in &l.errors {
        println!("  error  {kind}: {n}");
    }
    if let Some(stats) = &s.system_stats {
        print_system_stats(stats);
    }
    if let Some(first) = &l.first_error {
        println!("  first error  {first}");
    }
    match (&s.traces, &s.traces_skipped) {
        (Some(t), _) => {
            println!(
                "  {}/{} traces whole: {} ({} redelivered records seen)",
                t.whole,
                t.checked,
                expected.path(),
                t.redeliveries
            );
            println!(
                "  judged as `throughline verify` judges them: the collector's verdict once no span arrived for its settle time, then the hops; {:.1} s after the last request",
                t.waited_secs
            );
            if t.failed_every_delivery > 0 {
                println!(
                    "  {} records failed every delivery seen (retrying, or in the dead-letter queue)",
                    t.failed_every_delivery
                );
            }
            if t.settling > 0 {
                println!(
                    "  {} traces still settling after {:.0} s (pass --settle-secs to wait longer)",
                    t.settling, t.waited_secs
                );
            }
            for (problem, n) in &t.problems {
                println!("  not whole  {problem}: {n}");
            }
        }
        (None, Some(why)) => println!("  traces not checked: {why}"),
        (None, None) => println!("  traces not checked: no request was accepted"),
    }
}

/// The system's own `journeys` and `steps` tables: requests, errors, latency percentiles.
fn print_system_stats(stats: &serde_json::Value) {
    for table in ["journeys", "steps"] {
        let Some(rows) = stats.get(table).and_then(serde_json::Value::as_object) else {
            continue;
        };
        for (name, row) in rows {
            let ms = |q: &str| row["latency_ms"][q].as_f64().unwrap_or(0.0);
            println!(
                "  {:<8} {name:<14} {:>6} requests  {:>4} errors   p50 {:.2} ms   p90 {:.2} ms   p99 {:.2} ms",
                table.trim_end_matches('s'),
                row["requests"].as_u64().unwrap_or(0),
                row["errors"].as_u64().unwrap_or(0),
                ms("p50"),
                ms("p90"),
                ms("p99"),
            );
        }
    }
}

/// Exits 2 saying the target could not be reached.
fn unreachable(target: &str, err: &dyn std::fmt::Display) -> ! {
    eprintln!(
        "could not reach {target} ({err}): is `throughline up` running? Start it, or pass --api with the address it printed"
    );
    std::process::exit(2);
}

/// `load SYSTEM --scenario NAME`: the system's own demo on the running system, watched to its
/// end, then reported by phase and its sampled traces read back.
fn run_scenario(
    args: &LoadArgs,
    known: &systems::Known,
    target: &str,
    scenario: &str,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<()> {
    let (Some(demo_path), Some(stats_path)) = (known.demo_path, known.load_stats_path) else {
        anyhow::bail!("{} has no scenarios to run (--scenario)", known.name);
    };
    let base = target.trim_end_matches('/');
    let (demo_url, stats_url) = (format!("{base}{demo_path}"), format!("{base}{stats_path}"));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .context("building the HTTP client")?;
    let expected = (known.expected)();
    let started = std::time::Instant::now();
    let get_stats = || async {
        let response = client.get(&stats_url).send().await?;
        response
            .error_for_status()?
            .json::<serde_json::Value>()
            .await
    };
    let answer = runtime.block_on(async {
        // The stats afresh: the report is this demo's alone.
        client.post(&stats_url).send().await?.error_for_status()?;
        let mut body = serde_json::json!({"scenario": scenario, "minute_secs": args.minute_secs});
        if let Some(rate) = args.peak_rate {
            body["peak_rate"] = rate.into();
        }
        let response = client.post(&demo_url).json(&body).send().await?;
        let status = response.status();
        let answer: serde_json::Value = response.json().await.unwrap_or_default();
        Ok::<_, reqwest::Error>((status, answer))
    });
    let answer = match answer {
        Ok((status, answer)) if status.is_success() => answer,
        Ok((status, answer)) => {
            eprintln!(
                "{demo_url} refused the scenario {scenario:?} ({status}): {}",
                answer["error"].as_str().unwrap_or("no reason given")
            );
            std::process::exit(2);
        }
        Err(e) => unreachable(target, &e),
    };
    let ends_in = answer["ends_in_secs"].as_f64().unwrap_or(0.0);
    let phases: Vec<String> = answer["phases"]
        .as_array()
        .map(|p| {
            p.iter()
                .filter_map(|p| p.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if !(args.quiet || args.json) {
        eprintln!(
            "{} {scenario}: {:.0} s ({} s a demo minute), the system's own traffic at up to {} journeys/s at the peak",
            known.name, ends_in, args.minute_secs, answer["peak_rate"]
        );
    }
    // Watch it to its end (and its last journeys finish).
    let give_up = Duration::from_secs_f64(ends_in + 120.0);
    let stats = runtime.block_on(async {
        let mut last_phase = String::new();
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let stats = match get_stats().await {
                Ok(stats) => stats,
                Err(e) => unreachable(target, &e),
            };
            let phase = stats["phase"].as_str().unwrap_or("?").to_owned();
            if !(args.quiet || args.json) && phase != last_phase {
                eprintln!(
                    "  {:>6.1} s  phase {phase:<12} journeys so far {:>7}  failed {:>5}",
                    started.elapsed().as_secs_f64(),
                    stats["journeys"].as_object().map_or(0, |j| j
                        .values()
                        .filter_map(|v| v["requests"].as_u64())
                        .sum::<u64>()),
                    stats["journeys"].as_object().map_or(0, |j| j
                        .values()
                        .filter_map(|v| v["errors"].as_u64())
                        .sum::<u64>()),
                );
                last_phase = phase;
            }
            let done = stats["traffic_running"] == false
                && stats["journeys_in_flight"].as_u64() == Some(0)
                && started.elapsed().as_secs_f64() >= ends_in;
            if done || started.elapsed() > give_up {
                return stats;
            }
        }
    });
    let elapsed_secs = started.elapsed().as_secs_f64();
    let by_phase = stats["phases"].as_array().cloned().unwrap_or_default();
    let phases_missing: Vec<String> = phases
        .into_iter()
        .filter(|p| {
            !by_phase
                .iter()
                .any(|row| row["phase"] == p.as_str() && row["requests"].as_u64() > Some(0))
        })
        .collect();
    let ids: Vec<String> = by_phase
        .iter()
        .filter_map(|row| row["trace_ids"].as_array())
        .flatten()
        .filter_map(|id| id.as_str())
        .filter(|id| id.bytes().any(|b| b != b'0'))
        .map(str::to_owned)
        .collect();
    let mut summary = ScenarioSummary {
        system: known.name.to_owned(),
        target: target.to_owned(),
        scenario: scenario.to_owned(),
        minute_secs: args.minute_secs,
        elapsed_secs,
        unexpected_errors: stats["unexpected_errors"].as_u64().unwrap_or(0),
        system_stats: stats,
        phases_missing,
        traces: None,
        traces_skipped: None,
    };
    if args.no_verify {
        summary.traces_skipped = Some("--no-verify".into());
    } else if ids.is_empty() {
        summary.traces_skipped = Some(format!(
            "{target} named no trace ids: it runs untraced, or ran no journey"
        ));
    } else {
        let query = TraceQuery::new(client.clone(), &args.query);
        let check = runtime.block_on(query.check(
            ids,
            &expected,
            Duration::from_secs(args.settle_secs),
            Duration::from_secs_f64(elapsed_secs + args.settle_secs as f64),
            args.quiet || args.json,
        ));
        match check {
            Ok(check) => summary.traces = Some(check),
            Err(err @ ReadError::Unreachable { .. }) => {
                print_scenario(&summary, &expected);
                eprintln!(
                    "{err}: is the collector of `throughline up` running? Start it, or pass --query with the address it printed"
                );
                std::process::exit(2);
            }
            Err(err) => return Err(err.into()),
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_scenario(&summary, &expected);
    }
    let whole = summary.traces.as_ref().is_none_or(TraceCheck::passed);
    if !whole || summary.unexpected_errors > 0 || !summary.phases_missing.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}

fn print_scenario(s: &ScenarioSummary, expected: &TraceExpectation) {
    let stats = &s.system_stats;
    println!();
    println!(
        "{} {}: {:.1} s ({} s a demo minute); {} journeys, {} failed ({} not as the phase fails them on purpose), {} not started (too many in flight)",
        s.system,
        s.scenario,
        s.elapsed_secs,
        s.minute_secs,
        stats["journeys"].as_object().map_or(0, |j| j
            .values()
            .filter_map(|v| v["requests"].as_u64())
            .sum::<u64>()),
        stats["journeys"].as_object().map_or(0, |j| j
            .values()
            .filter_map(|v| v["errors"].as_u64())
            .sum::<u64>()),
        s.unexpected_errors,
        stats["skipped_journeys"].as_u64().unwrap_or(0),
    );
    for row in stats["phases"].as_array().into_iter().flatten() {
        let ms = |q: &str| row["latency_ms"][q].as_f64().unwrap_or(0.0);
        println!(
            "  phase   {:<14} {:>6} journeys {:>4} failed ({} on purpose)   p50 {:.2} ms   p90 {:.2} ms   p99 {:.2} ms",
            row["phase"].as_str().unwrap_or("?"),
            row["requests"].as_u64().unwrap_or(0),
            row["errors"].as_u64().unwrap_or(0),
            row["expected_errors"].as_u64().unwrap_or(0),
            ms("p50"),
            ms("p90"),
            ms("p99"),
        );
        for (journey, j) in row["journeys"].as_object().into_iter().flatten() {
            println!(
                "          {:<14} {journey:<8} {:>6} journeys {:>4} failed   p99 {:.2} ms",
                "",
                j["requests"].as_u64().unwrap_or(0),
                j["errors"].as_u64().unwrap_or(0),
                j["latency_ms"]["p99"].as_f64().unwrap_or(0.0),
            );
        }
    }
    print_system_stats(stats);
    for phase in &s.phases_missing {
        println!("  phase {phase}: no journey ran in it");
    }
    match (&s.traces, &s.traces_skipped) {
        (Some(t), _) => {
            println!(
                "  {}/{} sampled traces whole (up to {} a phase): {}",
                t.whole,
                t.checked,
                trace_sample(stats),
                expected.path()
            );
            if t.settling > 0 {
                println!(
                    "  {} traces still settling after {:.0} s (pass --settle-secs to wait longer)",
                    t.settling, t.waited_secs
                );
            }
            for (problem, n) in &t.problems {
                println!("  not whole  {problem}: {n}");
            }
        }
        (None, Some(why)) => println!("  traces not checked: {why}"),
        (None, None) => println!("  traces not checked"),
    }
}

/// The largest number of trace ids any phase named (the system's sample size, as far as seen).
fn trace_sample(stats: &serde_json::Value) -> usize {
    stats["phases"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|row| row["trace_ids"].as_array().map(Vec::len))
        .max()
        .unwrap_or(0)
}
