//! `throughline collector --lambda-extension` under the local Lambda host, as Lambda runs it from
//! `/opt/extensions`: the function (AWS's runtime interface client with the OpenTelemetry Python
//! SDK, flushing before it answers) exports to the extension on localhost; the extension queues
//! each export on disk, and after the runtime's `platform.runtimeDone` flushes upstream before
//! it lets the environment freeze. The upstream is a throughline collector over a store.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use throughline_collector::{Collector, CollectorConfig, RunningCollector};
use throughline_lambda_host::{Environment, EnvironmentSpec, InvocationOutcome, PlatformLog};
use throughline_store::{Store, StoreConfig, TraceId, TraceReader};
use throughline_testkit::free_loopback_addr;

#[derive(Debug, Default)]
struct Discard;

impl PlatformLog for Discard {
    fn line(&self, _: &str) {}
}

/// The extension's wrapper, as `deploy/docker/throughline-collector-extension` is on Lambda:
/// a file in the extensions directory that execs the collector under its own name.
fn extension_wrapper(dir: &Path, otlp_http: SocketAddr, upstream: SocketAddr) -> PathBuf {
    let path = dir.join("throughline-collector-extension");
    let script = format!(
        "#!/bin/sh\nexec {bin} collector --lambda-extension --extension-name \"${{0##*/}}\" \
         --data-dir {data} --grpc-addr {grpc} --http-addr {otlp_http} \
         --export-otlp http://{upstream} --export-retry-initial-ms 20 --export-retry-max-ms 100 \
         --export-timeout-ms 500 --extension-flush-timeout-ms 1500 2>>{log}\n",
        bin = env!("CARGO_BIN_EXE_throughline"),
        data = dir.join("extension-data").display(),
        grpc = free_loopback_addr(),
        log = dir.join("extension.log").display(),
    );
    std::fs::write(&path, script).expect("write the wrapper");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

fn spec(dir: &Path, otlp_http: SocketAddr, upstream: SocketAddr) -> EnvironmentSpec {
    let python = throughline_testkit::python();
    EnvironmentSpec {
        command: vec![
            python.into_os_string(),
            "-m".into(),
            "awslambdaric".into(),
            "otel_handler.handler".into(),
        ],
        function_name: "extension-test".into(),
        function_arn: "arn:aws:lambda:us-east-1:000000000000:function:extension-test".into(),
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
            ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{otlp_http}")),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect(),
        extensions: vec![extension_wrapper(dir, otlp_http, upstream)],
        sandbox_ports: Vec::new(),
        log: Arc::new(Discard),
        metrics: None,
    }
}

/// The upstream collector: OTLP/HTTP on `addr`, over a store in `dir`.
async fn upstream(addr: SocketAddr, dir: &Path) -> (RunningCollector, Arc<Store>) {
    let store = Arc::new(Store::open(StoreConfig::new(dir)).expect("open the store"));
    let config = CollectorConfig {
        grpc_addr: free_loopback_addr(),
        http_addr: addr,
        query_addr: free_loopback_addr(),
        ..CollectorConfig::default()
    };
    let running = Collector::start(config, store.clone(), store.clone(), None)
        .await
        .expect("start the upstream collector");
    (running, store)
}

/// Invokes with `name` and returns the span's trace id; the function's flush to the extension
/// must have been acknowledged.
async fn invoke(env: &mut Environment, name: &str, dir: &Path) -> TraceId {
    let payload = Bytes::from(serde_json::json!({ "name": name }).to_string());
    let outcome = env.invoke(&uuid(), payload).await;
    let InvocationOutcome::Response(body) = outcome else {
        panic!("{outcome:?}; extension log:\n{}", log(dir));
    };
    let answer: serde_json::Value = serde_json::from_slice(&body).expect("a JSON answer");
    assert_eq!(answer["flushed"], true, "{answer}");
    answer["trace_id"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no trace id in {answer}"))
}

fn uuid() -> String {
    format!("{:032x}", rand_id())
}

fn rand_id() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    (u128::from(h.finish()) << 64) | u128::from(std::process::id())
}

fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("extension.log")).unwrap_or_default()
}

fn span_names(store: &Store, trace: TraceId) -> Vec<String> {
    store
        .trace(trace)
        .expect("read the store")
        .into_iter()
        .map(|s| s.span.name)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_the_collector_through_the_extension_before_the_freeze() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (otlp_http, upstream_addr) = (free_loopback_addr(), free_loopback_addr());
    let mut env = Environment::start(spec(dir.path(), otlp_http, upstream_addr))
        .await
        .expect("start the environment");

    // The collector is unreachable: the function's flush still returns at once (the extension
    // acknowledged the spans into its queue), and the invocation ends normally.
    let first = invoke(&mut env, "while-upstream-down", dir.path()).await;
    assert_eq!(
        env.registered_extensions(),
        ["throughline-collector-extension"]
    );

    // Reachable again: the next invocation's flush sends both, and by the time the environment
    // is frozen (when `invoke` returns) the collector has them — nothing waits for a thaw.
    let (collector, store) = upstream(upstream_addr, &dir.path().join("store")).await;
    let second = invoke(&mut env, "while-upstream-up", dir.path()).await;
    assert_eq!(
        span_names(&store, second),
        ["while-upstream-up"],
        "{}",
        log(dir.path())
    );
    assert_eq!(
        span_names(&store, first),
        ["while-upstream-down"],
        "{}",
        log(dir.path())
    );
    env.shut_down().await;
    collector.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_the_extension_queue() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (otlp_http, upstream_addr) = (free_loopback_addr(), free_loopback_addr());
    let mut env = Environment::start(spec(dir.path(), otlp_http, upstream_addr))
        .await
        .expect("start the environment");
    let queued = invoke(&mut env, "queued-at-shutdown", dir.path()).await;
    let (collector, store) = upstream(upstream_addr, &dir.path().join("store")).await;
    assert!(
        span_names(&store, queued).is_empty(),
        "sent before SHUTDOWN"
    );
    // SHUTDOWN (spindown): the extension drains within the 2 s grace, then exits by itself.
    env.shut_down().await;
    assert_eq!(
        span_names(&store, queued),
        ["queued-at-shutdown"],
        "{}",
        log(dir.path())
    );
    assert!(
        log(dir.path()).contains("drained on SHUTDOWN"),
        "{}",
        log(dir.path())
    );
    collector.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_span_survives_kill_9_of_the_extension() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (otlp_http, upstream_addr) = (free_loopback_addr(), free_loopback_addr());
    let mut env = Environment::start(spec(dir.path(), otlp_http, upstream_addr))
        .await
        .expect("start the environment");
    let acknowledged = invoke(&mut env, "before-the-kill", dir.path()).await;
    // SIGKILL to the whole environment (function and extension), no SHUTDOWN.
    env.kill().await;

    // A new environment over the same queue directory (as a warm /tmp would be): the extension
    // reopens the queue and forwards what it had acknowledged.
    let (collector, store) = upstream(upstream_addr, &dir.path().join("store")).await;
    let mut env = Environment::start(spec(dir.path(), otlp_http, upstream_addr))
        .await
        .expect("restart the environment");
    let after = invoke(&mut env, "after-the-kill", dir.path()).await;
    assert_eq!(span_names(&store, after), ["after-the-kill"]);
    assert_eq!(
        span_names(&store, acknowledged),
        ["before-the-kill"],
        "{}",
        log(dir.path())
    );
    env.shut_down().await;
    collector.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_setting_fails_the_init_through_init_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spec = spec(dir.path(), free_loopback_addr(), free_loopback_addr());
    // No upstream at all: the wrapper without --export-otlp.
    let wrapper = dir.path().join("throughline-collector-extension");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec {} collector --lambda-extension --extension-name \"${{0##*/}}\" \
             --data-dir {} --grpc-addr {} --http-addr {} 2>>{}\n",
            env!("CARGO_BIN_EXE_throughline"),
            dir.path().join("extension-data").display(),
            free_loopback_addr(),
            free_loopback_addr(),
            dir.path().join("extension.log").display(),
        ),
    )
    .expect("write the wrapper");
    spec.extensions = vec![wrapper];
    let mut env = Environment::start(spec).await.expect("start");
    let outcome = env
        .invoke(&uuid(), Bytes::from_static(br#"{"name":"never"}"#))
        .await;
    let InvocationOutcome::Failed(reason) = &outcome else {
        panic!("{outcome:?}");
    };
    assert!(
        reason.contains("Extension.ConfigInvalid"),
        "{reason}; extension log:\n{}",
        log(dir.path())
    );
    assert!(
        log(dir.path()).contains("THROUGHLINE_EXPORT_OTLP"),
        "{}",
        log(dir.path())
    );
}
