//! A throwaway Prometheus Alertmanager from Debian's `prometheus-alertmanager` package, on a
//! loopback port with its own data directory, clustering off.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{ChildGuard, free_loopback_addr, wait_for_port};

/// Where Debian installs the binary.
pub const ALERTMANAGER_BIN: &str = "/usr/bin/prometheus-alertmanager";

/// A running Alertmanager, killed (and its directory removed) on drop.
#[derive(Debug)]
pub struct AlertmanagerServer {
    pub addr: SocketAddr,
    _child: ChildGuard,
    _dir: tempfile::TempDir,
}

impl AlertmanagerServer {
    /// Starts one that routes everything to a receiver that sends nothing; panics naming the
    /// package when it is not installed.
    pub fn start() -> Self {
        let bin = PathBuf::from(ALERTMANAGER_BIN);
        assert!(
            bin.exists(),
            "{ALERTMANAGER_BIN} is missing: apt-get install prometheus-alertmanager"
        );
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(
            &config,
            "route:\n  receiver: quiet\n  group_wait: 1s\n  group_interval: 1s\nreceivers:\n  - name: quiet\n",
        )
        .expect("write the Alertmanager config");
        let addr = free_loopback_addr();
        let log = std::fs::File::create(dir.path().join("alertmanager.log")).expect("a log file");
        let child = Command::new(&bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {ALERTMANAGER_BIN}: {e}"));
        let child = ChildGuard(child);
        assert!(
            wait_for_port(addr, Duration::from_secs(20)),
            "Alertmanager did not listen on {addr}: {}",
            std::fs::read_to_string(dir.path().join("alertmanager.log")).unwrap_or_default()
        );
        Self {
            addr,
            _child: child,
            _dir: dir,
        }
    }

    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}
