//! Durable SQS round trips (send → receive → delete) through `aws-sdk-sqs` clients on loopback,
//! against the broker and, as the baseline in the same run, moto's server.
//!
//! `cargo bench -p throughline-broker --bench sqs_round_trip -- [--seconds N] [--concurrency N]`
//!
//! moto is found at `$THROUGHLINE_MOTO_SERVER`, else `target/moto-venv/bin/moto_server`
//! (`python3 -m venv target/moto-venv && target/moto-venv/bin/pip install 'moto[server]'`).
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
async fn run(endpoint: &str, mode: Mode, concurrency: usize, duration: Duration) -> anyhow::Result<f64> {
    let sqs = client(endpoint);
    let queue = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let url = sqs.create_queue().queue_name(&queue).send().await?.queue_url.unwrap_or_default();
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let (sqs, url, done) = (sqs.clone(), url.clone(), done.clone());
        workers.push(tokio::spawn(async move {
            while started.elapsed() < duration {
                let sent = match mode {
                    Mode::Single => {
                        sqs.send_message().queue_url(&url).message_body(format!("w{w}")).send().await?;
                        1
                    }
                    Mode::Batch => {
                        let entries = (0..10)
                            .map(|i| SendMessageBatchRequestEntry::builder().id(format!("e{i}")).message_body(format!("w{w}-{i}")).build())
                            .collect::<Result<Vec<_>, _>>()?;
                        sqs.send_message_batch().queue_url(&url).set_entries(Some(entries)).send().await?;
                        10
                    }
                };
                let got = sqs.receive_message().queue_url(&url).max_number_of_messages(sent).wait_time_seconds(1).send().await?;
                let handles: Vec<String> = got.messages().iter().filter_map(|m| m.receipt_handle().map(str::to_owned)).collect();
                match mode {
                    Mode::Single => {
                        for h in &handles {
                            sqs.delete_message().queue_url(&url).receipt_handle(h).send().await?;
                        }
                    }
                    Mode::Batch if !handles.is_empty() => {
                        let entries = handles
                            .iter()
                            .enumerate()
                            .map(|(i, h)| DeleteMessageBatchRequestEntry::builder().id(format!("d{i}")).receipt_handle(h).build())
                            .collect::<Result<Vec<_>, _>>()?;
                        sqs.delete_message_batch().queue_url(&url).set_entries(Some(entries)).send().await?;
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

fn moto_server() -> Option<PathBuf> {
    std::env::var_os("THROUGHLINE_MOTO_SERVER")
        .map(PathBuf::from)
        .or_else(|| Some(workspace_root().join("target/moto-venv/bin/moto_server")))
        .filter(|p| p.exists())
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
    let seconds = if benching { arg(&args, "--seconds", 3) } else { 0 };
    let duration = if benching { Duration::from_secs(seconds) } else { Duration::from_millis(200) };
    let concurrency = arg(&args, "--concurrency", 32) as usize;

    let dir = tempfile::tempdir()?;
    let broker = Broker::open(BrokerConfig::new(dir.path())).await?;
    let handle = broker.serve(tokio::net::TcpListener::bind("127.0.0.1:0").await?)?;
    let endpoint = handle.endpoint_url();

    println!("durable SQS round trips (send -> receive -> delete), aws-sdk-sqs clients on loopback");
    println!("concurrency {concurrency}, {:.1} s per row", duration.as_secs_f64());
    println!("{:<28} {:>14}", "target / mode", "messages/s");
    for mode in [Mode::Batch, Mode::Single] {
        let rate = run(&endpoint, mode, concurrency, duration).await?;
        println!("{:<28} {rate:>14.0}", format!("throughline broker {mode:?}"));
    }
    handle.shutdown().await;
    if !benching {
        return Ok(());
    }

    let Some(moto) = moto_server() else {
        println!("moto baseline skipped: no moto_server (set THROUGHLINE_MOTO_SERVER)");
        return Ok(());
    };
    let addr = free_loopback_addr();
    let child = Command::new(&moto)
        .args(["-H", "127.0.0.1", "-p", &addr.port().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let _moto = ChildGuard(child);
    anyhow::ensure!(wait_for_port(addr, Duration::from_secs(30)), "moto_server did not listen on {addr}");
    for mode in [Mode::Batch, Mode::Single] {
        let rate = run(&format!("http://{addr}"), mode, concurrency, duration).await?;
        println!("{:<28} {rate:>14.0}", format!("moto_server {mode:?}"));
    }
    Ok(())
}
