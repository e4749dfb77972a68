//! `throughline verify`: asks a running collector's query API whether traces arrived whole, and
//! whether they crossed the services and hops expected; exits non-zero when one did not.

use std::collections::HashMap;

use anyhow::{Context, bail};
use serde::Deserialize;
use throughline_collector::IntegrityReport;

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Base URL of the collector's query API.
    #[arg(long, default_value = "http://127.0.0.1:16686")]
    url: String,
    /// Only traces that touch this service.
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
    /// Every trace must hold this hop, `client->server`: a span of `server` whose parent (or a
    /// link) is a span of `client` (repeatable).
    #[arg(long = "expect-hop", value_parser = parse_hop)]
    expect_hops: Vec<Hop>,
    /// Count traces still settling (spans may yet arrive) as failures.
    #[arg(long)]
    fail_on_settling: bool,
}

/// An expected edge between two services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    pub from: String,
    pub to: String,
}

fn parse_hop(input: &str) -> Result<Hop, String> {
    let (from, to) = input
        .split_once("->")
        .ok_or_else(|| format!("{input:?} is not a hop like api->worker"))?;
    let (from, to) = (from.trim(), to.trim());
    if from.is_empty() || to.is_empty() {
        return Err(format!("{input:?} names no service on one side of ->"));
    }
    Ok(Hop { from: from.to_owned(), to: to.to_owned() })
}

#[derive(Debug, Deserialize)]
struct Envelope<T> {
    data: Option<T>,
    errors: Option<Vec<ApiError>>,
}

#[derive(Debug, Deserialize)]
struct ApiError {
    msg: String,
}

#[derive(Debug, Deserialize)]
struct JaegerTrace {
    spans: Vec<JaegerSpan>,
    processes: HashMap<String, JaegerProcess>,
}

#[derive(Debug, Deserialize)]
struct JaegerSpan {
    #[serde(rename = "spanID")]
    span_id: String,
    #[serde(rename = "processID")]
    process_id: String,
    references: Vec<JaegerReference>,
}

#[derive(Debug, Deserialize)]
struct JaegerReference {
    #[serde(rename = "spanID")]
    span_id: String,
}

#[derive(Debug, Deserialize)]
struct JaegerProcess {
    #[serde(rename = "serviceName")]
    service_name: String,
}

/// The service-to-service hops of a trace: (service of the parent or linked span, service of
/// the span), for spans whose reference points at a span of another service.
fn hops(trace: &JaegerTrace) -> Vec<(String, String)> {
    let service_of_process =
        |pid: &str| trace.processes.get(pid).map(|p| p.service_name.clone()).unwrap_or_default();
    let service_of_span: HashMap<&str, String> = trace
        .spans
        .iter()
        .map(|s| (s.span_id.as_str(), service_of_process(&s.process_id)))
        .collect();
    let mut out = Vec::new();
    for span in &trace.spans {
        let to = service_of_process(&span.process_id);
        for reference in &span.references {
            if let Some(from) = service_of_span.get(reference.span_id.as_str())
                && *from != to
            {
                out.push((from.clone(), to.clone()));
            }
        }
    }
    out
}

/// What is wrong with one trace, beyond the store's own integrity verdict.
fn expectation_failures(report: &IntegrityReport, hops_found: &[(String, String)], args: &VerifyArgs) -> Vec<String> {
    let mut failures = Vec::new();
    for service in &args.expect_services {
        if !report.services.contains(service) {
            failures.push(format!("expected service {service} is missing"));
        }
    }
    for hop in &args.expect_hops {
        if !hops_found.iter().any(|(f, t)| *f == hop.from && *t == hop.to) {
            failures.push(format!("expected hop {} -> {} is missing", hop.from, hop.to));
        }
    }
    failures
}

async fn get<T: for<'de> Deserialize<'de>>(client: &reqwest::Client, url: &str) -> anyhow::Result<T> {
    let response = client.get(url).send().await.with_context(|| format!("could not reach {url}"))?;
    let status = response.status();
    let envelope: Envelope<T> =
        response.json().await.with_context(|| format!("{url} did not answer with Jaeger JSON"))?;
    if let Some(errors) = envelope.errors.filter(|e| !e.is_empty()) {
        let msgs: Vec<String> = errors.into_iter().map(|e| e.msg).collect();
        bail!("{url} answered {status}: {}", msgs.join("; "));
    }
    envelope.data.with_context(|| format!("{url} answered {status} without data"))
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Runs the check; a failed check ends the process with exit status 1 after the report.
pub fn run(args: VerifyArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let passed = runtime.block_on(verify(args))?;
    if !passed {
        std::process::exit(1);
    }
    Ok(())
}

/// Prints one line per trace and a summary; `Ok(false)` when any check failed.
async fn verify(args: VerifyArgs) -> anyhow::Result<bool> {
    let base = args.url.trim_end_matches('/');
    let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).build()?;
    let mut query = vec![format!("lookback={}", encode(&args.lookback)), format!("limit={}", args.limit)];
    if let Some(service) = &args.service {
        query.push(format!("service={}", encode(service)));
    }
    for id in &args.trace_ids {
        query.push(format!("traceID={}", encode(id)));
    }
    let url = format!("{base}/api/throughline/integrity?{}", query.join("&"));
    let reports: Vec<IntegrityReport> = get(&client, &url).await?;

    let (mut whole, mut broken, mut settling) = (0usize, 0usize, 0usize);
    for report in &reports {
        let hops_found = if args.expect_hops.is_empty() {
            Vec::new()
        } else {
            let traces: Vec<JaegerTrace> =
                get(&client, &format!("{base}/api/traces/{}", report.trace_id)).await?;
            traces.iter().flat_map(hops).collect()
        };
        let mut problems = report.problems.clone();
        problems.extend(expectation_failures(report, &hops_found, &args));
        let verdict = match report.integrity.as_str() {
            "settling" if problems.is_empty() && !args.fail_on_settling => {
                settling += 1;
                "settling"
            }
            "whole" if problems.is_empty() => {
                whole += 1;
                "whole"
            }
            _ => {
                broken += 1;
                if problems.is_empty() {
                    problems.push(format!("integrity is {}", report.integrity));
                }
                "BROKEN"
            }
        };
        println!(
            "{} {verdict:<8} {:>4} spans  services: {}{}",
            report.trace_id,
            report.span_count,
            report.services.join(", "),
            if problems.is_empty() { String::new() } else { format!("  ({})", problems.join("; ")) }
        );
    }
    println!(
        "{} traces: {whole} whole, {broken} broken, {settling} settling",
        reports.len()
    );
    let expected_something = !args.expect_services.is_empty() || !args.expect_hops.is_empty() || !args.trace_ids.is_empty();
    if reports.is_empty() && expected_something {
        println!("no traces found, but some were expected");
        return Ok(false);
    }
    Ok(broken == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_parsing() {
        assert_eq!(parse_hop("api -> worker"), Ok(Hop { from: "api".into(), to: "worker".into() }));
        assert!(parse_hop("api").is_err());
        assert!(parse_hop("->worker").is_err());
    }

    #[test]
    fn hops_follow_references_across_services() {
        let trace: JaegerTrace = serde_json::from_value(serde_json::json!({
            "spans": [
                {"spanID": "a1", "processID": "p1", "references": []},
                {"spanID": "a2", "processID": "p1", "references": [{"spanID": "a1"}]},
                {"spanID": "b1", "processID": "p2", "references": [{"spanID": "a2"}]},
                {"spanID": "c1", "processID": "p3", "references": [{"spanID": "gone"}]}
            ],
            "processes": {
                "p1": {"serviceName": "api"},
                "p2": {"serviceName": "worker"},
                "p3": {"serviceName": "mailer"}
            }
        }))
        .expect("valid fixture");
        assert_eq!(hops(&trace), vec![("api".to_owned(), "worker".to_owned())]);
    }
}
