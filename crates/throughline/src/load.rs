//! `throughline load SYSTEM`: drives a system with its scenario (the harness's load driver),
//! shows progress, and ends with throughput, latency percentiles, errors by kind, and the
//! traces read back and judged as `throughline verify` judges them.
//!
//! Exit status: 0 when every request was answered as expected and every trace is whole; 1 when
//! not; 2 when the target or the query API could not be reached at all.

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
