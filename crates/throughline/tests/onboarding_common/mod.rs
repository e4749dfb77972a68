//! Shared by the onboarding end-to-end tests: `throughline up` on free ports in a temp dir,
//! stopped with SIGTERM (as Ctrl-C would) when the test ends, and trace reading helpers.

#![allow(dead_code)] // each test file uses a different part of this module

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use throughline_testkit::{free_loopback_addr, wait_for_port};

/// A running `throughline up`.
pub struct System {
    pub child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub api: SocketAddr,
    pub query: SocketAddr,
    pub broker: SocketAddr,
}

impl System {
    /// Starts the system with extra flags and environment, and waits for the API.
    pub fn up(flags: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let (api, broker, grpc, http, query) = (
            free_loopback_addr(),
            free_loopback_addr(),
            free_loopback_addr(),
            free_loopback_addr(),
            free_loopback_addr(),
        );
        let child = Command::new(env!("CARGO_BIN_EXE_throughline"))
            .arg("up")
            .args(["--data-dir", dir.path().to_str().expect("utf-8 temp path")])
            .args([
                "--api-addr",
                &api.to_string(),
                "--broker-addr",
                &broker.to_string(),
            ])
            .args([
                "--otlp-grpc-addr",
                &grpc.to_string(),
                "--otlp-http-addr",
                &http.to_string(),
            ])
            .args(["--query-addr", &query.to_string()])
            .args(flags)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start throughline up");
        let system = Self {
            child: Some(child),
            dir,
            api,
            query,
            broker,
        };
        assert!(
            wait_for_port(api, Duration::from_secs(30)),
            "onboarding-api did not come up; logs:\n{}",
            system.logs()
        );
        system
    }

    pub fn logs(&self) -> String {
        let mut out = String::new();
        if let Ok(entries) = std::fs::read_dir(self.dir.path().join("logs")) {
            for e in entries.flatten() {
                out.push_str(&format!(
                    "--- {}\n{}\n",
                    e.path().display(),
                    std::fs::read_to_string(e.path()).unwrap_or_default()
                ));
            }
        }
        out
    }

    pub fn log_dir(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    /// SIGTERM, as Ctrl-C would stop it; returns whether it exited cleanly within 20 s.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }
}

impl Drop for System {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The Jaeger-format trace, or `None` while the collector has none of it.
pub async fn trace(client: &reqwest::Client, query: SocketAddr, trace_id: &str) -> Option<Value> {
    let resp = client
        .get(format!("http://{query}/api/traces/{trace_id}"))
        .send()
        .await
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let body: Value = resp.json().await.ok()?;
    body.get("data")?.get(0).cloned()
}

/// One span of a Jaeger trace, flattened for assertions.
#[derive(Debug, Clone)]
pub struct SpanView {
    pub id: String,
    pub parent: Option<String>,
    pub service: String,
    pub kind: String,
    pub name: String,
    pub error: bool,
    pub tags: Vec<(String, Value)>,
}

pub fn spans(trace: &Value) -> Vec<SpanView> {
    let processes = trace.get("processes").cloned().unwrap_or(Value::Null);
    let Some(spans) = trace.get("spans").and_then(Value::as_array) else {
        return Vec::new();
    };
    spans
        .iter()
        .map(|s| {
            let tags: Vec<(String, Value)> = s
                .get("tags")
                .and_then(Value::as_array)
                .map(|t| {
                    t.iter()
                        .map(|t| {
                            (
                                t["key"].as_str().unwrap_or("").to_owned(),
                                t["value"].clone(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let tag = |k: &str| {
                tags.iter()
                    .find(|(key, _)| key == k)
                    .map(|(_, v)| v.clone())
            };
            SpanView {
                id: s["spanID"].as_str().unwrap_or("").to_owned(),
                parent: s["references"].as_array().and_then(|r| {
                    r.iter()
                        .find(|r| r["refType"] == "CHILD_OF")
                        .and_then(|r| r["spanID"].as_str())
                        .map(str::to_owned)
                }),
                service: processes[s["processID"].as_str().unwrap_or("")]["serviceName"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
                kind: tag("span.kind")
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                name: s["operationName"].as_str().unwrap_or("").to_owned(),
                error: tag("error") == Some(Value::Bool(true)),
                tags,
            }
        })
        .collect()
}

/// POSTs one customer; returns the status and the answer.
pub async fn onboard(client: &reqwest::Client, api: SocketAddr, body: &Value) -> (u16, Value) {
    let resp = client
        .post(format!("http://{api}/onboard"))
        .json(body)
        .send()
        .await
        .expect("POST /onboard");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

pub async fn customer_status(
    client: &reqwest::Client,
    api: SocketAddr,
    id: &str,
) -> Option<String> {
    let body: Value = client
        .get(format!("http://{api}/customers/{id}"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    body.get("status")
        .and_then(Value::as_str)
        .map(str::to_owned)
}
