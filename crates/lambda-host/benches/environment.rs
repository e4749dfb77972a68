//! Cold start (process start to first invocation handled) and warm per-invocation overhead of
//! the Lambda host, with the `echo_function` example (the real `lambda_runtime` crate) and a
//! Python function under `awslambdaric`. Baselines in the same run: for the cold start, spawning
//! `/bin/true` and waiting for it; for the warm invocation, what no host can avoid (see
//! [`BareExchange`]): two bare HTTP/1.1 exchanges on a loopback connection with another process,
//! the head of its next request, and a SIGCONT/SIGSTOP pair to its process group. The bench
//! binary plays that other process itself (started again with [`BARE_RUNTIME_ENV`] set).
//!
//! `cargo bench -p throughline-lambda-host --bench environment -- --warm-up-time 1 --measurement-time 3`
//! after `cargo build --release -p throughline-lambda-host --example echo_function`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use criterion::{Criterion, criterion_group};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use throughline_lambda_host::{Environment, EnvironmentSpec, InvocationOutcome, PlatformLog};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufStream};
use tokio::net::{TcpListener, TcpStream};

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
        extensions: Vec::new(),
        sandbox_ports: Vec::new(),
        log: Arc::new(Discard),
        metrics: None,
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
    // What any host pays, measured beside it: the same exchanges with a bare peer process.
    let bare = runtime.block_on(BareExchange::start());
    let bare = tokio::sync::Mutex::new(bare);
    group.bench_function("baseline_bare_exchanges_and_stop_cont", |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            let bare = &bare;
            async move {
                let mut bare = bare.lock().await;
                let started = Instant::now();
                for _ in 0..iters {
                    bare.invoke(EVENT.as_bytes()).await;
                }
                started.elapsed()
            }
        })
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
    bare.into_inner().stop();
}

criterion_group!(host, benches);

fn main() {
    if let Ok(addr) = std::env::var(BARE_RUNTIME_ENV) {
        bare_runtime(&addr);
        return;
    }
    host();
    Criterion::default().configure_from_args().final_summary();
}

/// Set in the bench's own child process: it then plays [`bare_runtime`] against this address.
const BARE_RUNTIME_ENV: &str = "THROUGHLINE_BENCH_BARE_RUNTIME";

const NEXT_REQUEST: &[u8] =
    b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n";

/// The least a runtime does per invocation, with no HTTP library and no JSON: ask for the next
/// event, post it back as the response, read the answer; until the connection closes.
fn bare_runtime(addr: &str) {
    let stream = std::net::TcpStream::connect(addr).expect("the bench listens");
    stream.set_nodelay(true).expect("nodelay");
    let mut writer = stream.try_clone().expect("a second handle on the stream");
    let mut reader = BufReader::new(stream);
    loop {
        if writer.write_all(NEXT_REQUEST).is_err() {
            return;
        }
        let Some(event) = read_message_blocking(&mut reader) else {
            return;
        };
        let head = format!(
            "POST /2018-06-01/runtime/invocation/bench-request/response HTTP/1.1\r\n\
             host: 127.0.0.1\r\ncontent-length: {}\r\n\r\n",
            event.len()
        );
        if writer.write_all(head.as_bytes()).is_err() || writer.write_all(&event).is_err() {
            return;
        }
        if read_message_blocking(&mut reader).is_none() {
            return;
        }
    }
}

/// One HTTP/1.1 message (head, then a `content-length` body); `None` once the peer is gone.
fn read_message_blocking(reader: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut length = 0;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        length = content_length(&line).unwrap_or(length);
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(body)
}

async fn read_message(reader: &mut (impl AsyncBufRead + Unpin)) -> Vec<u8> {
    let mut length = 0;
    let mut line = String::new();
    loop {
        line.clear();
        let read = reader.read_line(&mut line).await.expect("the peer writes");
        assert!(read > 0, "the bare runtime closed its connection");
        if line == "\r\n" {
            break;
        }
        length = content_length(&line).unwrap_or(length);
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await.expect("a whole body");
    body
}

fn content_length(line: &str) -> Option<usize> {
    let (name, value) = line.split_once(':')?;
    if !name.eq_ignore_ascii_case("content-length") {
        return None;
    }
    value.trim().parse().ok()
}

/// The warm invocation's irreducible part, against [`bare_runtime`] in its own process group:
/// thaw it (SIGCONT), answer its pending `/next` with the event, read its response and answer
/// 202, read the head of its next `/next`, freeze it (SIGSTOP). The host does each of these
/// too; what it adds is its own work around them.
struct BareExchange {
    child: Child,
    pgid: Pid,
    stream: BufStream<TcpStream>,
}

impl BareExchange {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local address");
        let exe = std::env::current_exe().expect("the bench knows its own path");
        let child = Command::new(exe)
            .env(BARE_RUNTIME_ENV, addr.to_string())
            .process_group(0)
            .spawn()
            .expect("the bench starts itself as the bare runtime");
        let pgid = Pid::from_raw(i32::try_from(child.id()).expect("a pid fits an i32"));
        let (stream, _) = listener.accept().await.expect("the bare runtime connects");
        stream.set_nodelay(true).expect("nodelay");
        let mut stream = BufStream::new(stream);
        read_message(&mut stream).await;
        killpg(pgid, Signal::SIGSTOP).expect("SIGSTOP to the bare runtime");
        Self {
            child,
            pgid,
            stream,
        }
    }

    async fn invoke(&mut self, event: &[u8]) {
        killpg(self.pgid, Signal::SIGCONT).expect("SIGCONT to the bare runtime");
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
             lambda-runtime-aws-request-id: bench-request\r\ncontent-length: {}\r\n\r\n",
            event.len()
        );
        self.stream.write_all(head.as_bytes()).await.expect("write");
        self.stream.write_all(event).await.expect("write");
        self.stream.flush().await.expect("flush");
        let response = read_message(&mut self.stream).await;
        assert_eq!(response, event, "the bare runtime echoes the event");
        self.stream
            .write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n")
            .await
            .expect("write");
        self.stream.flush().await.expect("flush");
        read_message(&mut self.stream).await;
        killpg(self.pgid, Signal::SIGSTOP).expect("SIGSTOP to the bare runtime");
    }

    fn stop(mut self) {
        let _ = killpg(self.pgid, Signal::SIGKILL);
        let _ = killpg(self.pgid, Signal::SIGCONT);
        let _ = self.child.wait();
    }
}
