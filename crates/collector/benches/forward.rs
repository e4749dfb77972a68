//! Forwarding benchmark: a sender exports batches of 512 seeds-like spans over OTLP/gRPC to a
//! forward-only collector whose exporter queues them persistently and forwards them to a second
//! collector (forward-only, keeps nothing); reports spans/s from the first send until the
//! upstream has received every span. The baseline, in the same run: the same batches sent
//! straight to the upstream collector (no forwarder, no queue), and the forwarder with its queue
//! on disk, on disk with `--sync-writes`, and on tmpfs (in memory). Then the backlog recovery:
//! the queue is filled while no forwarder runs (an outage), and the time to drain it is
//! measured.
//!
//! `cargo bench -p throughline-collector --bench forward` (env: `FORWARD_BENCH_BATCHES`,
//! default 400 = 204,800 spans; `FORWARD_BENCH_BACKLOG_SPANS`, default 1,000,000).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use throughline_collector::export::{Destination, ExportDefaults, ExportSettings, Exporter};
use throughline_collector::{Collector, CollectorConfig, ForwardOnly, RunningCollector, Signal};
use throughline_store::testdata::seeds_like_batch;

const TRACES_PER_BATCH: usize = 128;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn loopback() -> CollectorConfig {
    let a = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    CollectorConfig {
        grpc_addr: a,
        http_addr: a,
        query_addr: a,
        ..CollectorConfig::default()
    }
}

async fn start(exporter: Option<Arc<Exporter>>) -> RunningCollector {
    Collector::start_forwarding(
        loopback(),
        Arc::new(ForwardOnly),
        Arc::new(ForwardOnly),
        None,
        exporter,
    )
    .await
    .expect("collector starts")
}

fn received(c: &RunningCollector) -> u64 {
    c.ingest().metrics().received(Signal::Traces)
}

async fn send(url: String, batches: u64, start: u64) -> u64 {
    let mut client = TraceServiceClient::connect(url).await.expect("connects");
    let mut spans = 0;
    for b in 0..batches {
        let request = seeds_like_batch(b, TRACES_PER_BATCH, start);
        spans += 4 * TRACES_PER_BATCH as u64;
        client.export(request).await.expect("acknowledged");
    }
    spans
}

async fn wait_until(c: &RunningCollector, spans: u64) {
    while received(c) < spans {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Sends `batches` through a forwarder whose queues live under `root` to an upstream
/// collector; spans/s from the first send until the upstream received the last span.
async fn through_forwarder(root: &std::path::Path, sync: bool, batches: u64, now: u64) -> f64 {
    let upstream = start(None).await;
    let destination = Destination::parse(
        "bench",
        &format!("grpc://{}", upstream.grpc_addr),
        &ExportDefaults::default(),
    )
    .expect("url");
    let mut settings = ExportSettings::new(vec![destination], root.join("export"));
    settings.queue.sync_writes = sync;
    let exporter = Exporter::open(settings).expect("opens");
    let forwarder = start(Some(Arc::clone(&exporter))).await;
    let began = Instant::now();
    let spans = send(format!("http://{}", forwarder.grpc_addr), batches, now).await;
    wait_until(&upstream, spans).await;
    let rate = spans as f64 / began.elapsed().as_secs_f64();
    forwarder.shutdown().await;
    upstream.shutdown().await;
    rate
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let batches = env("FORWARD_BENCH_BATCHES", 400);
    let backlog = env("FORWARD_BENCH_BACKLOG_SPANS", 1_000_000);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);

    // Baseline: straight to the upstream.
    let direct = start(None).await;
    let began = Instant::now();
    let spans = send(format!("http://{}", direct.grpc_addr), batches, now).await;
    wait_until(&direct, spans).await;
    let base = spans as f64 / began.elapsed().as_secs_f64();
    println!(
        "direct to the upstream (no forwarder):                   {base:>10.0} spans/s ({spans} spans)"
    );
    direct.shutdown().await;

    // Through a forwarder, its queue on disk (the default), on disk with fdatasync per append
    // (--sync-writes), and on tmpfs (/dev/shm: the same code with the disk taken out, i.e.
    // an in-memory queue).
    let disk = tempfile::tempdir().expect("tempdir");
    let shm = tempfile::tempdir_in("/dev/shm").ok();
    let mut runs = vec![
        ("persistent queue on disk", disk.path().to_owned(), false),
        (
            "persistent queue, --sync-writes",
            disk.path().join("sync"),
            true,
        ),
    ];
    match &shm {
        Some(dir) => runs.push(("queue in memory (tmpfs)", dir.path().to_owned(), false)),
        None => println!("(no /dev/shm: the in-memory run is skipped)"),
    }
    for (label, root, sync) in runs {
        let queued = through_forwarder(&root, sync, batches, now).await;
        println!(
            "through the forwarder, {label:<32} {queued:>10.0} spans/s ({:.0} % of direct)",
            100.0 * queued / base
        );
    }

    // Backlog recovery: fill a queue with no forwarder running, then drain it.
    let upstream = start(None).await;
    let destination = Destination::parse(
        "bench",
        &format!("grpc://{}", upstream.grpc_addr),
        &ExportDefaults::default(),
    )
    .expect("url");
    let dir = tempfile::tempdir().expect("tempdir");
    let exporter = Exporter::open(ExportSettings::new(
        vec![destination],
        dir.path().join("export"),
    ))
    .expect("opens");
    let per_batch = 4 * TRACES_PER_BATCH as u64;
    let filled = Instant::now();
    let mut queued_spans = 0;
    let mut b = 0;
    while queued_spans < backlog {
        let body = seeds_like_batch(b, TRACES_PER_BATCH, now).encode_to_vec();
        exporter
            .enqueue(Signal::Traces, &body, per_batch)
            .expect("queued");
        queued_spans += per_batch;
        b += 1;
    }
    let depth = exporter.outputs()[0].queue.depth();
    println!(
        "backlog: {queued_spans} spans, {} MB queued in {:.1} s",
        depth.bytes >> 20,
        filled.elapsed().as_secs_f64()
    );
    let began = Instant::now();
    exporter.start();
    assert!(
        exporter.flush(Duration::from_secs(600)).await,
        "the backlog drains"
    );
    wait_until(&upstream, queued_spans).await;
    let secs = began.elapsed().as_secs_f64();
    println!(
        "backlog recovery: {queued_spans} spans drained in {secs:.1} s ({:.0} spans/s)",
        queued_spans as f64 / secs
    );
}
