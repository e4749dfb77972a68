//! Test support shared by throughline's integration tests: free loopback ports, the Python venv
//! that holds interop peers (boto3, moto, the Python OpenTelemetry SDK), and child processes that
//! are killed when the test ends.
//!
//! Integration tests only; nothing here is used by shipped code. [`PostgresServer`] starts a
//! throwaway PostgreSQL from the Debian packages, [`AlertmanagerServer`] a Prometheus
//! Alertmanager, [`MotoS3`] moto's S3 server.

mod alertmanager;
mod moto;
mod postgres;

pub use alertmanager::{ALERTMANAGER_BIN, AlertmanagerServer};
pub use moto::{MOTO_CREDENTIALS, MotoS3};
pub use postgres::{POSTGRES_DATABASE, POSTGRES_USER, PostgresServer};

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// The workspace root (the folder holding the root `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    // CARGO_MANIFEST_DIR is crates/testkit at compile time; the root is two levels up.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/testkit sits two levels below the workspace root")
        .to_path_buf()
}

/// A loopback address whose port is free now and that no other call in this process returns.
///
/// The port is taken below Linux's default ephemeral range (32768–60999), from a walk that
/// starts at a point of its own for each process. A port of that range can be handed to any
/// outgoing connection as its source port, on this machine and by any test, in the moment
/// between this call and the server's bind, or while a test restarts a server on the same port
/// (a `kill -9` and a restart). Below it, only an explicit bind can take it.
pub fn free_loopback_addr() -> SocketAddr {
    const FIRST: u32 = 20_000;
    const PORTS: u32 = 32_768 - FIRST;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    static START: OnceLock<u32> = OnceLock::new();
    let start = *START.get_or_init(|| std::process::id().wrapping_mul(7_919) % PORTS);
    for _ in 0..PORTS {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = FIRST + (start + n) % PORTS;
        let Ok(port) = u16::try_from(port) else {
            continue;
        };
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            return listener
                .local_addr()
                .expect("a bound listener has an address");
        }
    }
    // Every port of the walk is in use: the kernel's choice, as a last resort.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port on 127.0.0.1");
    listener
        .local_addr()
        .expect("a bound listener has an address")
}

/// The python interpreter of the interop venv, created on first use from
/// `tests/python-requirements.txt` by `scripts/python-venv`.
///
/// Panics with a message naming what is missing when the venv cannot be made (no python3, no
/// access to the package registry): a test that needs a peer fails saying so.
pub fn python() -> PathBuf {
    let script = workspace_root().join("scripts/python-venv");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .unwrap_or_else(|err| panic!("could not run {}: {err}", script.display()));
    assert!(
        out.status.success(),
        "the interop Python venv could not be created by {} (needs python3 with venv and pip, and \
         access to PyPI):\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// A child process that is killed and reaped when dropped, so a failing test leaves nothing behind.
#[derive(Debug)]
pub struct ChildGuard(pub Child);

impl ChildGuard {
    /// Sends SIGKILL now (the crash tests' `kill -9`) and waits for the process to go.
    pub fn kill9(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Waits until something accepts TCP connections on `addr`, up to `timeout`.
pub fn wait_for_port(addr: SocketAddr, timeout: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(100))
            .is_ok()
        {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    false
}
