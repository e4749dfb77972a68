//! Starting the `throughline collector` binary for process-level tests.
#![allow(dead_code)] // each test file uses a different part of this module

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use throughline_testkit::{ChildGuard, free_loopback_addr, wait_for_port};

pub struct Addrs {
    pub grpc: SocketAddr,
    pub query: SocketAddr,
}

pub fn start_collector(data_dir: &Path) -> (ChildGuard, Addrs) {
    start_collector_with(data_dir, &[])
}

/// A collector given `extra` flags besides the addresses and `--settle-secs 0`.
pub fn start_collector_with(data_dir: &Path, extra: &[&str]) -> (ChildGuard, Addrs) {
    let addrs = Addrs {
        grpc: free_loopback_addr(),
        query: free_loopback_addr(),
    };
    let http = free_loopback_addr();
    let child = Command::new(env!("CARGO_BIN_EXE_throughline"))
        .arg("collector")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--grpc-addr", &addrs.grpc.to_string()])
        .args(["--http-addr", &http.to_string()])
        .args(["--query-addr", &addrs.query.to_string()])
        .args(["--settle-secs", "0"])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("the throughline binary starts");
    let guard = ChildGuard(child);
    assert!(
        wait_for_port(addrs.grpc, Duration::from_secs(20)),
        "collector listens for gRPC"
    );
    assert!(
        wait_for_port(addrs.query, Duration::from_secs(20)),
        "collector serves the query API"
    );
    (guard, addrs)
}

pub fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as u64
}

/// `trace id hex + span id hex` of every span in `seeds_like_batch(batch, traces, start)`.
pub fn span_keys(batch: u64, traces: usize, start: u64) -> Vec<String> {
    throughline_store::testdata::seeds_like_batch(batch, traces, start)
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|s| format!("{}{}", hex::encode(&s.trace_id), hex::encode(&s.span_id)))
        .collect()
}
