//! `throughline verify`: asks a collector's query API whether traces arrived whole, and whether
//! they crossed the services and hops expected, judged by the harness's one checker (the same
//! judgement as `throughline load`).
//!
//! With `--fail-on n-plus-one` (or `repeated-http`, `unbatched-send`) the collector's findings in
//! the window fail the check too, so CI can hold the line against N+1 queries.
//!
//! Exit status: 0 when every trace passed, 1 when one did not (or none was found but some were
//! expected, or a finding named by `--fail-on` is present), 2 when the query API could not be
//! reached.

use anyhow::Context as _;
use throughline_harness::expect::Hop;
use throughline_harness::readback::{ReadError, Search};
use throughline_harness::{TraceQuery, Verdict};

use crate::systems;

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Base URL of the collector's query API.
    #[arg(
        long,
        visible_alias = "query",
        default_value = "http://127.0.0.1:16686"
    )]
    url: String,
    /// Only traces that touch this service (at least one must be found).
    #[arg(long)]
    service: Option<String>,
    /// Check these traces (repeatable); otherwise the window is searched.
    #[arg(long = "trace-id")]
    trace_ids: Vec<String>,
    /// How far back to look (Go duration: 30m, 1h, 2d).
    #[arg(long, default_value = "1h")]
    lookback: String,
    /// Most traces checked.
    #[arg(long, default_value_t = 1000)]
    limit: usize,
    /// Every trace must cross all of these services (comma-separated).
    #[arg(long, value_delimiter = ',')]
    expect_services: Vec<String>,
    /// A hop every trace that went downstream must hold, `client:server` (also `client,server`
    /// or, quoted, `client->server`; a side may name a span kind, `api/producer`): a span of
    /// `server` whose parent (or a link) is a span of `client` (repeatable). A rejected
    /// request's trace (its root answered an HTTP error) is whole without it.
    #[arg(long = "expect-hop")]
    expect_hops: Vec<Hop>,
    /// Expect the trace shape of this system (e.g. onboarding), as `load` does.
    #[arg(long, value_parser = systems::parse_name)]
    system: Option<String>,
    /// Count traces still settling (spans may yet arrive) as failures.
    #[arg(long)]
    fail_on_settling: bool,
    /// Fail when the collector found this pattern in a trace of the window (repeatable or
    /// comma-separated). Findings are made when a trace settles, so a trace still settling has
    /// none yet.
    #[arg(long = "fail-on", value_enum, value_delimiter = ',')]
    fail_on: Vec<FailOn>,
}

/// A finding that fails the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum FailOn {
    /// Five or more sibling database queries of one statement (N+1).
    NPlusOne,
    /// The same HTTP call repeated under one parent.
    RepeatedHttp,
    /// One message sent per item where one batch call would do.
    UnbatchedSend,
}

impl FailOn {
    /// The finding kind the findings API names.
    fn kind(self) -> &'static str {
        match self {
            FailOn::NPlusOne => "n_plus_one_db",
            FailOn::RepeatedHttp => "repeated_http",
            FailOn::UnbatchedSend => "unbatched_send",
        }
    }
}

/// Runs the check; a failed check ends the process with exit status 1 after the report.
pub fn run(args: VerifyArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .context("building the HTTP client")?;
    match runtime.block_on(verify(TraceQuery::new(client, &args.url), &args)) {
        Ok(true) => Ok(()),
        Ok(false) => std::process::exit(1),
        Err(err @ ReadError::Unreachable { .. }) => {
            eprintln!(
                "{err}: is `throughline up` (or `throughline collector`/`apm`) running? Start it, or pass --url"
            );
            std::process::exit(2);
        }
        Err(err) => Err(err).context("reading traces"),
    }
}

/// Prints one line per trace and a summary; `Ok(false)` when any check failed.
async fn verify(query: TraceQuery, args: &VerifyArgs) -> Result<bool, ReadError> {
    let mut expected = args
        .system
        .as_deref()
        .and_then(systems::find)
        .map(|s| (s.expected)())
        .unwrap_or_default();
    expected
        .services
        .extend(args.expect_services.iter().cloned());
    expected.hops.extend(args.expect_hops.iter().cloned());
    let search = Search {
        service: args.service.clone(),
        lookback: args.lookback.clone(),
        limit: args.limit,
    };
    let reports = if args.trace_ids.is_empty() {
        query.search(&search).await?
    } else {
        query.integrity(&args.trace_ids).await?
    };
    let found = reports.len();
    let judged = query.judge_all(reports, &expected).await?;
    let (mut whole, mut broken, mut settling) = (0usize, 0usize, 0usize);
    for (report, judgement) in &judged {
        let verdict = match judgement.verdict {
            Verdict::Whole if judgement.rejected => {
                whole += 1;
                "whole (rejected request)"
            }
            Verdict::Whole => {
                whole += 1;
                "whole"
            }
            Verdict::Retrying => {
                whole += 1;
                "whole (last delivery failed)"
            }
            Verdict::Settling if !args.fail_on_settling => {
                settling += 1;
                "settling"
            }
            Verdict::Settling | Verdict::Broken => {
                broken += 1;
                "BROKEN"
            }
        };
        let mut problems = judgement.problems.clone();
        if judgement.verdict == Verdict::Settling && args.fail_on_settling {
            problems.push("still settling".into());
        }
        println!(
            "{} {verdict:<8} {:>4} spans  services: {}{}",
            report.trace_id,
            report.span_count,
            report.services.join(", "),
            if problems.is_empty() {
                String::new()
            } else {
                format!("  ({})", problems.join("; "))
            }
        );
    }
    println!("{found} traces: {whole} whole, {broken} broken, {settling} settling");
    if settling > 0 {
        println!(
            "settling: the collector judges a trace once no span arrived for its settle time (10 s unless the collector or `up` was given --settle-secs)"
        );
    }
    let mut findings = 0usize;
    for fail_on in &args.fail_on {
        for f in query.findings(&search, Some(fail_on.kind())).await? {
            if !args.trace_ids.is_empty() && !args.trace_ids.contains(&f.trace_id) {
                continue;
            }
            findings += 1;
            println!(
                "{} {}: {} × `{}` in {}, {:.1} ms (parent span {})",
                f.trace_id,
                f.kind,
                f.count,
                f.statement,
                f.service,
                f.duration_ms,
                f.parent_span_id
            );
        }
    }
    if !args.fail_on.is_empty() {
        println!("{findings} findings of the kinds --fail-on names");
    }
    if !args.trace_ids.is_empty() && found < args.trace_ids.len() {
        println!(
            "{} of the traces asked for are not in the collector",
            args.trace_ids.len() - found
        );
        return Ok(false);
    }
    // Naming a service asks for its traces: none found is a failure, not a pass for nothing.
    let expected_something =
        !expected.is_empty() || !args.trace_ids.is_empty() || args.service.is_some();
    if found == 0 && expected_something {
        println!("no traces found, but some were expected");
        return Ok(false);
    }
    Ok(broken == 0 && findings == 0)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: super::VerifyArgs,
    }

    #[test]
    fn query_names_the_query_api_as_load_and_the_up_banner_do() {
        let cli = Cli::try_parse_from(["verify", "--query", "http://127.0.0.1:26686"]).unwrap();
        assert_eq!(cli.args.url, "http://127.0.0.1:26686");
        let cli = Cli::try_parse_from(["verify", "--url", "http://127.0.0.1:1"]).unwrap();
        assert_eq!(cli.args.url, "http://127.0.0.1:1");
    }
}
