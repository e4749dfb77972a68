//! Ingest load benchmark: a Rust OTLP/gRPC load client sends batches of 512 seeds-like spans
//! (8 attributes each) concurrently to the collector over loopback, with the real durable store
//! behind it, and reports spans/s end to end; the same payloads decoded by prost alone, measured
//! in the same run, are the baseline.
//!
//! `cargo bench -p throughline-collector --bench ingest` (env: `INGEST_BENCH_SECS`, default 5;
//! `INGEST_BENCH_SENDERS`, default 8).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use throughline_collector::{Collector, CollectorConfig};
use throughline_store::testdata::seeds_like_batch;
use throughline_store::{ExportTraceServiceRequest, SpanSink, Store, StoreConfig};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

const TRACES_PER_BATCH: usize = 128; // four spans each: 512 spans per export
const DISTINCT_BATCHES: u64 = 64;

/// Sends pre-encoded request bytes, so the client spends no time encoding.
#[derive(Debug, Clone, Default)]
struct PreEncoded;

impl Codec for PreEncoded {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = PreEncoded;
    type Decoder = PreEncoded;
    fn encoder(&mut self) -> Self::Encoder {
        PreEncoded
    }
    fn decoder(&mut self) -> Self::Decoder {
        PreEncoded
    }
}

impl Encoder for PreEncoded {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for PreEncoded {
    type Item = ExportTraceServiceResponse;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, tonic::Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        ExportTraceServiceResponse::decode(bytes)
            .map(Some)
            .map_err(|e| tonic::Status::internal(e.to_string()))
    }
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let secs = env_or("INGEST_BENCH_SECS", 5);
    let senders = env_or("INGEST_BENCH_SENDERS", 8);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);

    // Distinct batches (distinct trace ids), encoded once; sending cycles through them with the
    // batch number shifted so every export carries new traces.
    let payloads: Vec<Bytes> = (0..DISTINCT_BATCHES)
        .map(|b| {
            seeds_like_batch(b, TRACES_PER_BATCH, now)
                .encode_to_vec()
                .into()
        })
        .collect();
    let spans_per_batch = (TRACES_PER_BATCH * 4) as u64;
    let bytes_per_span = payloads[0].len() as f64 / spans_per_batch as f64;
    println!(
        "payload: {spans_per_batch} spans per export, {bytes_per_span:.0} bytes per span encoded"
    );

    // Baseline: the same payloads decoded by prost alone, on one thread.
    let started = Instant::now();
    let mut decoded_spans = 0u64;
    while started.elapsed() < Duration::from_secs(secs.min(3)) {
        for p in &payloads {
            let request = ExportTraceServiceRequest::decode(p.clone()).expect("valid payload");
            decoded_spans += request
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len() as u64)
                .sum::<u64>();
        }
    }
    let baseline = decoded_spans as f64 / started.elapsed().as_secs_f64();
    println!("baseline  prost decode alone (1 thread): {baseline:>12.0} spans/s");

    // For attribution: the same payloads decoded and written straight into a store, one thread,
    // no network and no collector.
    let direct_dir = tempfile::tempdir().expect("a temporary directory");
    let direct = Store::open(StoreConfig::new(direct_dir.path())).expect("store opens");
    let budget = Duration::from_secs(secs.min(3));
    let mut timed = Duration::ZERO;
    let mut written = 0u64;
    let mut batch = 1_000_000u64;
    while timed < budget {
        // Building the batch is not timed; decoding and writing it are.
        let bytes = seeds_like_batch(batch, TRACES_PER_BATCH, now).encode_to_vec();
        batch += 1;
        let t = Instant::now();
        let decoded = ExportTraceServiceRequest::decode(&bytes[..]).expect("valid payload");
        written += direct
            .write_traces(decoded)
            .expect("store writes")
            .accepted_spans;
        timed += t.elapsed();
    }
    let direct_rate = written as f64 / timed.as_secs_f64();
    println!(
        "context   prost decode + Store::write_traces, 1 thread, no network: {direct_rate:>8.0} spans/s"
    );
    drop(direct);

    // The collector, in its own runtime, over a durable store in a temporary directory.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let store = Arc::new(Store::open(StoreConfig::new(dir.path())).expect("store opens"));
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let config = CollectorConfig {
        grpc_addr: loopback,
        http_addr: loopback,
        query_addr: loopback,
        ..CollectorConfig::default()
    };
    let running = server_rt
        .block_on(Collector::start(config, store.clone(), store.clone(), None))
        .expect("collector starts");
    let url = format!("http://{}", running.grpc_addr);

    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let payloads = Arc::new(payloads);
    let acked = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    client_rt.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(url)
            .expect("url")
            .connect()
            .await
            .expect("connects");
        let tasks: Vec<_> = (0..senders)
            .map(|sender| {
                let (payloads, acked, refused, channel) = (
                    payloads.clone(),
                    acked.clone(),
                    refused.clone(),
                    channel.clone(),
                );
                tokio::spawn(async move {
                    let mut grpc = tonic::client::Grpc::new(channel);
                    let path = http::uri::PathAndQuery::from_static(
                        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                    );
                    let mut i = sender;
                    while Instant::now() < deadline {
                        let payload = payloads[(i % DISTINCT_BATCHES) as usize].clone();
                        i += senders;
                        grpc.ready().await.expect("channel ready");
                        match grpc
                            .unary(tonic::Request::new(payload), path.clone(), PreEncoded)
                            .await
                        {
                            Ok(_) => acked.fetch_add(spans_per_batch, Ordering::Relaxed),
                            Err(_) => refused.fetch_add(1, Ordering::Relaxed),
                        };
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("sender");
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let spans = acked.load(Ordering::Relaxed);
    println!(
        "collector OTLP/gRPC → durable store ({senders} senders): {:>12.0} spans/s  ({spans} spans acknowledged in {elapsed:.1}s, {} exports refused)",
        spans as f64 / elapsed,
        refused.load(Ordering::Relaxed)
    );
    println!(
        "ratio to the prost-decode baseline: {:.2}",
        spans as f64 / elapsed / baseline
    );
    server_rt.block_on(running.shutdown());
}
