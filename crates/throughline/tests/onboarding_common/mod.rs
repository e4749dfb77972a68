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
        Self::up_in(tempfile::tempdir().expect("temp dir"), flags, env)
    }

    /// As [`System::up`], in a data directory of the caller's (e.g. one a stopped system used).
    pub fn up_in(dir: tempfile::TempDir, flags: &[&str], env: &[(&str, &str)]) -> Self {
        let (api, broker, grpc, http, query) = (
            free_loopback_addr(),
            free_loopback_addr(),
            free_loopback_addr(),
            free_loopback_addr(),
            free_loopback_addr(),
        );
        let child = Command::new(env!("CARGO_BIN_EXE_throughline"))
            .args(["up", "onboarding"])
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

    /// `up`'s own output up to its `try:` line (the banner), read from its stdout.
    pub fn banner(&mut self) -> String {
        use std::io::BufRead as _;
        let stdout = self
            .child
            .as_mut()
            .and_then(|c| c.stdout.take())
            .expect("up's stdout, read once");
        let mut out = String::new();
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.expect("a line of up's output");
            out.push_str(&line);
            out.push('\n');
            if line.starts_with("try:") {
                break;
            }
        }
        out
    }

    /// The pid of `throughline up`.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Every process started under `up` (its parts, and what they started), by pid.
    pub fn descendants(&self) -> Vec<(u32, String)> {
        descendants_of(self.pid())
    }

    /// The pid of the part whose command line holds `word` (e.g. `broker`).
    pub fn part_pid(&self, word: &str) -> Option<u32> {
        children_of(self.pid())
            .into_iter()
            .find(|(_, cmd)| cmd.split(' ').nth(1) == Some(word))
            .map(|(pid, _)| pid)
    }

    /// Stops the system and hands back its data directory.
    pub fn into_dir(mut self) -> tempfile::TempDir {
        self.stop();
        let dir = tempfile::tempdir().expect("temp dir");
        std::mem::replace(&mut self.dir, dir)
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

impl System {
    /// SIGTERM, then `up`'s exit and its stderr (what it told the terminal).
    pub fn stop_with_output(&mut self) -> (bool, String) {
        use std::io::Read as _;
        let stderr = self.child.as_mut().and_then(|c| c.stderr.take());
        let clean = self.stop();
        let mut text = String::new();
        if let Some(mut stderr) = stderr {
            let _ = stderr.read_to_string(&mut text);
        }
        (clean, text)
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

/// The store's verdict on one trace, asked for by id.
pub async fn integrity(
    client: &reqwest::Client,
    query: SocketAddr,
    trace_id: &str,
) -> throughline_jaeger::IntegrityReport {
    let body: throughline_jaeger::Envelope<Vec<throughline_jaeger::IntegrityReport>> = client
        .get(format!(
            "http://{query}/api/throughline/integrity?traceID={trace_id}"
        ))
        .send()
        .await
        .expect("the integrity API answers")
        .json()
        .await
        .expect("integrity JSON");
    body.into_result()
        .expect("no errors")
        .into_iter()
        .next()
        .expect("a report for the trace")
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

/// The direct children of `pid` with their command lines (from /proc).
pub fn children_of(pid: u32) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in entries.flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid …: comm may hold spaces, so read after the last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            let cmd = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            out.push((child, cmd.trim().to_owned()));
        }
    }
    out
}

/// Every descendant of `pid`.
pub fn descendants_of(pid: u32) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    let mut queue = vec![pid];
    while let Some(p) = queue.pop() {
        for (child, cmd) in children_of(p) {
            queue.push(child);
            out.push((child, cmd));
        }
    }
    out
}

/// Whether a process is still alive (a zombie counts as gone).
pub fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next())
        .is_some_and(|state| state != 'Z')
}
