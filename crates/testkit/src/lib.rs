//! Test support shared by throughline's integration tests: free loopback ports, the Python venv
//! that holds interop peers (boto3, moto, the Python OpenTelemetry SDK), and child processes that
//! are killed when the test ends.
//!
//! Integration tests only; nothing here is used by shipped code. [`PostgresServer`] starts a
//! throwaway PostgreSQL from the Debian packages, [`AlertmanagerServer`] a Prometheus Alertmanager.

mod alertmanager;
mod postgres;

pub use alertmanager::{ALERTMANAGER_BIN, AlertmanagerServer};
pub use postgres::{POSTGRES_DATABASE, POSTGRES_USER, PostgresServer};

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

/// The workspace root (the folder holding the root `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    // CARGO_MANIFEST_DIR is crates/testkit at compile time; the root is two levels up.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/testkit sits two levels below the workspace root")
        .to_path_buf()
}

/// A loopback address with a port that was free a moment ago.
pub fn free_loopback_addr() -> SocketAddr {
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
