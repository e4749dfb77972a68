//! One binary trace export of 512 spans shaped like the seeds' (`seeds_like_batch`: four-span
//! traces, eight attributes a span, two resources) read as the collector's OTLP/HTTP receiver
//! reads it: in place (`EncodedTraces::decode`: the spans' bytes kept, a view of each read,
//! every string checked), against the baseline in the same run, prost's decode of the whole
//! request into owned messages. Both are given the request's bytes and free what they made.
//!
//!   cargo bench -p throughline-store --bench read_in_place

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prost::Message as _;
use throughline_store::testdata::seeds_like_batch;
use throughline_store::{EncodedTraces, ExportTraceServiceRequest};

fn read(c: &mut Criterion) {
    let bytes = Bytes::from(seeds_like_batch(0, 128, 1_700_000_000_000_000_000).encode_to_vec());
    let mut group = c.benchmark_group("trace export of 512 spans");
    group.throughput(Throughput::Elements(512));
    group.bench_function("prost decode (baseline)", |b| {
        b.iter(|| ExportTraceServiceRequest::decode(black_box(bytes.clone())).expect("valid"))
    });
    group.bench_function("read in place", |b| {
        b.iter(|| EncodedTraces::decode(black_box(bytes.clone())).expect("valid"))
    });
    group.finish();
}

criterion_group!(benches, read);
criterion_main!(benches);
