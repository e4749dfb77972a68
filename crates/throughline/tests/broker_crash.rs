//! Crash test for `throughline broker`: send under concurrency, `kill -9` mid-stream, restart on
//! the same data directory, and check that every acknowledged, undeleted message comes back once,
//! that deleted ones stay deleted, and that received ones stay invisible.

use aws_credential_types::Credentials;
use aws_sdk_sqs::config::{BehaviorVersion, Region};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, SendMessageBatchRequestEntry};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use throughline_testkit::{ChildGuard, free_loopback_addr, wait_for_port};

fn start_broker(addr: SocketAddr, data_dir: &Path) -> ChildGuard {
    let child = Command::new(env!("CARGO_BIN_EXE_throughline"))
        .args(["broker", "--listen", &addr.to_string(), "--data-dir"])
        .arg(data_dir)
        .args(["--queue", "crash"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn throughline broker");
    let guard = ChildGuard(child);
    assert!(
        wait_for_port(addr, Duration::from_secs(20)),
        "broker did not listen on {addr}"
    );
    guard
}

fn client(addr: SocketAddr) -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
        .endpoint_url(format!("http://{addr}"))
        // A send that fails at the kill must fail now, not be retried against a dead port.
        .retry_config(aws_sdk_sqs::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

fn queue_url(addr: SocketAddr) -> String {
    format!("http://{addr}/000000000000/crash")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_message_survives_kill_9() {
    let dir = tempfile::tempdir().expect("temp dir");
    let addr = free_loopback_addr();
    let mut broker = start_broker(addr, dir.path());
    let sqs = client(addr);
    let url = queue_url(addr);

    // Phase 1, settled before the crash: some messages are deleted, some are held in flight.
    let mut deleted = HashSet::new();
    let mut held = HashSet::new();
    let mut deletes = Vec::new();
    for batch in 0..4 {
        let entries = (0..10)
            .map(|i| {
                SendMessageBatchRequestEntry::builder()
                    .id(format!("e{i}"))
                    .message_body(format!("pre-{batch}-{i}"))
                    .build()
                    .expect("entry")
            })
            .collect();
        sqs.send_message_batch()
            .queue_url(&url)
            .set_entries(Some(entries))
            .send()
            .await
            .expect("send batch");
    }
    for round in 0..4 {
        let got = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .visibility_timeout(600)
            .send()
            .await
            .expect("receive");
        for m in got.messages() {
            let body = m.body().expect("body").to_owned();
            if round % 2 == 0 {
                deletes.push(
                    DeleteMessageBatchRequestEntry::builder()
                        .id(format!("d{}", deletes.len()))
                        .receipt_handle(m.receipt_handle().expect("handle"))
                        .build()
                        .expect("entry"),
                );
                deleted.insert(body);
            } else {
                held.insert(body);
            }
        }
        if !deletes.is_empty() {
            let out = sqs
                .delete_message_batch()
                .queue_url(&url)
                .set_entries(Some(std::mem::take(&mut deletes)))
                .send()
                .await
                .expect("delete batch");
            assert!(out.failed().is_empty());
        }
    }
    assert_eq!(deleted.len() + held.len(), 40);

    // Phase 2: concurrent senders, killed mid-stream.
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let mut senders = Vec::new();
    for task in 0..16 {
        let (sqs, url, acked) = (sqs.clone(), url.clone(), acked.clone());
        senders.push(tokio::spawn(async move {
            for i in 0.. {
                let body = format!("t{task}-{i}");
                match sqs
                    .send_message()
                    .queue_url(&url)
                    .message_body(&body)
                    .send()
                    .await
                {
                    Ok(_) => {
                        acked.lock().expect("acked set").insert(body);
                    }
                    Err(_) => break,
                }
            }
        }));
    }
    for _ in 0..200 {
        if acked.lock().expect("acked set").len() >= 1500 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    broker.kill9();
    for s in senders {
        s.await.expect("sender task");
    }
    let acked = acked.lock().expect("acked set").clone();
    assert!(
        acked.len() > 100,
        "too few sends were acknowledged before the kill: {}",
        acked.len()
    );

    // Restart on the same data directory and drain.
    let addr = free_loopback_addr();
    let _broker = start_broker(addr, dir.path());
    let sqs = client(addr);
    let url = queue_url(addr);
    let mut seen: HashMap<String, u32> = HashMap::new();
    loop {
        let got = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .visibility_timeout(600)
            .send()
            .await
            .expect("receive after restart");
        if got.messages().is_empty() {
            break;
        }
        for m in got.messages() {
            *seen.entry(m.body().expect("body").to_owned()).or_default() += 1;
        }
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "delivered twice while invisible: {twice:?}"
    );
    let lost: Vec<_> = acked
        .iter()
        .filter(|b| !seen.contains_key(*b))
        .take(5)
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged messages lost ({} of {}): {lost:?}",
        acked.iter().filter(|b| !seen.contains_key(*b)).count(),
        acked.len()
    );
    let pre_back: Vec<_> = seen.keys().filter(|b| b.starts_with("pre-")).collect();
    assert!(
        pre_back.is_empty(),
        "deleted or still-invisible messages came back: {pre_back:?}"
    );
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(
            aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        )
        .send()
        .await
        .expect("attributes");
    let in_flight: usize = attrs.attributes().expect("attributes")
        [&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible]
        .parse()
        .expect("number");
    assert_eq!(
        in_flight,
        held.len() + seen.len(),
        "held messages stay in flight across the crash"
    );
}

#[test]
fn output_redirected_to_a_file_carries_no_colour_codes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let addr = free_loopback_addr();
    let log = std::fs::File::create(dir.path().join("broker.log")).expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_throughline"))
        .args(["broker", "--listen", &addr.to_string(), "--data-dir"])
        .arg(dir.path().join("data"))
        .env_remove("NO_COLOR")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn throughline broker");
    let mut guard = ChildGuard(child);
    assert!(
        wait_for_port(addr, Duration::from_secs(20)),
        "broker did not listen on {addr}"
    );
    // The socket is bound before the line that says so is written: wait for the line.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut text = String::new();
    while std::time::Instant::now() < deadline {
        text = std::fs::read_to_string(dir.path().join("broker.log")).expect("read the log");
        if text.contains("broker listening") {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    guard.kill9();
    assert!(text.contains("broker listening"), "{text}");
    assert!(!text.contains('\u{1b}'), "colour codes in a file: {text:?}");
}
