//! The collector as a process: spans acknowledged under load survive `kill -9`, and after a
//! restart on the same data directory every one of them is queryable.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use throughline_store::testdata::{TwoServiceTrace, seeds_like_batch};
use throughline_testkit::{ChildGuard, free_loopback_addr, wait_for_port};

const TRACES_PER_BATCH: usize = 32;
const SENDERS: u64 = 4;
const LOAD_TIME: Duration = Duration::from_millis(1500);

struct Addrs {
    grpc: SocketAddr,
    query: SocketAddr,
}

fn start_collector(data_dir: &Path) -> (ChildGuard, Addrs) {
    let addrs = Addrs { grpc: free_loopback_addr(), query: free_loopback_addr() };
    let http = free_loopback_addr();
    let child = Command::new(env!("CARGO_BIN_EXE_throughline"))
        .arg("collector")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--grpc-addr", &addrs.grpc.to_string()])
        .args(["--http-addr", &http.to_string()])
        .args(["--query-addr", &addrs.query.to_string()])
        .args(["--settle-secs", "0"])
        .stdout(Stdio::null())
        .spawn()
        .expect("the throughline binary starts");
    let guard = ChildGuard(child);
    assert!(wait_for_port(addrs.grpc, Duration::from_secs(20)), "collector listens for gRPC");
    assert!(wait_for_port(addrs.query, Duration::from_secs(20)), "collector serves the query API");
    (guard, addrs)
}

fn now_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_nanos() as u64
}

#[test]
fn acknowledged_spans_survive_kill_9() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let (mut child, addrs) = start_collector(dir.path());

    // Senders export batches until told to stop; each records the batches acknowledged.
    let acknowledged: Arc<Mutex<Vec<u64>>> = Arc::default();
    let start = now_nanos();
    let url = format!("http://{}", addrs.grpc);
    let senders: Vec<_> = (0..SENDERS)
        .map(|sender| {
            let acknowledged = Arc::clone(&acknowledged);
            let url = url.clone();
            runtime.spawn(async move {
                let mut client = TraceServiceClient::connect(url).await.expect("grpc connects");
                for round in 0u64.. {
                    let batch = round * SENDERS + sender;
                    let request = seeds_like_batch(batch, TRACES_PER_BATCH, start);
                    match client.export(request).await {
                        Ok(response) => {
                            assert_eq!(response.into_inner().partial_success, None);
                            acknowledged.lock().expect("not poisoned").push(batch);
                        }
                        // The collector was killed under us: what was not acknowledged is not
                        // promised.
                        Err(_) => break,
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + LOAD_TIME;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // kill -9 while the senders are still sending.
    child.kill9();
    for sender in senders {
        runtime.block_on(sender).expect("sender task ends");
    }
    let acknowledged = acknowledged.lock().expect("not poisoned").clone();
    assert!(!acknowledged.is_empty(), "some batches were acknowledged before the kill");

    let (_child, addrs) = start_collector(dir.path());
    let client = reqwest::Client::new();
    eprintln!("checking {} acknowledged batches of {TRACES_PER_BATCH} traces", acknowledged.len());
    runtime.block_on(async move {
        for batch in acknowledged {
            for i in 0..TRACES_PER_BATCH as u64 {
                let trace = TwoServiceTrace::new(batch * TRACES_PER_BATCH as u64 + i, start);
                let url = format!("http://{}/api/traces/{}", addrs.query, trace.trace_id);
                let response = client.get(&url).send().await.expect("query API answers");
                assert_eq!(response.status(), 200, "trace {} of acknowledged batch {batch}", trace.trace_id);
                let body: serde_json::Value = response.json().await.expect("JSON");
                let spans = body["data"][0]["spans"].as_array().map(Vec::len);
                assert_eq!(spans, Some(4), "every span of trace {} is back", trace.trace_id);
            }
        }
    });
}
