//! Durable SQS round trips (send → receive → delete) through `aws-sdk-sqs` clients on loopback,
//! against the broker and, as the baseline in the same run, moto's server.
//!
//! `cargo bench -p throughline-broker --bench sqs_round_trip -- [--seconds N] [--concurrency N]`
//!
//! moto is found at `$THROUGHLINE_MOTO_SERVER`, else in the interop venv (`scripts/python-venv`),
//! else at `target/moto-venv/bin/moto_server`; without it the bench fails, naming what is missing.
//! Run without `--bench` (as `cargo test --all-targets` does), it only checks that it works.

use aws_credential_types::Credentials;
use aws_sdk_sqs::config::{BehaviorVersion, Region};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, SendMessageBatchRequestEntry};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use throughline_broker::{Broker, BrokerConfig};
use throughline_testkit::{ChildGuard, free_loopback_addr, wait_for_port, workspace_root};

#[derive(Debug, Clone, Copy)]
enum Mode {
    /// One message per request: SendMessage, ReceiveMessage, DeleteMessage.
    Single,
    /// Ten messages per request: SendMessageBatch, ReceiveMessage(10), DeleteMessageBatch.
    Batch,
}

fn client(endpoint: &str) -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKIDBENCH", "secret", None, None, "bench"))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

/// Runs `concurrency` workers for `duration`; returns completed round trips per second.
async fn run(
    endpoint: &str,
    mode: Mode,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<f64> {
    let sqs = client(endpoint);
    let queue = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let url = sqs
        .create_queue()
        .queue_name(&queue)
        .send()
        .await?
        .queue_url
        .unwrap_or_default();
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let (sqs, url, done) = (sqs.clone(), url.clone(), done.clone());
        workers.push(tokio::spawn(async move {
            while started.elapsed() < duration {
                let sent = match mode {
                    Mode::Single => {
                        sqs.send_message()
                            .queue_url(&url)
                            .message_body(format!("w{w}"))
                            .send()
                            .await?;
                        1
                    }
                    Mode::Batch => {
                        let entries = (0..10)
                            .map(|i| {
                                SendMessageBatchRequestEntry::builder()
                                    .id(format!("e{i}"))
                                    .message_body(format!("w{w}-{i}"))
                                    .build()
                            })
                            .collect::<Result<Vec<_>, _>>()?;
                        sqs.send_message_batch()
                            .queue_url(&url)
                            .set_entries(Some(entries))
                            .send()
                            .await?;
                        10
                    }
                };
                let got = sqs
                    .receive_message()
                    .queue_url(&url)
                    .max_number_of_messages(sent)
                    .wait_time_seconds(1)
                    .send()
                    .await?;
                let handles: Vec<String> = got
                    .messages()
                    .iter()
                    .filter_map(|m| m.receipt_handle().map(str::to_owned))
                    .collect();
                match mode {
                    Mode::Single => {
                        for h in &handles {
                            sqs.delete_message()
                                .queue_url(&url)
                                .receipt_handle(h)
                                .send()
                                .await?;
                        }
                    }
                    Mode::Batch if !handles.is_empty() => {
                        let entries = handles
                            .iter()
                            .enumerate()
                            .map(|(i, h)| {
                                DeleteMessageBatchRequestEntry::builder()
                                    .id(format!("d{i}"))
                                    .receipt_handle(h)
                                    .build()
                            })
                            .collect::<Result<Vec<_>, _>>()?;
                        sqs.delete_message_batch()
                            .queue_url(&url)
                            .set_entries(Some(entries))
                            .send()
                            .await?;
                    }
                    Mode::Batch => {}
                }
                done.fetch_add(handles.len() as u64, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    for w in workers {
        w.await??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

/// (commits, requests committed) from the broker's `/metrics`.
async fn storage_counts(endpoint: &str) -> anyhow::Result<(u64, u64)> {
    let text = reqwest::get(format!("{endpoint}/metrics"))
        .await?
        .text()
        .await?;
    let value = |name: &str| {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(name)
                    .and_then(|v| v.trim().parse::<u64>().ok())
            })
            .unwrap_or_default()
    };
    Ok((
        value("throughline_broker_storage_commits_total "),
        value("throughline_broker_storage_requests_committed_total "),
    ))
}

/// moto's server: `$THROUGHLINE_MOTO_SERVER`, else the interop venv's (`scripts/python-venv`,
/// which installs `moto[server]`), else `target/moto-venv/bin/moto_server`.
fn moto_server() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("THROUGHLINE_MOTO_SERVER") {
        let path = PathBuf::from(path);
        anyhow::ensure!(
            path.exists(),
            "THROUGHLINE_MOTO_SERVER={} does not exist",
            path.display()
        );
        return Ok(path);
    }
    let venv = throughline_testkit::python().with_file_name("moto_server");
    let fallback = workspace_root().join("target/moto-venv/bin/moto_server");
    [venv.clone(), fallback.clone()]
        .into_iter()
        .find(|p| p.exists())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "the moto baseline needs moto_server: not at {} nor {} (set \
                 THROUGHLINE_MOTO_SERVER, or let scripts/python-venv install moto[server])",
                venv.display(),
                fallback.display()
            )
        })
}

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let benching = args.iter().any(|a| a == "--bench");
    let seconds = if benching {
        arg(&args, "--seconds", 3)
    } else {
        0
    };
    let duration = if benching {
        Duration::from_secs(seconds)
    } else {
        Duration::from_millis(200)
    };
    let concurrency = arg(&args, "--concurrency", 32) as usize;

    let dir = tempfile::tempdir()?;
    let broker = Broker::open(BrokerConfig::new(dir.path())).await?;
    let handle = broker.serve(tokio::net::TcpListener::bind("127.0.0.1:0").await?)?;
    let endpoint = handle.endpoint_url();

    println!(
        "durable SQS round trips (send -> receive -> delete), aws-sdk-sqs clients on loopback"
    );
    println!(
        "concurrency {concurrency}, {:.1} s per row",
        duration.as_secs_f64()
    );
    println!("{:<28} {:>14}", "target / mode", "messages/s");
    for mode in [Mode::Batch, Mode::Single] {
        let before = storage_counts(&endpoint).await?;
        let rate = run(&endpoint, mode, concurrency, duration).await?;
        let after = storage_counts(&endpoint).await?;
        let commits = after.0 - before.0;
        let per_commit = (after.1 - before.1) as f64 / commits.max(1) as f64;
        println!(
            "{:<28} {rate:>14.0}   ({commits} commits, {per_commit:.1} requests per commit)",
            format!("throughline broker {mode:?}")
        );
    }
    handle.shutdown().await;
    if !benching {
        return Ok(());
    }

    // The baseline is part of the result: without moto the bench fails rather than skip it.
    let moto = moto_server()?;
    let addr = free_loopback_addr();
    let child = Command::new(&moto)
        .args(["-H", "127.0.0.1", "-p", &addr.port().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let _moto = ChildGuard(child);
    anyhow::ensure!(
        wait_for_port(addr, Duration::from_secs(30)),
        "moto_server did not listen on {addr}"
    );
    for mode in [Mode::Batch, Mode::Single] {
        let rate = run(&format!("http://{addr}"), mode, concurrency, duration).await?;
        println!("{:<28} {rate:>14.0}", format!("moto_server {mode:?}"));
    }
    Ok(())
}
