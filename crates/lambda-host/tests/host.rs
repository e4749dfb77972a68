//! The Lambda host end to end on loopback: the real broker (in process) as SQS, and a Python
//! function run by AWS's runtime interface client (`awslambdaric`), a Runtime API peer nobody
//! here wrote. The handler (`tests/functions/handlers.py`) writes each event it receives to a
//! folder and behaves as each record's body asks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use aws_credential_types::Credentials;
use aws_sdk_sqs::config::{BehaviorVersion, Region};
use aws_sdk_sqs::types::{
    MessageAttributeValue, MessageSystemAttributeNameForSends, MessageSystemAttributeValue,
    QueueAttributeName,
};
use throughline_broker::{Broker, BrokerConfig, BrokerHandle};
use throughline_lambda_host::{EventSourceMapping, MappingError, PlatformLog, RawHostConfig};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a test waits for something that should happen in well under a second; a bound for
/// failing, not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
struct CollectedLog(Mutex<Vec<String>>);

impl PlatformLog for CollectedLog {
    fn line(&self, line: &str) {
        self.0.lock().unwrap().push(line.to_owned());
    }
}

impl CollectedLog {
    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

struct Host {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    out: tempfile::TempDir,
    log: Arc<CollectedLog>,
    shutdown: CancellationToken,
    running: Option<JoinHandle<Result<(), MappingError>>>,
    _broker: BrokerHandle,
    _broker_dir: tempfile::TempDir,
}

fn functions_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/functions")
}

fn sqs_client(endpoint: &str) -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "AKIDTEST",
            "test-secret",
            None,
            None,
            "tests",
        ))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

/// Starts the broker, a queue whose messages return 1 s after a failed receive, and the host
/// running `handlers.handler` with `tweak` applied to its configuration.
async fn start_host(tweak: impl FnOnce(&mut RawHostConfig)) -> anyhow::Result<Host> {
    let python = tokio::task::spawn_blocking(throughline_testkit::python).await?;
    let broker_dir = tempfile::tempdir()?;
    let broker = Broker::open(BrokerConfig::new(broker_dir.path())).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let broker = broker.serve(listener)?;
    let sqs = sqs_client(&broker.endpoint_url());
    let queue_url = sqs
        .create_queue()
        .queue_name("work")
        .attributes(QueueAttributeName::VisibilityTimeout, "1")
        .send()
        .await?
        .queue_url
        .context("CreateQueue gave no url")?;
    let out = tempfile::tempdir()?;
    let mut raw = RawHostConfig {
        queue: "work".into(),
        function_name: Some("worker".into()),
        memory_mb: Some(256),
        handler: Some("handlers.handler".into()),
        command: vec![
            python.into(),
            "-m".into(),
            "awslambdaric".into(),
            "handlers.handler".into(),
        ],
        ..Default::default()
    };
    tweak(&mut raw);
    let mut config = raw.validate()?;
    config.environment = BTreeMap::from([
        (
            "PYTHONPATH".to_owned(),
            functions_dir().display().to_string(),
        ),
        ("OUT_DIR".to_owned(), out.path().display().to_string()),
        ("PYTHONUNBUFFERED".to_owned(), "1".to_owned()),
    ]);
    let log = Arc::new(CollectedLog::default());
    let shutdown = CancellationToken::new();
    let mapping = EventSourceMapping::new(config, sqs.clone(), log.clone());
    let running = tokio::spawn(mapping.run(shutdown.clone()));
    Ok(Host {
        sqs,
        queue_url,
        out,
        log,
        shutdown,
        running: Some(running),
        _broker: broker,
        _broker_dir: broker_dir,
    })
}

/// One invocation as the handler saw it.
#[derive(Debug, Clone)]
struct Seen {
    request_id: String,
    json: serde_json::Value,
}

impl Seen {
    fn records(&self) -> &Vec<serde_json::Value> {
        self.json["event"]["Records"]
            .as_array()
            .expect("Records is an array")
    }
    fn bodies(&self) -> Vec<&str> {
        self.records()
            .iter()
            .map(|r| r["body"].as_str().unwrap_or_default())
            .collect()
    }
}

impl Host {
    async fn send(&self, body: &str) -> anyhow::Result<String> {
        let sent = self
            .sqs
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await?;
        sent.message_id.context("SendMessage gave no id")
    }

    /// Sends the bodies in one `SendMessageBatch`, so one receive can gather them all.
    async fn send_batch(&self, bodies: &[&str]) -> anyhow::Result<Vec<String>> {
        let entries = bodies
            .iter()
            .enumerate()
            .map(|(i, body)| {
                aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(*body)
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let sent = self
            .sqs
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await?;
        let mut ids = vec![String::new(); bodies.len()];
        for entry in sent.successful {
            let index: usize = entry.id.parse()?;
            ids[index] = entry.message_id;
        }
        Ok(ids)
    }

    /// Every invocation handled so far, in no particular order.
    fn seen(&self) -> anyhow::Result<Vec<Seen>> {
        let mut seen = Vec::new();
        for entry in std::fs::read_dir(self.out.path())? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if let Some(id) = name
                .strip_prefix("invocation-")
                .and_then(|n| n.strip_suffix(".json"))
            {
                let text = std::fs::read_to_string(self.out.path().join(&name))?;
                seen.push(Seen {
                    request_id: id.to_owned(),
                    json: serde_json::from_str(&text)?,
                });
            }
        }
        Ok(seen)
    }

    /// Waits until `done` holds for the host's state.
    async fn until(
        &self,
        what: &str,
        done: impl Fn(&Self) -> anyhow::Result<bool>,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if done(self)? {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        bail!(
            "gave up waiting for {what}; platform log:\n{}",
            self.log.lines().join("\n")
        )
    }

    /// The `REPORT` line of `request_id`, once written.
    fn report(&self, request_id: &str) -> Option<String> {
        let prefix = format!("REPORT RequestId: {request_id}\t");
        self.log
            .lines()
            .into_iter()
            .find(|l| l.starts_with(&prefix))
    }

    async fn queue_is_empty(&self) -> anyhow::Result<bool> {
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await?;
        let count = |name| {
            attributes
                .attributes()
                .and_then(|a| a.get(&name))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(u64::MAX)
        };
        Ok(count(QueueAttributeName::ApproximateNumberOfMessages) == 0
            && count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible) == 0)
    }

    async fn until_queue_empty(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if self.queue_is_empty().await? {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        bail!(
            "the queue never emptied; platform log:\n{}",
            self.log.lines().join("\n")
        )
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        if let Some(running) = self.running.take() {
            running.await??;
        }
        Ok(())
    }
}

fn pid_of(seen: &Seen) -> u64 {
    seen.json["pid"].as_u64().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_in_lambdas_shape_and_processed_messages_are_deleted() -> anyhow::Result<()> {
    let host = start_host(|_| {}).await?;
    let id = host
        .sqs
        .send_message()
        .queue_url(&host.queue_url)
        .message_body("hello")
        .message_attributes(
            "tenant",
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value("acme")
                .build()?,
        )
        .message_system_attributes(
            MessageSystemAttributeNameForSends::AwsTraceHeader,
            MessageSystemAttributeValue::builder()
                .data_type("String")
                .string_value(
                    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
                )
                .build()?,
        )
        .send()
        .await?
        .message_id
        .context("no message id")?;
    host.until("the first invocation", |h| Ok(h.seen()?.len() == 1))
        .await?;
    let first = host.seen()?.remove(0);
    let record = &first.records()[0];
    assert_eq!(record["messageId"], id.as_str());
    assert_eq!(record["body"], "hello");
    assert!(
        record["receiptHandle"]
            .as_str()
            .is_some_and(|h| !h.is_empty())
    );
    assert_eq!(record["md5OfBody"], "5d41402abc4b2a76b9719d911017c592");
    assert_eq!(record["attributes"]["ApproximateReceiveCount"], "1");
    assert!(
        record["attributes"]["SentTimestamp"]
            .as_str()
            .is_some_and(|t| t.parse::<u64>().is_ok())
    );
    assert_eq!(
        record["attributes"]["AWSTraceHeader"],
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    );
    assert_eq!(record["messageAttributes"]["tenant"]["stringValue"], "acme");
    assert_eq!(record["messageAttributes"]["tenant"]["dataType"], "String");
    assert_eq!(record["eventSource"], "aws:sqs");
    assert_eq!(
        record["eventSourceARN"],
        "arn:aws:sqs:us-east-1:000000000000:work"
    );
    assert_eq!(record["awsRegion"], "us-east-1");
    // The context the runtime client built from the Runtime API headers and environment.
    assert_eq!(first.json["function_name"], "worker");
    assert_eq!(first.json["memory_limit_in_mb"], "256");
    assert_eq!(
        first.json["invoked_function_arn"],
        "arn:aws:lambda:us-east-1:000000000000:function:worker"
    );
    assert_eq!(first.json["handler"], "handlers.handler");
    let remaining = first.json["remaining_ms"].as_i64().unwrap_or_default();
    assert!(
        remaining > 0 && remaining <= 3000,
        "remaining time {remaining} ms is within the 3 s timeout"
    );
    host.until_queue_empty().await?;

    // A second message runs warm in the same process, with no init duration.
    host.send("again").await?;
    host.until("the second invocation", |h| Ok(h.seen()?.len() == 2))
        .await?;
    let second = host
        .seen()?
        .into_iter()
        .find(|s| s.bodies() == ["again"])
        .context("second")?;
    assert_eq!(
        pid_of(&second),
        pid_of(&first),
        "the warm environment is reused"
    );
    host.until("both REPORT lines", |h| {
        Ok(h.report(&second.request_id).is_some())
    })
    .await?;
    let lines = host.log.lines();
    for seen in [&first, &second] {
        let id = &seen.request_id;
        assert!(
            lines.contains(&format!("START RequestId: {id} Version: $LATEST")),
            "{lines:#?}"
        );
        assert!(
            lines.contains(&format!("END RequestId: {id}")),
            "{lines:#?}"
        );
    }
    let cold = host.report(&first.request_id).context("first REPORT")?;
    let warm = host.report(&second.request_id).context("second REPORT")?;
    for report in [&cold, &warm] {
        assert!(
            report.contains("\tDuration: ") && report.contains(" ms\tBilled Duration: "),
            "{report}"
        );
        assert!(
            report.contains("\tMemory Size: 256 MB\tMax Memory Used: "),
            "{report}"
        );
    }
    assert!(
        cold.contains("\tInit Duration: "),
        "cold start reports init: {cold}"
    );
    assert!(
        !warm.contains("Init Duration"),
        "warm start reports no init: {warm}"
    );
    host.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_init_error_after_init_is_refused_and_the_environment_lives_on() -> anyhow::Result<()> {
    let host = start_host(|raw| raw.concurrency = Some(1)).await?;
    host.send("post-init-error").await?;
    host.until_queue_empty().await?;
    let answer = std::fs::read_to_string(host.out.path().join("init-error-answer"))?;
    let answer: serde_json::Value = serde_json::from_str(&answer)?;
    assert_eq!(answer["status"], 403, "{answer}");
    assert_eq!(
        answer["body"]["errorType"], "InvalidStateTransition",
        "{answer}"
    );
    // The next invocation runs in the same (warm) environment: nothing was killed.
    host.send("after").await?;
    host.until("the second invocation", |h| Ok(h.seen()?.len() == 2))
        .await?;
    host.until_queue_empty().await?;
    let seen = host.seen()?;
    assert_eq!(
        pid_of(&seen[0]),
        pid_of(&seen[1]),
        "the environment was restarted"
    );
    assert!(
        !host.log.lines().iter().any(|l| l.contains("init error")),
        "{:?}",
        host.log.lines()
    );
    host.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_batch_failure_redelivers_only_the_failed_records() -> anyhow::Result<()> {
    let host = start_host(|raw| {
        raw.batch_size = Some(10);
        raw.batch_window_ms = Some(300);
    })
    .await?;
    let ids = host.send_batch(&["ok-a", "fail-once", "ok-b"]).await?;
    let (ok_a, failing, ok_b) = (&ids[0], &ids[1], &ids[2]);
    host.until("the redelivery", |h| Ok(h.seen()?.len() == 2))
        .await?;
    let seen = host.seen()?;
    let first = seen
        .iter()
        .find(|s| s.records().len() == 3)
        .context("a batch of all three")?;
    let ids: Vec<&str> = first
        .records()
        .iter()
        .map(|r| r["messageId"].as_str().unwrap_or_default())
        .collect();
    for id in [ok_a, failing, ok_b] {
        assert!(
            ids.contains(&id.as_str()),
            "{id} in the first batch {ids:?}"
        );
    }
    let retry = seen
        .iter()
        .find(|s| s.records().len() == 1)
        .context("a batch of the failed one")?;
    assert_eq!(retry.records()[0]["messageId"], failing.as_str());
    assert_eq!(
        retry.records()[0]["attributes"]["ApproximateReceiveCount"],
        "2"
    );
    host.until_queue_empty().await?;
    assert_eq!(
        host.seen()?.len(),
        2,
        "the successful records were not redelivered"
    );
    host.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_and_malformed_responses_return_the_whole_batch() -> anyhow::Result<()> {
    let host = start_host(|raw| {
        raw.batch_size = Some(10);
        raw.batch_window_ms = Some(300);
    })
    .await?;
    host.send_batch(&["raise-once", "bystander"]).await?;
    host.until("the redelivery", |h| Ok(h.seen()?.len() == 2))
        .await?;
    host.until_queue_empty().await?;
    for seen in host.seen()? {
        assert_eq!(
            seen.records().len(),
            2,
            "the whole batch came back: {:?}",
            seen.bodies()
        );
    }
    host.stop().await?;

    let host = start_host(|raw| raw.batch_window_ms = Some(300)).await?;
    host.send_batch(&["malformed-once", "bystander"]).await?;
    host.until("the redelivery", |h| Ok(h.seen()?.len() == 2))
        .await?;
    host.until_queue_empty().await?;
    for seen in host.seen()? {
        assert_eq!(
            seen.records().len(),
            2,
            "the whole batch came back: {:?}",
            seen.bodies()
        );
    }
    host.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_invocation_kills_the_environment_and_its_batch_returns() -> anyhow::Result<()>
{
    let host = start_host(|raw| raw.timeout_secs = Some(1)).await?;
    host.send("sleep-once").await?;
    host.until("the redelivery", |h| Ok(h.seen()?.len() == 2))
        .await?;
    host.until_queue_empty().await?;
    let seen = host.seen()?;
    let first = seen
        .iter()
        .find(|s| s.records()[0]["attributes"]["ApproximateReceiveCount"] == "1");
    let second = seen
        .iter()
        .find(|s| s.records()[0]["attributes"]["ApproximateReceiveCount"] == "2");
    let (first, second) = (
        first.context("first delivery")?,
        second.context("second delivery")?,
    );
    assert_ne!(
        pid_of(first),
        pid_of(second),
        "a new environment ran the redelivery"
    );
    let first_pid = pid_of(first);
    assert!(
        !Path::new(&format!("/proc/{first_pid}")).exists(),
        "the timed-out process is gone"
    );
    let lines = host.log.lines();
    let timed_out = format!(" {} Task timed out after 1.00 seconds", first.request_id);
    assert!(lines.iter().any(|l| l.ends_with(&timed_out)), "{lines:#?}");
    host.until("the REPORT lines", |h| {
        Ok(h.report(&second.request_id).is_some())
    })
    .await?;
    let timeout_report = host
        .report(&first.request_id)
        .context("REPORT of the timeout")?;
    assert!(
        timeout_report.contains("\tStatus: timeout"),
        "{timeout_report}"
    );
    let restart_report = host
        .report(&second.request_id)
        .context("REPORT of the restart")?;
    assert!(
        restart_report.contains("\tInit Duration: "),
        "the restart is cold: {restart_report}"
    );
    host.stop().await
}

/// The process state letter from `/proc/<pid>/stat` (`T` is stopped).
fn process_state(pid: u64) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_environment_makes_no_progress_until_the_next_event() -> anyhow::Result<()> {
    let host = start_host(|_| {}).await?;
    host.send("late").await?;
    host.until("the invocation", |h| Ok(h.seen()?.len() == 1))
        .await?;
    let first = host.seen()?.remove(0);
    let pid = pid_of(&first);
    host.until("the freeze", |_| Ok(process_state(pid) == Some('T')))
        .await?;
    // The handler's thread would write 0.3 s after the handler returned; frozen, it cannot.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let late = host.out.path().join("late");
    assert!(
        !late.exists(),
        "a frozen environment ran its background thread"
    );
    assert_eq!(process_state(pid), Some('T'));

    host.send("thaw").await?;
    host.until("the thawed thread's write", |h| {
        Ok(h.out.path().join("late").exists())
    })
    .await?;
    host.stop().await?;
    assert!(
        process_state(pid).is_none(),
        "the environment was stopped with the host"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_cannot_start_is_reported() -> anyhow::Result<()> {
    let sqs = sqs_client("http://127.0.0.1:9");
    let config = RawHostConfig {
        queue: "work".into(),
        command: vec!["/nonexistent/bootstrap".into()],
        ..Default::default()
    }
    .validate()?;
    let err = EventSourceMapping::new(config, sqs, Arc::new(CollectedLog::default()))
        .run(CancellationToken::new())
        .await
        .expect_err("the host cannot run a missing command");
    assert_eq!(
        err.to_string(),
        r#"COMMAND: "/nonexistent/bootstrap" is not an executable file or on PATH"#
    );
    Ok(())
}
