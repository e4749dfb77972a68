//! `throughline verify` against a running `throughline collector`: whole traces pass, a broken
//! trace, a missing expected hop or a finding named by `--fail-on` fails with a non-zero exit
//! status and says why.

mod collector_common;

use std::process::Command;

use collector_common::{now_nanos, start_collector, start_collector_with};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use throughline_store::testdata::{QueryLoopTrace, TwoServiceTrace};

fn verify(query: std::net::SocketAddr, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_throughline"))
        .arg("verify")
        .args(["--url", &format!("http://{query}")])
        .args(args)
        .output()
        .expect("the throughline binary runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        assert_eq!(out.status.code(), Some(1), "a failed check exits 1: {text}");
    }
    (out.status.success(), text)
}

#[test]
fn verify_passes_whole_traces_and_fails_broken_ones() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (_child, addrs) = start_collector(dir.path());
    let whole = TwoServiceTrace::new(1, now_nanos());
    let broken = TwoServiceTrace::new(2, now_nanos());
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    runtime.block_on(async {
        let mut client = TraceServiceClient::connect(format!("http://{}", addrs.grpc))
            .await
            .expect("grpc connects");
        client
            .export(whole.request())
            .await
            .expect("export succeeds");
        // Only the worker's half of the second trace arrives.
        client
            .export(broken.worker_request())
            .await
            .expect("export succeeds");
    });
    let (api, worker) = (whole.api_service.as_str(), whole.worker_service.as_str());
    let hop = format!("{api}->{worker}");
    let services = format!("{api},{worker}");
    let whole_id = whole.trace_id.to_string();
    let broken_id = broken.trace_id.to_string();

    let (ok, out) = verify(
        addrs.query,
        &[
            "--trace-id",
            &whole_id,
            "--expect-services",
            &services,
            "--expect-hop",
            &hop,
        ],
    );
    assert!(ok, "{out}");
    assert!(out.contains(&format!("{whole_id} whole")), "{out}");

    let (ok, out) = verify(addrs.query, &["--trace-id", &broken_id]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("BROKEN") && out.contains("missing root span"),
        "{out}"
    );

    let backwards = format!("{worker}->{api}");
    let (ok, out) = verify(
        addrs.query,
        &["--trace-id", &whole_id, "--expect-hop", &backwards],
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!("expected hop {worker} -> {api} is missing")),
        "{out}"
    );

    // A window search finds both, and the broken one fails the run.
    let (ok, out) = verify(addrs.query, &["--lookback", "1h"]);
    assert!(!ok, "{out}");
    assert!(out.contains("2 traces: 1 whole, 1 broken"), "{out}");

    let (ok, out) = verify(
        addrs.query,
        &["--service", "nobody", "--expect-services", "nobody"],
    );
    assert!(!ok, "{out}");
    assert!(out.contains("no traces found"), "{out}");

    // A service named alone asks for its traces too: none is a failure, not a pass.
    let (ok, out) = verify(addrs.query, &["--service", "nobody"]);
    assert!(!ok, "{out}");
    assert!(out.contains("no traces found"), "{out}");
}

#[test]
fn the_apm_empty_state_names_the_collectors_own_otlp_ports() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (_collector, addrs) = start_collector(dir.path());
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let page = runtime.block_on(async {
        reqwest::get(format!("http://{}/search", addrs.query))
            .await
            .expect("the APM answers")
            .text()
            .await
            .expect("a page")
    });
    assert!(
        page.contains(&format!("http://{}", addrs.grpc)) && !page.contains(":4317"),
        "{page}"
    );
}

#[test]
fn verify_reads_a_stopped_collectors_store_through_throughline_apm() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let whole = TwoServiceTrace::new(3, now_nanos());
    {
        let (_collector, addrs) = start_collector(dir.path());
        let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
        runtime.block_on(async {
            let mut client = TraceServiceClient::connect(format!("http://{}", addrs.grpc))
                .await
                .expect("grpc connects");
            client
                .export(whole.request())
                .await
                .expect("export succeeds");
        });
    } // the collector is gone
    let listen = throughline_testkit::free_loopback_addr();
    let _apm = throughline_testkit::ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_throughline"))
            .args(["apm", "--listen", &listen.to_string(), "--data-dir"])
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("throughline apm starts"),
    );
    assert!(
        throughline_testkit::wait_for_port(listen, std::time::Duration::from_secs(20)),
        "apm listens"
    );
    let id = whole.trace_id.to_string();
    let (ok, out) = verify(listen, &["--trace-id", &id]);
    assert!(ok, "{out}");
    assert!(out.contains(&format!("{id} whole")), "{out}");
}

#[test]
fn fail_on_n_plus_one_exits_1_on_a_finding_and_passes_without_one() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (_child, addrs) = start_collector(dir.path());
    let n_plus_one = QueryLoopTrace::new(11, now_nanos(), 6, 10_000);
    let mut near_miss = QueryLoopTrace::new(12, now_nanos(), 4, 20_000);
    near_miss.service = "near-miss".into();
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    runtime.block_on(async {
        let mut client = TraceServiceClient::connect(format!("http://{}", addrs.grpc))
            .await
            .expect("grpc connects");
        for t in [&n_plus_one, &near_miss] {
            client.export(t.request()).await.expect("export succeeds");
        }
    });
    let id = n_plus_one.trace_id.to_string();
    let (ok, out) = verify(addrs.query, &["--trace-id", &id]);
    assert!(
        ok,
        "without --fail-on a finding does not fail the check: {out}"
    );
    let (ok, out) = verify(addrs.query, &["--trace-id", &id, "--fail-on", "n-plus-one"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!(
            "{id} n_plus_one_db: 6 × `SELECT slot, ad_id FROM placements WHERE video_id = ?`"
        )) && out.contains("1 findings"),
        "{out}"
    );
    let (ok, out) = verify(
        addrs.query,
        &[
            "--service",
            "near-miss",
            "--fail-on",
            "n-plus-one,repeated-http",
        ],
    );
    assert!(ok, "four repeats are not an N+1: {out}");
    assert!(out.contains("0 findings"), "{out}");
}

#[test]
fn the_collectors_n_plus_one_thresholds_are_settable() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (_child, addrs) = start_collector_with(
        dir.path(),
        &["--n-plus-one-min-repeats", "3", "--n-plus-one-min-ms", "5"],
    );
    // Three 2 ms queries: a finding at 3 repeats and 5 ms, not at Sentry's 5 and 50 ms.
    let three = QueryLoopTrace::new(13, now_nanos(), 3, 2_000);
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    runtime.block_on(async {
        let mut client = TraceServiceClient::connect(format!("http://{}", addrs.grpc))
            .await
            .expect("grpc connects");
        client
            .export(three.request())
            .await
            .expect("export succeeds");
    });
    let id = three.trace_id.to_string();
    let (ok, out) = verify(addrs.query, &["--trace-id", &id, "--fail-on", "n-plus-one"]);
    assert!(!ok && out.contains("1 findings"), "{out}");

    // A threshold below two repeats is refused at start-up, naming the flag.
    let out = Command::new(env!("CARGO_BIN_EXE_throughline"))
        .args(["collector", "--data-dir"])
        .arg(dir.path())
        .args(["--n-plus-one-min-repeats", "1"])
        .output()
        .expect("the throughline binary runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--n-plus-one-min-repeats"), "{err}");
}
