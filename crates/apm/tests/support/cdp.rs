//! A small Chrome DevTools Protocol client over `--remote-debugging-pipe`: the browser reads
//! NUL-terminated JSON messages on fd 3 and writes them on fd 4. A shell maps those fds to the
//! child's stdin and stdout, so no WebSocket stack or unsafe fd handling is needed.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};

/// How long one protocol exchange may take before the test gives up (a hang guard, not a
/// performance assertion).
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(60);

/// Finds Debian's `chromium` (or another Chrome) on PATH, or fails saying how to install it.
pub fn chromium_path() -> anyhow::Result<PathBuf> {
    for name in ["chromium", "chromium-browser", "google-chrome", "chrome"] {
        if let Some(dir) = std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .find(|dir| dir.join(name).is_file())
        {
            return Ok(dir.join(name));
        }
    }
    bail!(
        "the browser tests need chromium on PATH: install it with \
         `apt-get update && apt-get install -y chromium` (.ci/run does this in CI)"
    )
}

/// Something the page reported that a person would see as broken.
#[derive(Debug, Clone)]
pub struct ConsoleProblem {
    pub url: String,
    pub text: String,
}

/// A headless browser with one page attached.
pub struct Browser {
    child: Child,
    stdin: ChildStdin,
    rx: Receiver<Value>,
    next_id: u64,
    session: String,
    /// Console errors, uncaught exceptions and failed loads seen so far.
    pub problems: Vec<ConsoleProblem>,
    load_fired: bool,
    current_url: String,
}

impl Browser {
    pub fn launch(user_data_dir: &Path) -> anyhow::Result<Self> {
        let chromium = chromium_path()?;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg("exec \"$0\" \"$@\" 3<&0 4>&1 0</dev/null 1>/dev/null")
            .arg(&chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--remote-debugging-pipe",
                "--hide-scrollbars",
                "--window-size=1366,900",
            ])
            .arg(format!("--user-data-dir={}", user_data_dir.display()))
            .arg("about:blank")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("start {}", chromium.display()))?;
        let stdin = child.stdin.take().context("chromium stdin")?;
        let stdout = child.stdout.take().context("chromium stdout")?;
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(0, &mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        if buf.last() == Some(&0) {
                            buf.pop();
                        }
                        if let Ok(v) = serde_json::from_slice::<Value>(&buf)
                            && tx.send(v).is_err()
                        {
                            return;
                        }
                    }
                }
            }
        });
        let mut browser = Browser {
            child,
            stdin,
            rx,
            next_id: 0,
            session: String::new(),
            problems: Vec::new(),
            load_fired: false,
            current_url: String::new(),
        };
        let target =
            browser.call_browser("Target.createTarget", json!({ "url": "about:blank" }))?;
        let target_id = target["targetId"].as_str().context("targetId")?.to_owned();
        let attached = browser.call_browser(
            "Target.attachToTarget",
            json!({ "targetId": target_id, "flatten": true }),
        )?;
        browser.session = attached["sessionId"]
            .as_str()
            .context("sessionId")?
            .to_owned();
        for domain in ["Page.enable", "Runtime.enable", "Log.enable"] {
            browser.call(domain, json!({}))?;
        }
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 1366, "height": 900, "deviceScaleFactor": 1, "mobile": false }),
        )?;
        Ok(browser)
    }

    fn send(
        &mut self,
        method: &str,
        params: Value,
        session: Option<String>,
    ) -> anyhow::Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            msg["sessionId"] = Value::String(s);
        }
        let mut bytes = serde_json::to_vec(&msg)?;
        bytes.push(0);
        self.stdin.write_all(&bytes).context("write to chromium")?;
        self.stdin.flush()?;
        let deadline = Instant::now() + EXCHANGE_TIMEOUT;
        loop {
            let msg = self
                .recv(deadline)
                .with_context(|| format!("waiting for the reply to {method}"))?;
            if msg["id"].as_u64() == Some(id) {
                if let Some(err) = msg.get("error") {
                    bail!("{method} failed: {err}");
                }
                return Ok(msg["result"].clone());
            }
            self.event(&msg);
        }
    }

    fn recv(&mut self, deadline: Instant) -> anyhow::Result<Value> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.rx.recv_timeout(left) {
            Ok(v) => Ok(v),
            Err(RecvTimeoutError::Timeout) => {
                Err(anyhow!("chromium did not answer in {EXCHANGE_TIMEOUT:?}"))
            }
            Err(RecvTimeoutError::Disconnected) => Err(anyhow!("chromium exited")),
        }
    }

    fn event(&mut self, msg: &Value) {
        let params = &msg["params"];
        match msg["method"].as_str() {
            Some("Page.loadEventFired") => self.load_fired = true,
            Some("Runtime.exceptionThrown") => self.problems.push(ConsoleProblem {
                url: self.current_url.clone(),
                text: format!("uncaught exception: {}", params["exceptionDetails"]),
            }),
            Some("Runtime.consoleAPICalled")
                if matches!(params["type"].as_str(), Some("error" | "assert")) =>
            {
                self.problems.push(ConsoleProblem {
                    url: self.current_url.clone(),
                    text: format!("console.{}: {}", params["type"], params["args"]),
                })
            }
            Some("Log.entryAdded") if params["entry"]["level"].as_str() == Some("error") => {
                self.problems.push(ConsoleProblem {
                    url: params["entry"]["url"]
                        .as_str()
                        .unwrap_or(&self.current_url)
                        .to_owned(),
                    text: format!("log error: {}", params["entry"]["text"]),
                })
            }
            _ => {}
        }
    }

    fn call_browser(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        self.send(method, params, None)
    }

    /// A command to the attached page.
    pub fn call(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        let session = self.session.clone();
        self.send(method, params, Some(session))
    }

    /// Opens `url` and waits for its load event.
    pub fn goto(&mut self, url: &str) -> anyhow::Result<()> {
        self.load_fired = false;
        self.current_url = url.to_owned();
        let nav = self.call("Page.navigate", json!({ "url": url }))?;
        if let Some(err) = nav.get("errorText").and_then(Value::as_str) {
            bail!("navigating to {url}: {err}");
        }
        self.wait_for_load(url)
    }

    fn wait_for_load(&mut self, what: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + EXCHANGE_TIMEOUT;
        while !self.load_fired {
            let msg = self
                .recv(deadline)
                .with_context(|| format!("waiting for {what} to load"))?;
            self.event(&msg);
        }
        Ok(())
    }

    /// Runs a JavaScript expression in the page and returns its value.
    pub fn eval(&mut self, expression: &str) -> anyhow::Result<Value> {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
        )?;
        if let Some(ex) = r.get("exceptionDetails") {
            bail!("evaluating {expression}: {ex}");
        }
        Ok(r["result"]["value"].clone())
    }

    /// The page's visible text.
    pub fn text(&mut self) -> anyhow::Result<String> {
        Ok(self
            .eval("document.body.innerText")?
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// Clicks the first element matching `selector` and, when it navigates, waits for the load.
    pub fn click_and_wait(&mut self, selector: &str) -> anyhow::Result<()> {
        self.load_fired = false;
        let sel = serde_json::to_string(selector)?;
        let found = self.eval(&format!(
            "(() => {{ const e = document.querySelector({sel}); if (!e) return false; e.dispatchEvent(new MouseEvent('click', {{ bubbles: true, cancelable: true, view: window }})); return true; }})()"
        ))?;
        if found != Value::Bool(true) {
            bail!("no element matches {selector} on {}", self.current_url);
        }
        self.wait_for_load(selector)?;
        self.current_url = self
            .eval("location.href")?
            .as_str()
            .unwrap_or_default()
            .to_owned();
        Ok(())
    }

    /// Types `text` into the focused element as key presses, then presses Enter and waits for
    /// the page it opens.
    pub fn type_and_submit(&mut self, text: &str) -> anyhow::Result<()> {
        self.call("Input.insertText", json!({ "text": text }))?;
        self.load_fired = false;
        for kind in ["keyDown", "keyUp"] {
            self.call(
                "Input.dispatchKeyEvent",
                json!({ "type": kind, "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13, "text": if kind == "keyDown" { "\r" } else { "" } }),
            )?;
        }
        self.wait_for_load("the submitted form")?;
        self.current_url = self
            .eval("location.href")?
            .as_str()
            .unwrap_or_default()
            .to_owned();
        Ok(())
    }

    /// Presses a printable key (dispatched to the focused element or the document).
    pub fn press(&mut self, key: &str) -> anyhow::Result<()> {
        for kind in ["keyDown", "keyUp"] {
            self.call("Input.dispatchKeyEvent", json!({ "type": kind, "key": key, "text": if kind == "keyDown" { key } else { "" } }))?;
        }
        Ok(())
    }

    /// A PNG of the page, the full height of its content up to `max_height` CSS pixels.
    pub fn screenshot(&mut self, path: &Path, max_height: f64) -> anyhow::Result<()> {
        use base64::Engine as _;
        self.eval("window.scrollTo(0, 0)")?;
        let height = self
            .eval("document.documentElement.scrollHeight")?
            .as_f64()
            .unwrap_or(900.0)
            .min(max_height);
        let shot = self.call(
            "Page.captureScreenshot",
            json!({ "format": "png", "captureBeyondViewport": true, "clip": { "x": 0, "y": 0, "width": 1366, "height": height, "scale": 1 } }),
        )?;
        let data = shot["data"].as_str().context("screenshot data")?;
        let png = base64::engine::general_purpose::STANDARD.decode(data)?;
        std::fs::write(path, png).with_context(|| format!("write {}", path.display()))?;
        Ok(())
    }

    pub fn url(&self) -> &str {
        &self.current_url
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
