//! The stand-ins report what AWS reports: `throughline broker` and `throughline lambda`, pointed
//! at a `throughline collector` by the `OTEL_*` variables as `throughline up` points them, under
//! a small load (four messages, one of which fails and is moved to the dead-letter queue):
//! invocations, errors and cold starts per function, and sent counts and dead-letter depth per
//! queue come back through `/api/throughline/metrics` as they happened.

mod collector_common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_credential_types::Credentials;
use aws_sdk_sqs::config::{BehaviorVersion, Region};
use collector_common::*;
use throughline_testkit::{ChildGuard, free_loopback_addr, wait_for_port};

const PATIENCE: Duration = Duration::from_secs(60);

fn otel_env(cmd: &mut Command, grpc: std::net::SocketAddr, service: &str) {
    cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{grpc}"))
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        .env("OTEL_SERVICE_NAME", service)
        .env("OTEL_METRIC_EXPORT_INTERVAL", "300")
        .env("RUST_LOG", "warn");
}

/// The `total.value` of each series of `name` with `attr`, waiting until `done` holds of them
/// (the exporters report every 300 ms) or failing with what was last seen.
async fn wait_for(
    query: std::net::SocketAddr,
    name: &str,
    attr: &str,
    done: impl Fn(f64) -> bool,
) -> anyhow::Result<f64> {
    let url =
        format!("http://{query}/api/throughline/metrics?name={name}&attr.{attr}&lookback=10m");
    let deadline = Instant::now() + PATIENCE;
    let mut last = serde_json::Value::Null;
    while Instant::now() < deadline {
        last = reqwest::get(&url).await?.json().await?;
        let value: f64 = last["data"]
            .as_array()
            .map(|a| a.iter().filter_map(|s| s["total"]["value"].as_f64()).sum())
            .unwrap_or(0.0);
        if last["data"].as_array().is_some_and(|a| !a.is_empty()) && done(value) {
            return Ok(value);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::bail!("{name} with {attr} never reached the expected value: {last}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lambda_host_and_the_broker_report_what_happened() -> anyhow::Result<()> {
    let python = tokio::task::spawn_blocking(throughline_testkit::python).await?;
    let data = tempfile::tempdir()?;
    let (_collector, addrs) = start_collector(&data.path().join("collector"));

    let declarations = data.path().join("declarations.json");
    std::fs::write(
        &declarations,
        serde_json::json!({"queues": [
            {"name": "work-dlq"},
            {"name": "work", "attributes": {"VisibilityTimeout": "1"},
             "dead_letter": {"queue": "work-dlq", "max_receive_count": 1}}
        ]})
        .to_string(),
    )?;
    let broker_addr = free_loopback_addr();
    let mut broker = Command::new(env!("CARGO_BIN_EXE_throughline"));
    broker
        .args(["broker", "--listen", &broker_addr.to_string(), "--config"])
        .arg(&declarations)
        .arg("--data-dir")
        .arg(data.path().join("broker"))
        .stdout(Stdio::null());
    otel_env(&mut broker, addrs.grpc, "throughline-broker");
    let _broker = ChildGuard(broker.spawn().context("start throughline broker")?);
    anyhow::ensure!(wait_for_port(broker_addr, PATIENCE), "the broker listens");
    let endpoint = format!("http://{broker_addr}");

    let out = tempfile::tempdir()?;
    let mut host = Command::new(env!("CARGO_BIN_EXE_throughline"));
    host.args([
        "lambda",
        "--queue",
        "work",
        "--batch-size",
        "1",
        "--function-name",
        "worker",
        "--",
    ])
    .arg(&python)
    .args(["-m", "awslambdaric", "handlers.handler"])
    .env("AWS_ENDPOINT_URL_SQS", &endpoint)
    .env("AWS_REGION", "us-east-1")
    .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
    .env("AWS_SECRET_ACCESS_KEY", "test-secret")
    .env(
        "PYTHONPATH",
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../lambda-host/tests/functions"),
    )
    .env("OUT_DIR", out.path())
    .stdout(Stdio::null());
    otel_env(&mut host, addrs.grpc, "worker");
    let _host = ChildGuard(host.spawn().context("start throughline lambda")?);

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
            .endpoint_url(&endpoint)
            .build(),
    );
    let queue_url = sqs
        .get_queue_url()
        .queue_name("work")
        .send()
        .await?
        .queue_url
        .context("queue url")?;
    // Three that succeed; one that raises on its first receive, and with maxReceiveCount 1 is
    // moved to the dead-letter queue instead of a second receive.
    for body in ["ok", "ok", "raise-once", "ok"] {
        sqs.send_message()
            .queue_url(&queue_url)
            .message_body(body)
            .send()
            .await?;
    }

    let fn_attr = "faas.name=worker";
    assert_eq!(
        wait_for(addrs.query, "faas.invocations", fn_attr, |v| v >= 4.0).await?,
        4.0
    );
    assert_eq!(
        wait_for(addrs.query, "faas.errors", fn_attr, |v| v >= 1.0).await?,
        1.0
    );
    assert_eq!(
        wait_for(addrs.query, "faas.coldstarts", fn_attr, |v| v >= 1.0).await?,
        1.0,
        "one environment, started once, reused warm"
    );
    assert_eq!(
        wait_for(addrs.query, "aws.lambda.throttles", fn_attr, |v| v >= 0.0).await?,
        0.0
    );
    wait_for(addrs.query, "faas.invoke_duration", fn_attr, |v| v >= 4.0).await?;

    let q = "messaging.destination.name=work";
    assert_eq!(
        wait_for(addrs.query, "aws.sqs.number_of_messages_sent", q, |v| v
            >= 4.0)
        .await?,
        4.0
    );
    assert_eq!(
        wait_for(addrs.query, "aws.sqs.number_of_messages_deleted", q, |v| v
            >= 3.0)
        .await?,
        3.0
    );
    let dlq = "messaging.destination.name=work-dlq";
    assert_eq!(
        wait_for(
            addrs.query,
            "aws.sqs.approximate_number_of_messages_visible",
            dlq,
            |v| v >= 1.0
        )
        .await?,
        1.0,
        "the failed message waits in the dead-letter queue"
    );
    assert_eq!(
        wait_for(
            addrs.query,
            "aws.sqs.approximate_number_of_messages_visible",
            q,
            |v| v == 0.0
        )
        .await?,
        0.0
    );
    Ok(())
}
