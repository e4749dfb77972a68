//! `throughline lambda` as a user runs it: the binary, pointed at the broker through
//! `AWS_ENDPOINT_URL_SQS`, running a Python function under `awslambdaric`; it writes the
//! platform lines and the function's output to stdout and stops cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context;
use aws_credential_types::Credentials;
use aws_sdk_sqs::config::{BehaviorVersion, Region};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use throughline_broker::{Broker, BrokerConfig};
use throughline_testkit::ChildGuard;

const PATIENCE: Duration = Duration::from_secs(30);

fn functions_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../lambda-host/tests/functions")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_runs_a_function_and_stops_on_sigterm() -> anyhow::Result<()> {
    let python = tokio::task::spawn_blocking(throughline_testkit::python).await?;
    let broker_dir = tempfile::tempdir()?;
    let broker = Broker::open(BrokerConfig::new(broker_dir.path())).await?;
    let broker = broker.serve(tokio::net::TcpListener::bind("127.0.0.1:0").await?)?;
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(
                "AKIDTEST",
                "test-secret",
                None,
                None,
                "tests",
            ))
            .endpoint_url(broker.endpoint_url())
            .build(),
    );
    let queue_url = sqs
        .create_queue()
        .queue_name("work")
        .send()
        .await?
        .queue_url
        .context("queue url")?;
    let out = tempfile::tempdir()?;

    let mut host = ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_throughline"))
            .args([
                "lambda",
                "--queue",
                "work",
                "--function-name",
                "worker",
                "--",
            ])
            .arg(&python)
            .args(["-m", "awslambdaric", "handlers.handler"])
            .env("AWS_ENDPOINT_URL_SQS", broker.endpoint_url())
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
            .env("AWS_SECRET_ACCESS_KEY", "test-secret")
            .env("PYTHONPATH", functions_dir())
            .env("PYTHONUNBUFFERED", "1")
            .env("OUT_DIR", out.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("start throughline lambda")?,
    );
    let stdout = host.0.stdout.take().context("piped stdout")?;
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });

    sqs.send_message()
        .queue_url(&queue_url)
        .message_body("late")
        .send()
        .await?;
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|l: &String| l.starts_with("REPORT RequestId: "))
    {
        let line = tokio::task::block_in_place(|| lines.recv_timeout(PATIENCE))
            .with_context(|| format!("no REPORT line on stdout; got {seen:#?}"))?;
        seen.push(line);
    }
    assert!(
        seen.iter()
            .any(|l| l.starts_with("START RequestId: ") && l.ends_with(" Version: $LATEST")),
        "{seen:#?}"
    );
    assert!(
        seen.iter().any(|l| l == "handling 1 records"),
        "the function's stdout passes through: {seen:#?}"
    );
    assert!(
        seen.iter().any(|l| l.starts_with("END RequestId: ")),
        "{seen:#?}"
    );
    let report = seen
        .iter()
        .find(|l| l.starts_with("REPORT"))
        .context("REPORT")?;
    assert!(report.contains("\tInit Duration: "), "{report}");

    let invocation = std::fs::read_dir(out.path())?
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().starts_with("invocation-"))
        .context("the handler wrote its invocation")?;
    let seen_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(invocation.path())?)?;
    let function_pid = seen_json["pid"].as_i64().context("pid")? as i32;

    kill(Pid::from_raw(host.0.id() as i32), Signal::SIGTERM)?;
    let status = tokio::task::block_in_place(|| host.0.wait())?;
    assert!(
        status.success(),
        "the host exits cleanly on SIGTERM: {status}"
    );
    assert!(
        !Path::new(&format!("/proc/{function_pid}")).exists(),
        "the frozen function was stopped too"
    );
    broker.shutdown().await;
    Ok(())
}

#[test]
fn a_command_that_cannot_start_is_a_clear_error() -> anyhow::Result<()> {
    let output = Command::new(env!("CARGO_BIN_EXE_throughline"))
        .args(["lambda", "--queue", "work", "--", "/nonexistent/bootstrap"])
        .env("AWS_ENDPOINT_URL_SQS", "http://127.0.0.1:9")
        .env("AWS_REGION", "us-east-1")
        .output()?;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr
            .contains(r#"COMMAND: "/nonexistent/bootstrap" is not an executable file or on PATH"#),
        "{stderr}"
    );
    Ok(())
}

/// Against the local broker the host needs no AWS credentials, region or config files: an
/// environment with only the endpoint (and `PATH`, `HOME` empty) is enough.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_needs_no_credentials_for_a_loopback_endpoint() -> anyhow::Result<()> {
    let python = tokio::task::spawn_blocking(throughline_testkit::python).await?;
    let broker_dir = tempfile::tempdir()?;
    let broker = Broker::open(BrokerConfig::new(broker_dir.path())).await?;
    let broker = broker.serve(tokio::net::TcpListener::bind("127.0.0.1:0").await?)?;
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "tests"))
            .endpoint_url(broker.endpoint_url())
            .build(),
    );
    let queue_url = sqs
        .create_queue()
        .queue_name("work")
        .send()
        .await?
        .queue_url
        .context("queue url")?;
    let out = tempfile::tempdir()?;
    let home = tempfile::tempdir()?;
    let mut host = ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_throughline"))
            .args(["lambda", "--queue", "work", "--"])
            .arg(&python)
            .args(["-m", "awslambdaric", "handlers.handler"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", home.path())
            .env("AWS_ENDPOINT_URL_SQS", broker.endpoint_url())
            .env("PYTHONPATH", functions_dir())
            .env("OUT_DIR", out.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("start throughline lambda")?,
    );
    let stdout = host.0.stdout.take().context("piped stdout")?;
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    sqs.send_message()
        .queue_url(&queue_url)
        .message_body("hello")
        .send()
        .await?;
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|l: &String| l.starts_with("REPORT RequestId: "))
    {
        match tokio::task::block_in_place(|| lines.recv_timeout(PATIENCE)) {
            Ok(line) => seen.push(line),
            Err(_) => {
                let _ = host.0.kill();
                let output = host.0.stderr.take().map(std::io::read_to_string);
                anyhow::bail!(
                    "no invocation with an empty environment; stdout {seen:#?}, stderr {output:?}"
                );
            }
        }
    }
    kill(Pid::from_raw(host.0.id() as i32), Signal::SIGTERM)?;
    let status = tokio::task::block_in_place(|| host.0.wait())?;
    assert!(status.success(), "{status}");
    broker.shutdown().await;
    Ok(())
}

/// With `OTEL_LOGS_EXPORTER=otlp` (as `throughline up` sets it) the platform lines also reach the
/// collector as log records under the function's name, in the trace the record carried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_lines_reach_the_collector_as_logs_in_the_records_trace() -> anyhow::Result<()> {
    use std::sync::Arc;
    use throughline_store::{LogQuery, SpanSink, Store, StoreConfig, TraceId, TraceReader};

    let python = tokio::task::spawn_blocking(throughline_testkit::python).await?;
    let store_dir = tempfile::tempdir()?;
    let store = Arc::new(Store::open(StoreConfig::new(store_dir.path()))?);
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let sink: Arc<dyn SpanSink> = store.clone();
    let reader: Arc<dyn TraceReader> = store.clone();
    let collector = throughline_collector::Collector::start(
        throughline_collector::CollectorConfig {
            grpc_addr: loopback,
            http_addr: loopback,
            query_addr: loopback,
            ..Default::default()
        },
        sink,
        reader,
        None,
    )
    .await?;
    let broker_dir = tempfile::tempdir()?;
    let broker = Broker::open(BrokerConfig::new(broker_dir.path())).await?;
    let broker = broker.serve(tokio::net::TcpListener::bind("127.0.0.1:0").await?)?;
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "tests"))
            .endpoint_url(broker.endpoint_url())
            .build(),
    );
    let queue_url = sqs
        .create_queue()
        .queue_name("logged")
        .send()
        .await?
        .queue_url
        .context("queue url")?;
    let out = tempfile::tempdir()?;
    let mut host = ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_throughline"))
            .args([
                "lambda",
                "--queue",
                "logged",
                "--function-name",
                "logged-fn",
                "--",
            ])
            .arg(&python)
            .args(["-m", "awslambdaric", "handlers.handler"])
            .env("AWS_ENDPOINT_URL_SQS", broker.endpoint_url())
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
            .env("AWS_SECRET_ACCESS_KEY", "secret")
            .env("PYTHONPATH", functions_dir())
            .env("OUT_DIR", out.path())
            .env(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://{}", collector.grpc_addr),
            )
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
            .env("OTEL_LOGS_EXPORTER", "otlp")
            .env("OTEL_BLRP_SCHEDULE_DELAY", "100")
            .env("OTEL_SERVICE_NAME", "the-host-process")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("start throughline lambda")?,
    );
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    sqs.send_message()
        .queue_url(&queue_url)
        .message_body("traced")
        .message_attributes(
            "traceparent",
            aws_sdk_sqs::types::MessageAttributeValue::builder()
                .data_type("String")
                .string_value(format!("00-{trace}-00f067aa0ba902b7-01"))
                .build()?,
        )
        .send()
        .await?;
    let query = LogQuery {
        service: Some("logged-fn".into()),
        start_unix_nanos: 0,
        end_unix_nanos: u64::MAX,
        limit: 100,
        ..Default::default()
    };
    let deadline = std::time::Instant::now() + PATIENCE;
    let logs = loop {
        let logs = store.search_logs(&query)?;
        if logs
            .iter()
            .any(|l| l.body_text().starts_with("REPORT RequestId: "))
        {
            break logs;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "no REPORT record reached the collector; got {:?}",
            logs.iter().map(|l| l.body_text()).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let bodies: Vec<String> = logs.iter().rev().map(|l| l.body_text()).collect();
    assert!(bodies[0].starts_with("START RequestId: "), "{bodies:?}");
    assert!(
        bodies.iter().any(|b| b.starts_with("END RequestId: ")),
        "{bodies:?}"
    );
    let want: TraceId = trace.parse()?;
    assert!(
        logs.iter().all(|l| l.trace_id() == Some(want)),
        "every platform line is in the record's trace: {:?}",
        logs.iter().map(|l| l.trace_id()).collect::<Vec<_>>()
    );
    assert!(logs.iter().all(|l| l.severity_text() == "INFO"));
    assert!(
        store
            .search_logs(&LogQuery {
                service: Some("the-host-process".into()),
                ..query.clone()
            })?
            .is_empty(),
        "filed under the function, not the host process"
    );
    kill(Pid::from_raw(host.0.id() as i32), Signal::SIGTERM)?;
    let status = tokio::task::block_in_place(|| host.0.wait())?;
    assert!(status.success(), "{status}");
    broker.shutdown().await;
    Ok(())
}
