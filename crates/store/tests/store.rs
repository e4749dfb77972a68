//! The store on a real directory: durability across reopen and torn writes, retention, every
//! query of the reader.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use throughline_store::testdata::{TwoServiceTrace, export, kv, seeds_like_batch};
use throughline_store::*;

/// A fresh directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("throughline-store-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as u64
}

const MS: u64 = 1_000_000;
const HOUR: u64 = 3600 * 1_000_000_000;

fn config(dir: &TempDir, settle_secs: u64) -> StoreConfig {
    let mut c = StoreConfig::new(&dir.0);
    c.settle_secs = settle_secs;
    c
}

fn all_time() -> TraceQuery {
    TraceQuery {
        start_unix_nanos: 0,
        end_unix_nanos: u64::MAX,
        limit: 100,
        ..Default::default()
    }
}

#[test]
fn spans_survive_a_crash_and_a_torn_write() -> anyhow::Result<()> {
    let dir = TempDir::new("crash");
    let base = now() - HOUR;
    let traces: Vec<TwoServiceTrace> = (0..20)
        .map(|n| TwoServiceTrace::new(n, base + n * MS))
        .collect();
    {
        let store = Store::open(config(&dir, 10))?;
        for t in &traces {
            assert_eq!(store.write_traces(t.worker_request())?.accepted_spans, 2);
            assert_eq!(store.write_traces(t.api_request())?.accepted_spans, 2);
        }
        // No close, no drop: what a killed process leaves behind.
        std::mem::forget(store);
    }
    // A write torn in the middle: a record header promising more bytes than follow.
    let segment = std::fs::read_dir(&dir.0)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "log"))
        .expect("a segment file");
    let mut torn = std::fs::read(&segment)?;
    torn.extend_from_slice(&[200, 0, 0, 0, 1, 2, 3, 4, 9, 9]);
    std::fs::write(&segment, torn)?;

    let store = Store::open(config(&dir, 10))?;
    for t in &traces {
        let spans = store.trace(t.trace_id)?;
        assert_eq!(spans.len(), 4, "trace {}", t.trace_id);
        assert!(spans.iter().all(|s| s.span.trace_id == t.trace_id.0));
        let root = spans
            .iter()
            .find(|s| s.span.parent_span_id.is_empty())
            .expect("root");
        assert_eq!(root.service_name, "onboarding-api");
        assert_eq!(root.span.name, "POST /onboard");
        assert!(
            root.resource
                .attributes
                .iter()
                .any(|kv| kv.key == "service.version")
        );
        assert_eq!(
            root.scope.as_ref().map(|s| s.name.as_str()),
            Some("throughline")
        );
    }
    assert_eq!(
        store.services()?,
        vec!["onboarding-api", "onboarding-lambda"]
    );
    let calls: u64 = store.span_metrics()?.iter().map(|s| s.calls).sum();
    assert_eq!(calls, 80, "derived state replayed exactly once");
    assert_eq!(store.stats()?.spans, 80);
    // The store keeps working after the torn tail was cut off.
    let late = TwoServiceTrace::new(99, base);
    store.write_traces(late.request())?;
    store.close()?;
    let store = Store::open(config(&dir, 10))?;
    assert_eq!(store.trace(late.trace_id)?.len(), 4);
    let calls: u64 = store.span_metrics()?.iter().map(|s| s.calls).sum();
    assert_eq!(calls, 84, "checkpoint plus replay counts each span once");
    Ok(())
}

#[test]
fn invalid_spans_are_rejected_with_a_reason() -> anyhow::Result<()> {
    let dir = TempDir::new("reject");
    let store = Store::open(config(&dir, 10))?;
    let t = TwoServiceTrace::new(1, now());
    let mut spans = t.api_spans();
    spans[1].trace_id = vec![1, 2, 3];
    let report = store.write_traces(export("onboarding-api", spans))?;
    assert_eq!(report.accepted_spans, 1);
    assert_eq!(report.rejected_spans, 1);
    assert!(
        report.rejection_reason.contains("trace_id"),
        "{}",
        report.rejection_reason
    );
    assert_eq!(store.trace(TraceId([9; 16]))?, vec![]);
    Ok(())
}

#[test]
fn retention_by_size_deletes_the_oldest_segments() -> anyhow::Result<()> {
    let dir = TempDir::new("size");
    let mut c = config(&dir, 10);
    c.segment_max_bytes = 20_000;
    c.max_disk_bytes = 60_000;
    let store = Store::open(c)?;
    let base = now() - HOUR;
    for batch in 0..40u64 {
        store.write_traces(seeds_like_batch(batch, 16, base + batch * 100 * MS))?;
    }
    let segment_bytes: u64 = std::fs::read_dir(&dir.0)?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .map(|e| e.metadata().map_or(0, |m| m.len()))
        .sum();
    assert!(
        segment_bytes <= 60_000 + 20_000,
        "segments take {segment_bytes} bytes"
    );
    assert!(store.stats()?.disk_bytes >= segment_bytes);
    let first = TwoServiceTrace::new(0, base);
    let last = TwoServiceTrace::new(39 * 16 + 15, base);
    assert!(
        store.trace(first.trace_id)?.is_empty(),
        "oldest data deleted"
    );
    assert_eq!(store.trace(last.trace_id)?.len(), 4, "newest data kept");
    Ok(())
}

#[test]
fn retention_by_age_deletes_old_segments() -> anyhow::Result<()> {
    let dir = TempDir::new("age");
    let mut c = config(&dir, 10);
    c.retention_secs = 1;
    let store = Store::open(c)?;
    let t = TwoServiceTrace::new(1, now());
    store.write_traces(t.request())?;
    assert_eq!(store.trace(t.trace_id)?.len(), 4);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    store.maintain()?;
    assert!(store.trace(t.trace_id)?.is_empty());
    Ok(())
}

#[test]
fn search_filters_and_orders_most_recent_first() -> anyhow::Result<()> {
    let dir = TempDir::new("search");
    let store = Store::open(config(&dir, 0))?;
    let base = now() - HOUR;
    let mut traces = Vec::new();
    for n in 0..10u64 {
        let mut t = TwoServiceTrace::new(n, base + n * 1000 * MS);
        t.worker_error = n == 3;
        if n == 7 {
            t.api_service = "billing-api".into();
        }
        store.write_traces(t.request())?;
        traces.push(t);
    }
    // Only the worker half of one trace: no root, an orphan.
    let broken = TwoServiceTrace::new(50, base + 20_000 * MS);
    store.write_traces(broken.worker_request())?;
    store.maintain()?;

    let ids = |q: &TraceQuery| -> anyhow::Result<Vec<TraceId>> {
        Ok(store
            .find_traces(q)?
            .into_iter()
            .map(|s| s.trace_id)
            .collect())
    };
    let by_service = TraceQuery {
        service: Some("onboarding-api".into()),
        ..all_time()
    };
    let found = ids(&by_service)?;
    let expected: Vec<TraceId> = traces
        .iter()
        .rev()
        .filter(|t| t.api_service == "onboarding-api")
        .map(|t| t.trace_id)
        .collect();
    assert_eq!(found, expected, "newest first, billing-api excluded");

    let limited = TraceQuery {
        limit: 3,
        ..by_service.clone()
    };
    assert_eq!(ids(&limited)?, expected[..3].to_vec());

    let window = TraceQuery {
        start_unix_nanos: base + 2000 * MS,
        end_unix_nanos: base + 4000 * MS,
        ..by_service.clone()
    };
    assert_eq!(
        ids(&window)?,
        vec![traces[4].trace_id, traces[3].trace_id, traces[2].trace_id]
    );

    let op = TraceQuery {
        operation: Some("INSERT users".into()),
        ..all_time()
    };
    assert_eq!(ids(&op)?.len(), 11);

    let errors = TraceQuery {
        errors_only: true,
        ..all_time()
    };
    assert_eq!(ids(&errors)?, vec![traces[3].trace_id]);

    let span_tag = TraceQuery {
        tags: vec![("db.system.name".into(), "postgresql".into())],
        ..by_service.clone()
    };
    assert!(
        ids(&span_tag)?.is_empty(),
        "the api's own spans carry no db tag"
    );
    let span_tag = TraceQuery {
        tags: vec![("http.response.status_code".into(), "202".into())],
        ..all_time()
    };
    assert_eq!(ids(&span_tag)?.len(), 10);
    let resource_tag = TraceQuery {
        tags: vec![
            ("service.name".into(), "billing-api".into()),
            ("http.route".into(), "/onboard".into()),
        ],
        ..all_time()
    };
    assert_eq!(ids(&resource_tag)?, vec![traces[7].trace_id]);

    // Span durations: the root lasts 50 ms, the db insert 10 ms.
    let long = TraceQuery {
        min_duration_nanos: Some(45 * MS),
        service: Some("onboarding-lambda".into()),
        ..all_time()
    };
    assert!(ids(&long)?.is_empty(), "no worker span lasts 45 ms");
    let short = TraceQuery {
        min_duration_nanos: Some(5 * MS),
        max_duration_nanos: Some(15 * MS),
        service: Some("billing-api".into()),
        ..all_time()
    };
    assert_eq!(ids(&short)?, vec![traces[7].trace_id]);

    let incomplete = TraceQuery {
        incomplete_only: true,
        ..all_time()
    };
    let found = store.find_traces(&incomplete)?;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].trace_id, broken.trace_id);
    let TraceIntegrity::Incomplete(problems) = &found[0].integrity else {
        panic!("expected incomplete, got {:?}", found[0].integrity)
    };
    assert!(problems.contains(&IntegrityProblem::MissingRoot));
    assert!(problems.contains(&IntegrityProblem::OrphanSpans {
        count: 1,
        missing_parents: vec![broken.producer_span_id()]
    }));

    let summary = &store.find_traces(&TraceQuery {
        limit: 1,
        ..by_service
    })?[0];
    assert_eq!(summary.trace_id, traces[9].trace_id);
    assert_eq!(summary.root_service.as_deref(), Some("onboarding-api"));
    assert_eq!(summary.root_name.as_deref(), Some("POST /onboard"));
    assert_eq!(
        summary.services,
        vec!["onboarding-api", "onboarding-lambda"]
    );
    assert_eq!(summary.span_count, 4);
    assert_eq!(summary.start_unix_nanos, base + 9000 * MS);
    assert_eq!(summary.duration_nanos, 60 * MS);
    assert_eq!(summary.integrity, TraceIntegrity::Whole);
    assert!(!summary.has_error);

    assert!(
        store
            .find_traces(&TraceQuery {
                service: Some("nobody".into()),
                ..all_time()
            })?
            .is_empty()
    );
    let bad = TraceQuery {
        start_unix_nanos: 10,
        end_unix_nanos: 5,
        ..Default::default()
    };
    assert!(matches!(
        store.find_traces(&bad),
        Err(StoreError::InvalidQuery(_))
    ));
    Ok(())
}

#[test]
fn a_young_trace_is_settling() -> anyhow::Result<()> {
    let dir = TempDir::new("settling");
    let store = Store::open(config(&dir, 3600))?;
    let t = TwoServiceTrace::new(1, now());
    store.write_traces(t.api_request())?;
    let found = store.find_traces(&all_time())?;
    assert_eq!(found[0].integrity, TraceIntegrity::Settling);
    let points = store.integrity_series(
        t.start_unix_nanos - HOUR,
        t.start_unix_nanos + HOUR,
        2 * HOUR,
    )?;
    assert_eq!(
        (points[0].settling, points[0].whole, points[0].incomplete),
        (1, 0, 0)
    );
    Ok(())
}

#[test]
fn derived_figures_services_operations_graph_red_integrity() -> anyhow::Result<()> {
    let dir = TempDir::new("derived");
    let store = Store::open(config(&dir, 0))?;
    let base = now() - HOUR;
    let base = base - base % 60_000_000_000;
    for n in 0..6u64 {
        let mut t = TwoServiceTrace::new(n, base + n * MS);
        t.consumer_linked = n % 2 == 1;
        t.worker_error = n == 0;
        // Settle 0 judges each write at once, so send both halves together to pair them.
        store.write_traces(t.request())?;
    }
    store.write_traces(TwoServiceTrace::new(100, base).worker_request())?;
    store.maintain()?;

    let ops = store.operations("onboarding-api")?;
    assert_eq!(
        ops,
        vec![
            Operation {
                name: "POST /onboard".into(),
                span_kind: SpanKind::Server
            },
            Operation {
                name: "onboarding-queue send".into(),
                span_kind: SpanKind::Producer
            },
        ]
    );
    assert!(store.operations("nobody")?.is_empty());

    let metrics = store.span_metrics()?;
    let insert_errors = metrics
        .iter()
        .find(|m| m.span_name == "INSERT users" && m.status_code == "STATUS_CODE_ERROR")
        .expect("error series");
    assert_eq!(insert_errors.calls, 1);
    assert_eq!(insert_errors.span_kind, SpanKind::Client);
    let insert_ok = metrics
        .iter()
        .find(|m| m.span_name == "INSERT users" && m.status_code == "STATUS_CODE_UNSET")
        .expect("unset series");
    assert_eq!(insert_ok.calls, 6);
    // 10 ms lands in the (8, 10] bucket.
    assert_eq!(insert_ok.latency.bucket_counts[4], 6);
    assert_eq!(
        insert_ok.latency.bucket_counts.len(),
        LATENCY_BUCKETS_MS.len() + 1
    );

    let edges = store.dependencies(base - HOUR, base + HOUR)?;
    let edge = |c: &str, s: &str| edges.iter().find(|e| e.client == c && e.server == s);
    // The messages go through their queue's node: api → queue → worker.
    let to_worker = edges
        .iter()
        .find(|e| e.server == "onboarding-lambda" && e.client_kind == NodeKind::MessagingSystem)
        .expect("queue → worker edge");
    assert_eq!(to_worker.calls, 6, "child and linked consumers both pair");
    assert_eq!(to_worker.failed_calls, 1);
    let queue = to_worker.client.clone();
    let from_api = edge("onboarding-api", &queue).expect("api → queue edge");
    assert_eq!(
        (from_api.client_kind, from_api.server_kind),
        (NodeKind::Service, NodeKind::MessagingSystem)
    );
    let db = edge("onboarding-lambda", "postgresql/onboarding").expect("worker → db edge");
    assert_eq!(db.calls, 7);
    assert_eq!(db.server_kind, NodeKind::Database);
    assert!(store.dependencies(base + HOUR, base + 2 * HOUR)?.is_empty());

    // A service's calls are the requests it serves (its 7 CONSUMER spans), not its own 7
    // database calls as well; those are its outgoing calls.
    let red = store.red_series(
        "onboarding-lambda",
        RedScope::Entry,
        base,
        base + 120_000_000_000,
        60_000_000_000,
    )?;
    assert_eq!(red.len(), 2);
    assert_eq!((red[0].calls, red[0].errors), (7, 1));
    assert_eq!(red[1].calls, 0);
    let out = store.red_series(
        "onboarding-lambda",
        RedScope::Outgoing,
        base,
        base + 60_000_000_000,
        60_000_000_000,
    )?;
    assert_eq!((out[0].calls, out[0].errors), (7, 1));
    let red = store.red_series(
        "onboarding-lambda",
        RedScope::Operation("INSERT users"),
        base,
        base + 60_000_000_000,
        60_000_000_000,
    )?;
    assert_eq!((red[0].calls, red[0].errors), (7, 1));
    assert!(matches!(
        store.red_series("x", RedScope::Entry, 0, 10, 0),
        Err(StoreError::InvalidQuery(_))
    ));

    let integrity = store.integrity_series(base, base + 60_000_000_000, 60_000_000_000)?;
    assert_eq!(integrity.len(), 1);
    assert_eq!(
        (
            integrity[0].whole,
            integrity[0].incomplete,
            integrity[0].settling
        ),
        (6, 1, 0)
    );
    Ok(())
}

#[test]
fn late_spans_mend_a_broken_trace() -> anyhow::Result<()> {
    let dir = TempDir::new("late");
    let store = Store::open(config(&dir, 0))?;
    let base = now() - HOUR;
    let base = base - base % 60_000_000_000;
    let t = TwoServiceTrace::new(1, base);
    store.write_traces(t.worker_request())?;
    store.maintain()?;
    let minute = |s: &Store| s.integrity_series(base, base + 60_000_000_000, 60_000_000_000);
    assert_eq!(
        (minute(&store)?[0].whole, minute(&store)?[0].incomplete),
        (0, 1)
    );
    store.write_traces(t.api_request())?;
    store.maintain()?;
    assert_eq!(
        (minute(&store)?[0].whole, minute(&store)?[0].incomplete),
        (1, 0)
    );
    assert!(
        store
            .find_traces(&TraceQuery {
                incomplete_only: true,
                ..all_time()
            })?
            .is_empty()
    );
    Ok(())
}

#[test]
fn logs_and_metrics_are_kept() -> anyhow::Result<()> {
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    let dir = TempDir::new("logs");
    let store = Store::open(config(&dir, 10))?;
    let request = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(testdata::resource("onboarding-api")),
            scope_logs: vec![ScopeLogs {
                log_records: vec![
                    LogRecord {
                        attributes: vec![kv("k", "v")],
                        ..Default::default()
                    };
                    3
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    assert_eq!(store.write_logs(request.clone())?, 3);
    assert_eq!(
        store.write_metrics(ExportMetricsServiceRequest::default())?,
        0
    );
    drop(store);
    let store = Store::open(config(&dir, 10))?;
    let logs = store.logs(0, u64::MAX)?;
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].1, request);
    Ok(())
}

#[test]
fn sealed_segments_reopen_from_their_index_files_or_a_scan() -> anyhow::Result<()> {
    let dir = TempDir::new("sealed");
    let mut c = config(&dir, 10);
    c.segment_max_bytes = 20_000;
    let base = now() - HOUR;
    {
        let store = Store::open(c.clone())?;
        for batch in 0..12u64 {
            store.write_traces(seeds_like_batch(batch, 16, base + batch * 100 * MS))?;
        }
        store.close()?;
    }
    let mut indexes: Vec<PathBuf> = std::fs::read_dir(&dir.0)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "idx"))
        .collect();
    indexes.sort();
    assert!(
        indexes.len() >= 2,
        "sealed segments have index files: {indexes:?}"
    );
    // One index lost, one damaged: those segments are scanned instead.
    std::fs::remove_file(&indexes[0])?;
    let mut damaged = std::fs::read(&indexes[1])?;
    damaged[12] ^= 0xff;
    std::fs::write(&indexes[1], damaged)?;
    for _ in 0..2 {
        let store = Store::open(c.clone())?;
        for n in [0u64, 5 * 16 + 3, 11 * 16 + 15] {
            assert_eq!(
                store.trace(TwoServiceTrace::new(n, base).trace_id)?.len(),
                4,
                "trace {n}"
            );
        }
        assert_eq!(store.stats()?.spans, 12 * 16 * 4);
        let found = store.find_traces(&TraceQuery {
            service: Some("api-3".into()),
            ..all_time()
        })?;
        assert_eq!(found.len(), 32, "batches 3 and 11");
        assert_eq!(
            store.span_metrics()?.iter().map(|s| s.calls).sum::<u64>(),
            12 * 16 * 4
        );
    }
    Ok(())
}

#[test]
fn concurrent_writers_and_readers_share_one_store() -> anyhow::Result<()> {
    fn shareable<T: Send + Sync>() {}
    shareable::<Store>();
    let dir = TempDir::new("concurrent");
    let mut c = config(&dir, 10);
    c.segment_max_bytes = 30_000;
    let store = std::sync::Arc::new(Store::open(c)?);
    let base = now() - HOUR;
    std::thread::scope(|s| {
        for w in 0..3u64 {
            let store = std::sync::Arc::clone(&store);
            s.spawn(move || {
                for batch in (w..24).step_by(3) {
                    store
                        .write_traces(seeds_like_batch(batch, 8, base + batch * MS))
                        .expect("write");
                    store.find_traces(&all_time()).expect("search");
                }
            });
        }
    });
    assert_eq!(store.stats()?.spans, 24 * 8 * 4);
    for n in 0..24 * 8 {
        assert_eq!(
            store.trace(TwoServiceTrace::new(n, base).trace_id)?.len(),
            4,
            "trace {n}"
        );
    }
    Ok(())
}

/// The onboarding worker's batch shape, sent as OTLP exports: per message a PRODUCER span of the
/// API; per batch an invocation SERVER span, a batch CONSUMER span under it linking to every
/// message, and per message a CONSUMER span that is the producer's child.
fn messaging_exports(
    messages: u8,
    t0: u64,
) -> (ExportTraceServiceRequest, ExportTraceServiceRequest) {
    use opentelemetry_proto::tonic::trace::v1::span::Link;
    let producer = |i: u8| Span {
        trace_id: vec![i; 16],
        span_id: vec![i; 8],
        parent_span_id: vec![0xee; 8],
        name: "send onboarding-queue".into(),
        kind: SpanKind::Producer as i32,
        start_time_unix_nano: t0,
        end_time_unix_nano: t0 + 2 * MS,
        ..Default::default()
    };
    let sends = (1..=messages).map(producer).collect();
    let lambda_trace = vec![0xab; 16];
    let mut received: Vec<Span> = (1..=messages)
        .map(|i| Span {
            trace_id: vec![i; 16],
            span_id: vec![0xc0 + i; 8],
            parent_span_id: vec![i; 8],
            name: "process onboarding-queue".into(),
            kind: SpanKind::Consumer as i32,
            start_time_unix_nano: t0 + 10 * MS,
            end_time_unix_nano: t0 + 20 * MS,
            ..Default::default()
        })
        .collect();
    received.push(Span {
        trace_id: lambda_trace.clone(),
        span_id: vec![0xb0; 8],
        parent_span_id: vec![0xa0; 8],
        name: "batch onboarding-queue".into(),
        kind: SpanKind::Consumer as i32,
        links: (1..=messages)
            .map(|i| Link {
                trace_id: vec![i; 16],
                span_id: vec![i; 8],
                ..Default::default()
            })
            .collect(),
        start_time_unix_nano: t0 + 9 * MS,
        end_time_unix_nano: t0 + 30 * MS,
        ..Default::default()
    });
    received.push(Span {
        trace_id: lambda_trace,
        span_id: vec![0xa0; 8],
        name: "onboarding-lambda".into(),
        kind: SpanKind::Server as i32,
        start_time_unix_nano: t0 + 8 * MS,
        end_time_unix_nano: t0 + 31 * MS,
        ..Default::default()
    });
    (export("api", sends), export("lambda", received))
}

#[test]
fn every_message_counts_once_on_the_service_graph_whatever_the_export_order() -> anyhow::Result<()>
{
    for consumers_first in [false, true] {
        let dir = TempDir::new("graph-order");
        // The second export arrives well within the settle time.
        let store = Store::open(config(&dir, 60))?;
        let (sends, received) = messaging_exports(6, now() - 60_000 * MS);
        if consumers_first {
            store.write_traces(received)?;
            store.write_traces(sends)?;
        } else {
            store.write_traces(sends)?;
            store.write_traces(received)?;
        }
        store.maintain()?;
        let edges = store.dependencies(0, u64::MAX)?;
        assert_eq!(
            edges.len(),
            1,
            "consumers first {consumers_first}: {edges:?}"
        );
        assert_eq!(
            (
                edges[0].client.as_str(),
                edges[0].server.as_str(),
                edges[0].calls
            ),
            ("api", "lambda", 6),
            "consumers first {consumers_first}: {edges:?}"
        );
        assert_eq!(edges[0].connection, ConnectionType::MessagingSystem);
    }
    Ok(())
}

#[test]
fn oversized_names_and_values_are_truncated_at_ingest_with_a_marker() -> anyhow::Result<()> {
    let dir = TempDir::new("caps");
    let store = Store::open(config(&dir, 0))?;
    let huge_service = "s".repeat(100_000);
    let t = TwoServiceTrace::new(1, now() - 60_000 * MS);
    let mut request = export(&huge_service, t.api_spans());
    request.resource_spans[0].scope_spans[0].spans[0]
        .attributes
        .push(kv("big", "v".repeat(100_000)));
    let report = store.write_traces(request)?;
    assert_eq!(report.rejected_spans, 0);
    let services = store.services()?;
    assert_eq!(services.len(), 1);
    assert!(services[0].len() < 300, "{} bytes", services[0].len());
    assert!(
        services[0].ends_with("bytes truncated]"),
        "{}",
        &services[0][200..]
    );
    let spans = store.trace(t.trace_id)?;
    let big = spans
        .iter()
        .flat_map(|s| &s.span.attributes)
        .find(|kv| kv.key == "big")
        .expect("the attribute is kept");
    let text = format!("{:?}", big.value);
    assert!(
        text.len() < 17_000 && text.contains("bytes truncated]"),
        "{} bytes",
        text.len()
    );
    Ok(())
}
