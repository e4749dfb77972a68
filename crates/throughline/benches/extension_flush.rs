//! The function's invocation duration (the host's `REPORT` `Duration`, what Lambda bills) when
//! the function flushes its spans itself to a collector some network away, against flushing to
//! the collector as a Lambda extension on localhost, in the same run, with the same function
//! (AWS's `awslambdaric` with the OpenTelemetry Python SDK, `tests/extension_functions`).
//!
//! "Some network away" is a loopback TCP proxy that holds each chunk for `--delay-ms` (default
//! 20 ms) each way before the in-process collector; the baseline is the same collector without
//! the proxy. With the extension, the environment still runs the flush after the runtime's answer
//! (AWS's `PostRuntimeExtensionsDuration`), so the wall time of each whole invocation cycle is
//! printed too.
//!
//! `cargo bench -p throughline --bench extension_flush -- [--invocations N] [--delay-ms MS]`
//! (bounded: N invocations per case, default 40, after 3 warm-up ones).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use throughline_collector::{Collector, CollectorConfig, RunningCollector};
use throughline_lambda_host::{Environment, EnvironmentSpec, InvocationOutcome, PlatformLog};
use throughline_store::{Store, StoreConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Keeps the `Duration` of every `REPORT` line.
#[derive(Debug, Default)]
struct Reports(Mutex<Vec<f64>>);

impl PlatformLog for Reports {
    fn line(&self, line: &str) {
        if let Some(rest) = line.strip_prefix("REPORT ")
            && let Some(ms) = rest
                .split('\t')
                .find_map(|f| f.trim().strip_prefix("Duration: "))
                .and_then(|d| d.trim_end_matches(" ms").parse::<f64>().ok())
        {
            self.0.lock().unwrap_or_else(|p| p.into_inner()).push(ms);
        }
    }
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

fn python() -> PathBuf {
    let venv = std::env::var_os("THROUGHLINE_PY_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/work/py-venv"));
    let python = venv.join("bin/python");
    assert!(
        python.is_file(),
        "{} is missing: set THROUGHLINE_PY_VENV (scripts/python-venv makes it)",
        python.display()
    );
    python
}

fn extension_wrapper(dir: &Path, otlp_http: SocketAddr, upstream: SocketAddr) -> PathBuf {
    let path = dir.join("throughline-collector-extension");
    let script = format!(
        "#!/bin/sh\nexec {bin} collector --lambda-extension --extension-name \"${{0##*/}}\" \
         --data-dir {data} --grpc-addr {grpc} --http-addr {otlp_http} \
         --export-otlp http://{upstream} 2>>{log}\n",
        bin = env!("CARGO_BIN_EXE_throughline"),
        data = dir.join("extension-data").display(),
        grpc = free_addr(),
        log = dir.join("extension.log").display(),
    );
    std::fs::write(&path, script).expect("write the wrapper");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

fn spec(endpoint: SocketAddr, extensions: Vec<PathBuf>, log: Arc<Reports>) -> EnvironmentSpec {
    EnvironmentSpec {
        command: vec![
            python().into_os_string(),
            "-m".into(),
            "awslambdaric".into(),
            "otel_handler.handler".into(),
        ],
        function_name: "flush-bench".into(),
        function_arn: "arn:aws:lambda:us-east-1:000000000000:function:flush-bench".into(),
        memory_mb: 256,
        region: "us-east-1".into(),
        handler: "otel_handler.handler".into(),
        timeout: Duration::from_secs(20),
        init_timeout: Duration::from_secs(20),
        shutdown_grace: Duration::from_secs(2),
        environment: [
            (
                "PYTHONPATH",
                concat!(env!("CARGO_MANIFEST_DIR"), "/tests/extension_functions").to_owned(),
            ),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{endpoint}")),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect(),
        extensions,
        sandbox_ports: Vec::new(),
        log,
        metrics: None,
    }
}

async fn upstream(dir: &Path) -> (RunningCollector, SocketAddr) {
    let store = Arc::new(Store::open(StoreConfig::new(dir)).expect("open the store"));
    let config = CollectorConfig {
        grpc_addr: free_addr(),
        http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        query_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..CollectorConfig::default()
    };
    let running = Collector::start(config, store.clone(), store, None)
        .await
        .expect("start the collector");
    let addr = running.http_addr;
    (running, addr)
}

/// A TCP proxy to `target` that holds every chunk `delay` before passing it on, each way.
async fn delaying_proxy(target: SocketAddr, delay: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(target).await else {
                    return;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::join!(pipe(cr, sw, delay), pipe(sr, cw, delay));
            });
        }
    });
    addr
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        tokio::time::sleep(delay).await;
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

struct Figures {
    report_ms: Vec<f64>,
    cycle_ms: Vec<f64>,
}

async fn run_case(spec: EnvironmentSpec, reports: &Reports, warm_up: usize, n: usize) -> Figures {
    let mut env = Environment::start(spec)
        .await
        .expect("start the environment");
    let mut cycle_ms = Vec::new();
    for i in 0..warm_up + n {
        let started = Instant::now();
        let outcome = env
            .invoke(
                &format!("bench-{i}"),
                Bytes::from_static(br#"{"name":"bench"}"#),
            )
            .await;
        let InvocationOutcome::Response(body) = outcome else {
            panic!("{outcome:?}");
        };
        let answer: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(answer["flushed"], true, "{answer}");
        if i >= warm_up {
            cycle_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    env.shut_down().await;
    let all = std::mem::take(&mut *reports.0.lock().unwrap_or_else(|p| p.into_inner()));
    Figures {
        report_ms: all[warm_up..].to_vec(),
        cycle_ms,
    }
}

fn quantile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn flag(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; cargo test of benches passes nothing useful either way.
    let n = flag("--invocations", 40) as usize;
    let delay = Duration::from_millis(flag("--delay-ms", 20));
    let warm_up = 3;
    let runtime = tokio::runtime::Runtime::new().expect("tokio");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let (collector, collector_addr) = upstream(&dir.path().join("store")).await;
        let remote = delaying_proxy(collector_addr, delay).await;
        let reports = Arc::new(Reports::default());
        let mut rows = Vec::new();

        let direct_local = run_case(spec(collector_addr, Vec::new(), reports.clone()), &reports, warm_up, n).await;
        rows.push(("baseline: own flush, collector on loopback", direct_local));
        let direct_remote = run_case(spec(remote, Vec::new(), reports.clone()), &reports, warm_up, n).await;
        rows.push(("own flush, collector behind the delay", direct_remote));
        let ext_dir = dir.path().join("ext");
        std::fs::create_dir_all(&ext_dir).expect("mkdir");
        let otlp_http = free_addr();
        let wrapper = extension_wrapper(&ext_dir, otlp_http, remote);
        let extension = run_case(spec(otlp_http, vec![wrapper], reports.clone()), &reports, warm_up, n).await;
        rows.push(("flush to the extension, collector behind the delay", extension));

        println!(
            "extension_flush: {n} invocations per case after {warm_up} warm-up, proxy delay {} ms each way",
            delay.as_millis()
        );
        println!(
            "{:<54} {:>10} {:>10} {:>12} {:>12}",
            "case", "REPORT p50", "REPORT p90", "cycle p50", "cycle p90"
        );
        for (name, f) in &rows {
            println!(
                "{name:<54} {:>8.2}ms {:>8.2}ms {:>10.2}ms {:>10.2}ms",
                quantile(&f.report_ms, 0.5),
                quantile(&f.report_ms, 0.9),
                quantile(&f.cycle_ms, 0.5),
                quantile(&f.cycle_ms, 0.9),
            );
        }
        collector.shutdown().await;
    });
}
