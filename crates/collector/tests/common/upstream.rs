//! The Python OTLP upstream (`crates/collector/tests/otlp_upstream.py`, built on the official
//! `opentelemetry-proto` package and grpcio) as a child process, with its control and stats.
#![allow(dead_code)] // each test file uses a different part of this module

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use throughline_testkit::ChildGuard;

/// What the upstream has seen.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct UpstreamStats {
    /// Distinct (trace id, span id) pairs.
    pub spans: u64,
    /// Spans received again.
    pub duplicates: u64,
    pub requests: u64,
    pub refused: u64,
    pub logs: u64,
    pub metrics: u64,
    pub headers: std::collections::HashMap<String, String>,
}

pub struct Upstream {
    pub grpc_port: u16,
    pub http_port: u16,
    _child: ChildGuard,
    client: reqwest::Client,
}

impl Upstream {
    /// Starts the upstream; blocking (it may first create the Python venv).
    pub fn start() -> Self {
        let script =
            throughline_testkit::workspace_root().join("crates/collector/tests/otlp_upstream.py");
        let python = throughline_testkit::python();
        let mut child = Command::new(python)
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the Python OTLP upstream starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the upstream prints its ports");
        let ports: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|err| panic!("the upstream's first line {line:?}: {err}"));
        let port = |k: &str| ports[k].as_u64().expect("a port") as u16;
        Self {
            grpc_port: port("grpc"),
            http_port: port("http"),
            _child: ChildGuard(child),
            client: reqwest::Client::new(),
        }
    }

    pub fn grpc_url(&self) -> String {
        format!("grpc://127.0.0.1:{}", self.grpc_port)
    }

    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// Sets how it answers from now on (see the script's docstring).
    pub async fn control(&self, settings: serde_json::Value) {
        let response = self
            .client
            .post(format!("http://127.0.0.1:{}/control", self.http_port))
            .body(settings.to_string())
            .send()
            .await
            .expect("control answers");
        assert!(response.status().is_success());
    }

    pub async fn stats(&self) -> UpstreamStats {
        self.client
            .get(format!("http://127.0.0.1:{}/stats", self.http_port))
            .send()
            .await
            .expect("stats answer")
            .json()
            .await
            .expect("stats are JSON")
    }

    /// The spans of `keys` (trace id hex followed by span id hex) never received.
    pub async fn missing(&self, keys: &[String]) -> Vec<String> {
        self.client
            .post(format!("http://127.0.0.1:{}/missing", self.http_port))
            .body(serde_json::to_string(keys).expect("JSON"))
            .send()
            .await
            .expect("missing answers")
            .json()
            .await
            .expect("missing is JSON")
    }

    /// Distinct spans received per trace (trace id hex).
    pub async fn traces(&self) -> std::collections::HashMap<String, u64> {
        self.client
            .get(format!("http://127.0.0.1:{}/traces", self.http_port))
            .send()
            .await
            .expect("traces answer")
            .json()
            .await
            .expect("traces are JSON")
    }

    /// Every string value received while recording.
    pub async fn strings(&self) -> Vec<String> {
        self.client
            .get(format!("http://127.0.0.1:{}/strings", self.http_port))
            .send()
            .await
            .expect("strings answer")
            .json()
            .await
            .expect("strings are JSON")
    }

    /// Waits until `done(stats)` holds, up to `timeout`; returns the last stats.
    pub async fn wait_for(
        &self,
        timeout: std::time::Duration,
        done: impl Fn(&UpstreamStats) -> bool,
    ) -> UpstreamStats {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let stats = self.stats().await;
            if done(&stats) || tokio::time::Instant::now() >= deadline {
                return stats;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}
