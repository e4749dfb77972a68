//! Cold start (process start to first invocation handled) and warm per-invocation overhead of
//! the Lambda host, with the `echo_function` example (the real `lambda_runtime` crate) and a
//! Python function under `awslambdaric`. Baseline in the same run: spawning `/bin/true` and
//! waiting for it.
//!
//! `cargo bench -p throughline-lambda-host --bench environment -- --warm-up-time 1 --measurement-time 3`
//! after `cargo build --release -p throughline-lambda-host --example echo_function`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use throughline_lambda_host::{Environment, EnvironmentSpec, InvocationOutcome, PlatformLog};

#[derive(Debug)]
struct Discard;

impl PlatformLog for Discard {
    fn line(&self, _line: &str) {}
}

fn echo_function() -> PathBuf {
    // The bench runs from target/<profile>/deps; cargo puts examples in target/<profile>/examples.
    let exe = std::env::current_exe().expect("the bench knows its own path");
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("examples/echo_function"))
        .expect("the bench sits in target/<profile>/deps");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --release -p throughline-lambda-host --example echo_function` first",
        path.display()
    );
    path
}

fn spec(command: Vec<std::ffi::OsString>) -> EnvironmentSpec {
    EnvironmentSpec {
        command,
        function_name: "bench".into(),
        function_arn: "arn:aws:lambda:us-east-1:000000000000:function:bench".into(),
        memory_mb: 128,
        region: "us-east-1".into(),
        handler: "bootstrap".into(),
        timeout: Duration::from_secs(10),
        init_timeout: Duration::from_secs(10),
        shutdown_grace: Duration::from_secs(2),
        environment: [
            (
                "PYTHONPATH".to_owned(),
                concat!(env!("CARGO_MANIFEST_DIR"), "/tests/functions").to_owned(),
            ),
            (
                "OUT_DIR".to_owned(),
                std::env::temp_dir().display().to_string(),
            ),
        ]
        .into(),
        log: Arc::new(Discard),
    }
}

const EVENT: &str = r#"{"Records":[{"messageId":"m-1","receiptHandle":"rh","body":"bench","attributes":{"ApproximateReceiveCount":"1"},"messageAttributes":{},"md5OfBody":"","eventSource":"aws:sqs","eventSourceARN":"arn:aws:sqs:us-east-1:000000000000:q","awsRegion":"us-east-1"}]}"#;

async fn cold_start(command: &[std::ffi::OsString]) -> Duration {
    let started = Instant::now();
    let mut env = Environment::start(spec(command.to_vec()))
        .await
        .expect("environment starts");
    let outcome = env
        .invoke("bench-request", Bytes::from_static(EVENT.as_bytes()))
        .await;
    let elapsed = started.elapsed();
    assert!(
        matches!(outcome, InvocationOutcome::Response(_)),
        "{outcome:?}"
    );
    env.kill().await;
    elapsed
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let echo = vec![echo_function().into_os_string()];
    let python = throughline_testkit::python();
    let python_function = vec![
        python.into_os_string(),
        "-m".into(),
        "awslambdaric".into(),
        "handlers.handler".into(),
    ];

    let mut group = c.benchmark_group("cold_start");
    group.sample_size(10);
    group.bench_function("baseline_spawn_bin_true", |b| {
        b.iter(|| {
            std::process::Command::new("/bin/true")
                .status()
                .expect("/bin/true runs")
        })
    });
    group.bench_function("echo_function_lambda_runtime", |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            let echo = echo.clone();
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += cold_start(&echo).await;
                }
                total
            }
        })
    });
    group.bench_function("python_awslambdaric", |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            let python_function = python_function.clone();
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += cold_start(&python_function).await;
                }
                total
            }
        })
    });
    group.finish();

    let mut group = c.benchmark_group("warm_invocation");
    let env = runtime.block_on(async {
        let mut env = Environment::start(spec(echo.clone()))
            .await
            .expect("environment starts");
        env.invoke("warm-up", Bytes::from_static(EVENT.as_bytes()))
            .await;
        tokio::sync::Mutex::new(env)
    });
    // Event offered, thaw, runtime's /next answered, response posted, runtime back in /next,
    // freeze: everything the host adds around a handler that does nothing.
    group.bench_function("echo_function_lambda_runtime", |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            let env = &env;
            async move {
                let mut env = env.lock().await;
                let started = Instant::now();
                for _ in 0..iters {
                    let outcome = env
                        .invoke("bench-request", Bytes::from_static(EVENT.as_bytes()))
                        .await;
                    assert!(matches!(outcome, InvocationOutcome::Response(_)));
                }
                started.elapsed()
            }
        })
    });
    group.finish();
    runtime.block_on(env.into_inner().shut_down());
}

criterion_group!(host, benches);
criterion_main!(host);
