//! Store benchmark: durable ingest of seeds-like OTLP batches against a prost-decode baseline,
//! then trace-by-id and search latencies, resident memory and disk bytes per span.
//!
//! ```text
//! cargo bench -p throughline-store --bench store -- [--spans N] [--threads T] [--dir PATH] [--keep]
//! ```

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prost::Message;
use throughline_store::testdata::{TwoServiceTrace, mix64, seeds_like_batch};
use throughline_store::*;

const SPANS_PER_BATCH: usize = 512;
const TRACES_PER_BATCH: usize = SPANS_PER_BATCH / 4;
/// Batches generated ahead of each measured ingest round (kept out of the measurement).
const BATCHES_PER_ROUND: usize = 256;
const BATCH_SPACING_NANOS: u64 = 10_000_000;

struct Args {
    spans: usize,
    threads: usize,
    dir: PathBuf,
    keep: bool,
    queries: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        spans: 1_000_000,
        threads: 2,
        dir: std::env::temp_dir().join(format!("throughline-store-bench-{}", std::process::id())),
        keep: false,
        queries: 500,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--spans" => args.spans = it.next().and_then(|v| v.parse().ok()).unwrap_or(args.spans),
            "--threads" => {
                args.threads = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(args.threads)
            }
            "--queries" => {
                args.queries = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(args.queries)
            }
            "--dir" => args.dir = it.next().map(PathBuf::from).unwrap_or(args.dir),
            "--keep" => args.keep = true,
            _ => {} // `cargo bench` passes `--bench`
        }
    }
    args
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn dir_bytes(dir: &PathBuf) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Runs `work(i)` for i in 0..n on `threads` threads; returns the wall time.
fn parallel(n: usize, threads: usize, work: &(dyn Fn(usize) + Sync)) -> Duration {
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    work(i);
                }
            });
        }
    });
    started.elapsed()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args();
    let _ = std::fs::remove_dir_all(&args.dir);
    let batches = args.spans.div_ceil(SPANS_PER_BATCH);
    let base = now_nanos() - batches as u64 * BATCH_SPACING_NANOS - 3_600_000_000_000;
    let store = Store::open(StoreConfig::new(&args.dir))?;
    println!(
        "store bench: {} spans in {batches} batches of {SPANS_PER_BATCH}, {} threads, dir {}",
        batches * SPANS_PER_BATCH,
        args.threads,
        args.dir.display()
    );

    let mut decode_time = Duration::ZERO;
    let mut ingest_time = Duration::ZERO;
    let mut payload_bytes = 0u64;
    let mut done = 0usize;
    while done < batches {
        let round = BATCHES_PER_ROUND.min(batches - done);
        let payloads: Vec<Vec<u8>> = (done..done + round)
            .map(|b| {
                seeds_like_batch(
                    b as u64,
                    TRACES_PER_BATCH,
                    base + b as u64 * BATCH_SPACING_NANOS,
                )
                .encode_to_vec()
            })
            .collect();
        payload_bytes += payloads.iter().map(|p| p.len() as u64).sum::<u64>();
        // Baseline: the same payloads decoded by prost alone, same threads, same run.
        decode_time += parallel(round, args.threads, &|i| {
            let req = ExportTraceServiceRequest::decode(&payloads[i][..]).expect("decode");
            std::hint::black_box(req);
        });
        ingest_time += parallel(round, args.threads, &|i| {
            let req = ExportTraceServiceRequest::decode(&payloads[i][..]).expect("decode");
            let report = store.write_traces(req).expect("write");
            assert_eq!(report.accepted_spans as usize, SPANS_PER_BATCH);
        });
        done += round;
        if done.is_multiple_of(BATCHES_PER_ROUND * 40) {
            println!("  {} spans ingested", done * SPANS_PER_BATCH);
        }
    }
    let spans = (batches * SPANS_PER_BATCH) as f64;
    println!(
        "payload: {:.0} bytes/span encoded",
        payload_bytes as f64 / spans
    );
    println!(
        "ingest (decode + durable write + index + derived): {:.0} spans/s ({:.2} s)",
        spans / ingest_time.as_secs_f64(),
        ingest_time.as_secs_f64()
    );
    println!(
        "baseline (prost decode alone):                      {:.0} spans/s ({:.2} s)",
        spans / decode_time.as_secs_f64(),
        decode_time.as_secs_f64()
    );

    let traces = batches * TRACES_PER_BATCH;
    let mut by_id = Vec::with_capacity(args.queries);
    for q in 0..args.queries {
        let n = mix64(q as u64 ^ 0xBEEF) % traces as u64;
        let id = TwoServiceTrace::new(n, 0).trace_id;
        let started = Instant::now();
        let spans = store.trace(id)?;
        by_id.push(started.elapsed());
        assert_eq!(spans.len(), 4, "trace {n}");
    }
    by_id.sort();
    println!(
        "trace by id ({} random ids): p50 {:?} p99 {:?} max {:?}",
        by_id.len(),
        percentile(&by_id, 0.5),
        percentile(&by_id, 0.99),
        by_id.last().copied().unwrap_or_default()
    );

    let end = base + batches as u64 * BATCH_SPACING_NANOS;
    let mut search = Vec::with_capacity(args.queries);
    for q in 0..args.queries {
        let service = format!("api-{}", q % 8);
        // Windows of 60 s anywhere in the data, or the whole range for one query in four.
        let (start, stop) = if q % 4 == 0 {
            (base, end)
        } else {
            let from = base + mix64(q as u64) % (end - base).max(1);
            (from, from + 60_000_000_000)
        };
        let query = TraceQuery {
            service: Some(service),
            start_unix_nanos: start,
            end_unix_nanos: stop,
            limit: 20,
            ..Default::default()
        };
        let started = Instant::now();
        let found = store.find_traces(&query)?;
        search.push(started.elapsed());
        assert!(!found.is_empty() || stop.min(end) - start < 80 * BATCH_SPACING_NANOS);
    }
    search.sort();
    println!(
        "search by service and time, limit 20 ({} queries): p50 {:?} p99 {:?} max {:?}",
        search.len(),
        percentile(&search, 0.5),
        percentile(&search, 0.99),
        search.last().copied().unwrap_or_default()
    );
    store.flush()?;
    let disk = dir_bytes(&args.dir);
    println!(
        "resident memory: {} MiB now, {} MiB peak",
        rss_kib("VmRSS:") / 1024,
        rss_kib("VmHWM:") / 1024
    );
    println!(
        "disk: {} bytes, {:.1} bytes/span",
        disk,
        disk as f64 / spans
    );
    drop(store);
    let started = Instant::now();
    let store = Store::open(StoreConfig::new(&args.dir))?;
    let reopened = started.elapsed();
    let probe = TwoServiceTrace::new(mix64(7) % traces as u64, 0).trace_id;
    assert_eq!(
        store.trace(probe)?.len(),
        4,
        "a stored trace after reopening"
    );
    println!("reopen (index files, head segment scan, derived-state checkpoint): {reopened:?}");
    drop(store);
    if !args.keep {
        let _ = std::fs::remove_dir_all(&args.dir);
    }
    Ok(())
}
