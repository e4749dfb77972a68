//! Shared by the shop's end-to-end tests: `throughline up shop` on free ports in a temp dir,
//! stopped with SIGTERM when the test ends; `throughline load shop` against it; its logs.

#![allow(dead_code)] // each test file uses a different part of this module

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use throughline_testkit::{free_loopback_addr, wait_for_port};

/// A running `throughline up shop`.
pub struct Shop {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub loadgen: SocketAddr,
    pub catalog: SocketAddr,
    pub checkout: SocketAddr,
    pub query: SocketAddr,
}

impl Shop {
    /// Starts the shop with extra flags and waits for its three services.
    pub fn up(flags: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        // Reachable by the `postgres` user `up --postgres` runs its server as when we are root.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("open the data directory to the postgres user");
        let [loadgen, catalog, checkout, broker, grpc, http, query] =
            std::array::from_fn(|_| free_loopback_addr());
        let child = Command::new(env!("CARGO_BIN_EXE_throughline"))
            .args(["up", "shop", "--data-dir"])
            .arg(dir.path())
            .args(["--loadgen-addr", &loadgen.to_string()])
            .args(["--catalog-addr", &catalog.to_string()])
            .args(["--checkout-addr", &checkout.to_string()])
            .args(["--broker-addr", &broker.to_string()])
            .args(["--otlp-grpc-addr", &grpc.to_string()])
            .args(["--otlp-http-addr", &http.to_string()])
            .args(["--query-addr", &query.to_string()])
            .args(["--settle-secs", "2"])
            .args(flags)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start throughline up shop");
        let shop = Self {
            child: Some(child),
            dir,
            loadgen,
            catalog,
            checkout,
            query,
        };
        for (name, addr) in [("load-generator", loadgen), ("checkout", checkout)] {
            assert!(
                wait_for_port(addr, Duration::from_secs(60)),
                "{name} did not come up; logs:\n{}",
                shop.logs()
            );
        }
        shop
    }

    /// Waits until the catalog answers its health check (seeded and serving).
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        let url = format!("http://{}/health", self.catalog);
        while Instant::now() < deadline {
            if let Ok(r) = reqwest::get(&url).await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("the catalog never answered /health; logs:\n{}", self.logs());
    }

    /// `throughline load shop` with `args`: its exit code and JSON summary.
    pub fn load(&self, args: &[&str]) -> (i32, Value) {
        let output = Command::new(env!("CARGO_BIN_EXE_throughline"))
            .args(["load", "shop", "--json", "--quiet"])
            .args(["--api", &format!("http://{}", self.loadgen)])
            .args(["--query", &format!("http://{}", self.query)])
            .args(args)
            .output()
            .expect("run throughline load shop");
        let text = String::from_utf8_lossy(&output.stdout);
        let summary = serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!(
                "load's summary is not JSON ({e}): {text}\nstderr: {}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
        (output.status.code().unwrap_or(-1), summary)
    }

    /// Every part's log, concatenated.
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

    /// The JSON log lines of one part (its log file under `DATA/logs`).
    pub fn json_logs(&self, part: &str) -> Vec<Value> {
        let mut lines = Vec::new();
        if let Ok(entries) = std::fs::read_dir(self.dir.path().join("logs")) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(part) {
                    let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                    lines.extend(text.lines().filter_map(|l| serde_json::from_str(l).ok()));
                }
            }
        }
        lines
    }

    /// One trace from the query API (Jaeger JSON), `None` while the collector has none of it.
    pub async fn trace(&self, trace_id: &str) -> Option<Value> {
        let body: Value = reqwest::get(format!("http://{}/api/traces/{trace_id}", self.query))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        body.get("data")?.get(0).cloned()
    }

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

impl Drop for Shop {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A span's tags as `(key, value)`.
pub type Tags = Vec<(String, Value)>;

/// Every span of a Jaeger trace as `(service, operation, tags)`.
pub fn spans(trace: &Value) -> Vec<(String, String, Tags)> {
    let processes = &trace["processes"];
    trace["spans"]
        .as_array()
        .map(|spans| {
            spans
                .iter()
                .map(|s| {
                    let pid = s["processID"].as_str().unwrap_or("");
                    let service = processes[pid]["serviceName"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned();
                    let tags = s["tags"]
                        .as_array()
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
                    (
                        service,
                        s["operationName"].as_str().unwrap_or("").to_owned(),
                        tags,
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}
