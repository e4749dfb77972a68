//! Tail sampling end to end: traces from the Python OpenTelemetry SDK, each split over two
//! exports, decided in a collector that both stores and forwards to the Python OTLP upstream
//! (the official `opentelemetry-proto` services).

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::upstream::Upstream;
use throughline_collector::export::{Destination, ExportDefaults, ExportSettings, Exporter};
use throughline_collector::tail_sampling::{Reason, TailSampler, TailSamplingConfig};
use throughline_collector::{Collector, CollectorConfig, Pipeline};
use throughline_store::TraceId;

const TRACES: usize = 3000;

#[derive(Debug, serde::Deserialize)]
struct Sent {
    error: Vec<String>,
    slow: Vec<String>,
    ordinary: Vec<String>,
}

fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{series} is not on /metrics"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_and_slow_traces_are_kept_whole_and_a_tenth_of_the_rest_by_trace_id() {
    let up = tokio::task::spawn_blocking(Upstream::start)
        .await
        .expect("the upstream starts");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (sink, reader) = common::open_store(dir.path());
    let destination =
        Destination::parse("--export-otlp", &up.grpc_url(), &ExportDefaults::default())
            .expect("url");
    let exporter = Exporter::open(ExportSettings::new(
        vec![destination],
        dir.path().join("export"),
    ))
    .expect("the exporter opens");
    let sampler = TailSampler::open(
        TailSamplingConfig {
            ratio: 0.1,
            slow: Some(Duration::from_millis(1500)),
            decision_wait: Duration::from_millis(300),
            max_trace_wait: Duration::from_secs(20),
            ..TailSamplingConfig::default()
        },
        &dir.path().join("sampling"),
    )
    .expect("the spool opens");
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let config = CollectorConfig {
        grpc_addr: loopback,
        http_addr: loopback,
        query_addr: loopback,
        ..CollectorConfig::default()
    };
    let pipeline = Pipeline {
        exporter: Some(Arc::clone(&exporter)),
        tail_sampling: Some(Arc::clone(&sampler)),
        ..Pipeline::default()
    };
    let running = Collector::start_pipeline(config, sink, Arc::clone(&reader), None, pipeline)
        .await
        .expect("the collector starts");

    // Roots come 2 s after their children: after the decision, which they must follow.
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tail_sampling_peer.py");
    let python = tokio::task::spawn_blocking(throughline_testkit::python)
        .await
        .expect("venv set-up");
    let out = tokio::process::Command::new(python)
        .arg(&script)
        .args([
            &format!("http://{}", running.grpc_addr),
            &TRACES.to_string(),
            "2",
        ])
        .output()
        .await
        .expect("python runs");
    assert!(
        out.status.success(),
        "the Python SDK peer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent: Sent = serde_json::from_slice(&out.stdout).expect("the peer prints what it sent");
    assert_eq!(
        sent.error.len() + sent.slow.len() + sent.ordinary.len(),
        TRACES
    );

    assert!(
        sampler.flush(Duration::from_secs(60)).await,
        "the spool empties"
    );
    assert!(
        exporter.flush(Duration::from_secs(60)).await,
        "the export queue empties"
    );
    let upstream: HashMap<String, u64> = up.traces().await;
    for (kind, ids) in [("error", &sent.error), ("slow", &sent.slow)] {
        for id in ids {
            assert_eq!(
                upstream.get(id).copied(),
                Some(3),
                "the {kind} trace {id} arrives whole"
            );
        }
    }
    let mut kept = 0;
    for id in &sent.ordinary {
        match upstream.get(id).copied() {
            None => {}
            Some(3) => kept += 1,
            Some(n) => panic!("trace {id} arrived with {n} of its 3 spans: two decisions"),
        }
    }
    let share = kept as f64 / sent.ordinary.len() as f64;
    assert!(
        (0.07..=0.13).contains(&share),
        "{kept} of {} ordinary traces kept ({share:.3}), not about 10 %",
        sent.ordinary.len()
    );
    assert_eq!(
        upstream.len(),
        sent.error.len() + sent.slow.len() + kept,
        "nothing else arrives"
    );

    // The store holds what went upstream, and nothing of a dropped trace.
    let dropped = sent
        .ordinary
        .iter()
        .find(|id| !upstream.contains_key(*id))
        .expect("some ordinary trace dropped");
    let trace = |hex: &str| {
        let bytes: Vec<u8> = (0..16)
            .map(|i| u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).expect("hex"))
            .collect();
        reader
            .trace(TraceId::from_slice(&bytes).expect("16 bytes"))
            .expect("the store answers")
            .len()
    };
    assert_eq!(trace(dropped), 0, "a sampled-out trace is not stored");
    assert_eq!(trace(&sent.error[0]), 3, "an error trace is stored whole");

    // Decisions and reasons on /metrics.
    let text = reqwest::get(format!("http://{}/metrics", running.query_addr))
        .await
        .expect("/metrics answers")
        .text()
        .await
        .expect("text");
    let decisions = "throughline_tail_sampling_decisions_total";
    assert_eq!(
        metric(
            &text,
            &format!("{decisions}{{decision=\"keep\",reason=\"error\"}}")
        ),
        sent.error.len() as u64
    );
    assert_eq!(
        metric(
            &text,
            &format!("{decisions}{{decision=\"keep\",reason=\"slow\"}}")
        ),
        sent.slow.len() as u64
    );
    assert_eq!(
        metric(
            &text,
            &format!("{decisions}{{decision=\"keep\",reason=\"ratio\"}}")
        ),
        kept as u64
    );
    assert_eq!(
        sampler.figures().decisions(Reason::SampledOut),
        (sent.ordinary.len() - kept) as u64
    );
    let late = metric(
        &text,
        "throughline_tail_sampling_late_spans_total{decision=\"keep\"}",
    ) + metric(
        &text,
        "throughline_tail_sampling_late_spans_total{decision=\"drop\"}",
    );
    assert_eq!(
        late, TRACES as u64,
        "every root came after its trace's decision"
    );
    assert_eq!(
        metric(
            &text,
            "throughline_tail_sampling_spans_total{decision=\"keep\"}"
        ),
        3 * upstream.len() as u64
    );
    running.shutdown().await;
}
