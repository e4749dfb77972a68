//! The README's own commands, run as a newcomer pastes them: every ```sh block marked
//! `<!-- readme-test: NAME -->` runs in one bash shell, in a fresh directory, with `throughline`
//! (and `cargo run --release --`, `target/release/…`) meaning the binaries cargo built for this
//! test, and the `aws` CLI from the interop venv. Long-running commands (`up`, `collector`,
//! `broker`, `lambda`, `apm`) start in the background and are stopped with SIGTERM, as Ctrl-C
//! would, at the end of the block; the lines after one wait until it listens. Each test then
//! checks what the README says the commands show.
//!
//! The blocks use the README's default ports, so they run one at a time, and a block whose port
//! is taken fails naming it.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The blocks this file runs; a marked block the README grows must be added here.
const BLOCKS: &[&str] = &["quickstart", "collector", "broker", "lambda"];

/// How long one block may take from its first line to its last.
const BLOCK_DEADLINE: Duration = Duration::from_secs(180);

/// The README's blocks share the default ports: one block at a time.
static DEFAULT_PORTS: Mutex<()> = Mutex::new(());

/// One marked block: its name and its commands (a command's continuation lines kept with it).
#[derive(Debug)]
struct Block {
    name: String,
    commands: Vec<String>,
}

/// Every marked ```sh block of the README, in order.
fn readme_blocks(text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(name) = line
            .trim()
            .strip_prefix("<!-- readme-test:")
            .and_then(|rest| rest.strip_suffix("-->"))
        else {
            continue;
        };
        let name = name.trim().to_owned();
        assert_eq!(
            lines.next().map(str::trim),
            Some("```sh"),
            "README: the marker `readme-test: {name}` must sit right above a ```sh fence"
        );
        let (mut commands, mut current) = (Vec::new(), String::new());
        for line in lines.by_ref() {
            if line.trim_start().starts_with("```") {
                break;
            }
            if current.is_empty() && (line.trim().is_empty() || line.trim().starts_with('#')) {
                continue;
            }
            current.push_str(line);
            if line.trim_end().ends_with('\\') {
                current.push('\n');
            } else {
                commands.push(std::mem::take(&mut current));
            }
        }
        assert!(
            current.is_empty(),
            "README block {name} ends inside a continued line"
        );
        blocks.push(Block { name, commands });
    }
    blocks
}

fn readme_block(name: &str) -> Block {
    let path = throughline_testkit::workspace_root().join("README.md");
    let text = std::fs::read_to_string(&path).expect("read README.md");
    let blocks = readme_blocks(&text);
    let marked: BTreeSet<&str> = blocks.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(
        marked,
        BLOCKS.iter().copied().collect(),
        "README.md's readme-test markers and this test's blocks differ"
    );
    blocks
        .into_iter()
        .find(|b| b.name == name)
        .expect("listed above")
}

/// The command without its shell comments (a `#` that starts a word, outside quotes).
fn strip_comments(command: &str) -> String {
    let (mut out, mut quote, mut comment, mut prev) = (String::new(), None, false, ' ');
    for c in command.chars() {
        if comment {
            if c == '\n' {
                comment = false;
                out.push(c);
            }
            continue;
        }
        match (quote, c) {
            (None, '#') if prev.is_whitespace() => {
                comment = true;
                continue;
            }
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            _ => {}
        }
        out.push(c);
        prev = c;
    }
    out.trim_end().to_owned()
}

/// The words of a command after its `NAME=value` prefixes.
fn words(command: &str) -> Vec<String> {
    strip_comments(command)
        .split_whitespace()
        .filter(|w| *w != "\\")
        .skip_while(|w| {
            w.split_once('=').is_some_and(|(name, _)| {
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
        })
        .map(str::to_owned)
        .collect()
}

/// `--flag VALUE` or `--flag=VALUE`.
fn flag<'a>(words: &'a [String], name: &str) -> Option<&'a str> {
    words.iter().enumerate().find_map(|(i, w)| {
        if w == name {
            words.get(i + 1).map(String::as_str)
        } else {
            w.strip_prefix(name)?.strip_prefix('=')
        }
    })
}

/// What a long-running command listens on (its flags, else its defaults), or `None` for a
/// command that ends by itself.
fn listens(words: &[String]) -> Option<Vec<SocketAddr>> {
    if words.first().map(String::as_str) != Some("throughline") {
        return None;
    }
    let flags: &[(&str, &str)] = match words.get(1).map(String::as_str)? {
        "up" => &[
            ("--api-addr", "127.0.0.1:8000"),
            ("--broker-addr", "127.0.0.1:9324"),
            ("--otlp-grpc-addr", "127.0.0.1:4317"),
            ("--otlp-http-addr", "127.0.0.1:4318"),
            ("--query-addr", "127.0.0.1:16686"),
            ("--loadgen-addr", "127.0.0.1:8010"),
            ("--catalog-addr", "127.0.0.1:8014"),
            ("--checkout-addr", "127.0.0.1:8016"),
            ("--events-api-addr", "127.0.0.1:8020"),
            ("--events-webhook-addr", "127.0.0.1:8021"),
        ],
        "collector" => &[
            ("--grpc-addr", "127.0.0.1:4317"),
            ("--http-addr", "127.0.0.1:4318"),
            ("--query-addr", "127.0.0.1:16686"),
        ],
        "broker" => &[("--listen", "127.0.0.1:9324")],
        "apm" => &[("--listen", "127.0.0.1:16686")],
        "lambda" => &[],
        _ => return None,
    };
    Some(
        flags
            .iter()
            .map(|(name, default)| {
                let addr = flag(words, name).unwrap_or(default);
                addr.parse()
                    .unwrap_or_else(|_| panic!("README: {name} {addr} is not an address"))
            })
            .collect(),
    )
}

/// `cargo run --release --` and `target/release/X` as the binaries built for this test.
fn rewrite(command: &str, bin: &Path) -> String {
    let mut out = command.replace("cargo run --release -- ", "throughline ");
    while let Some(at) = out.find("target/release/") {
        let name_start = at + "target/release/".len();
        let name_end = out[name_start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .map_or(out.len(), |i| name_start + i);
        let name = out[name_start..name_end].to_owned();
        let start = if out[..at].ends_with("./") {
            at - 2
        } else {
            at
        };
        let path = bin.join(&name);
        assert!(
            path.exists(),
            "the README runs target/release/{name}, which this test does not provide"
        );
        out.replace_range(start..name_end, path.to_str().expect("utf-8 path"));
    }
    out
}

/// The directory put first on `PATH`: `throughline` as cargo built it, each service's own
/// binary as the same entry point (`throughline serve NAME`, which its `main` also calls), and
/// `your-service` as an application on the OpenTelemetry Python SDK with its defaults.
fn bin_dir(dir: &Path, python: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("bin dir");
    let throughline = env!("CARGO_BIN_EXE_throughline");
    std::os::unix::fs::symlink(throughline, bin.join("throughline")).expect("link throughline");
    let mut scripts = vec![(
        "your-service".to_owned(),
        format!("#!{}\n{YOUR_SERVICE}", python.display()),
    )];
    for service in ["onboarding-api", "onboarding-lambda"] {
        scripts.push((
            service.to_owned(),
            format!("#!/bin/sh\nexec '{throughline}' serve {service} \"$@\"\n"),
        ));
    }
    for (name, text) in scripts {
        let path = bin.join(name);
        std::fs::write(&path, text).expect("write a stand-in");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    bin
}

/// `your-service` of the collector's example: a service on the OpenTelemetry Python SDK that
/// answers one request (a SERVER span with a child) and exports it as the SDK does by default
/// (`OTEL_EXPORTER_OTLP_PROTOCOL` unset: `http/protobuf`, to `OTEL_EXPORTER_OTLP_ENDPOINT`).
const YOUR_SERVICE: &str = r#"
import os
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
if os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf") == "grpc":
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
else:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
provider = TracerProvider(resource=Resource.create())
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
tracer = provider.get_tracer("your-service")
with tracer.start_as_current_span("GET /hello", kind=trace.SpanKind.SERVER):
    with tracer.start_as_current_span("load greeting"):
        pass
provider.shutdown()
print("answered GET /hello")
"#;

/// The bash script that runs a block: each command in turn, output to `out/N.{out,err}`, exit
/// status to `out/N.status`; a long-running one in the background, waited for until it listens.
fn script(commands: &[(String, Option<Vec<SocketAddr>>)]) -> String {
    let mut s = String::from(
        r#"out="$README_TEST_OUT"
bg=()
ready() { # N PID ADDR...: wait until each ADDR accepts, or the process is gone
  local n=$1 pid=$2; shift 2
  for addr in "$@"; do
    local until=$((SECONDS + 60))
    until (exec 3<>"/dev/tcp/${addr%:*}/${addr##*:}") 2>/dev/null; do
      if ! kill -0 "$pid" 2>/dev/null || [ "$SECONDS" -ge "$until" ]; then
        echo "not listening on $addr" > "$out/$n.ready"; return
      fi
      sleep 0.1
    done
  done
  echo ready > "$out/$n.ready"
}
"#,
    );
    for (n, (command, listens)) in commands.iter().enumerate() {
        match listens {
            Some(addrs) => {
                let addrs: Vec<String> = addrs.iter().map(ToString::to_string).collect();
                let _ = writeln!(
                    s,
                    "{} > \"$out/{n}.out\" 2> \"$out/{n}.err\" < /dev/null &\nbg+=(\"{n}:$!\")\necho $! > \"$out/{n}.pid\"\nready {n} $! {}",
                    strip_comments(command),
                    addrs.join(" ")
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "{{ {command}\n}} > \"$out/{n}.out\" 2> \"$out/{n}.err\" < /dev/null\necho $? > \"$out/{n}.status\""
                );
            }
        }
    }
    s.push_str(
        r#": > "$out/done"
until [ -e "$out/stop" ]; do sleep 0.1; done
for ((i = ${#bg[@]} - 1; i >= 0; i--)); do
  n=${bg[i]%%:*} pid=${bg[i]#*:}
  if kill -0 "$pid" 2>/dev/null; then echo alive > "$out/$n.alive"; kill -TERM "$pid"; fi
  wait "$pid"; echo $? > "$out/$n.status"
done
"#,
    );
    s
}

/// A block being run by bash in its own process group (killed whole if the test fails).
struct Run {
    name: String,
    commands: Vec<(String, Option<Vec<SocketAddr>>)>,
    out: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Run {
    /// Starts the block named `name` and waits until its last command has run.
    fn block(name: &str) -> Self {
        let block = readme_block(name);
        let dir = tempfile::tempdir().expect("temp dir");
        let python = throughline_testkit::python();
        let venv_bin = python.parent().expect("the venv's bin dir").to_path_buf();
        assert!(
            venv_bin.join("aws").exists(),
            "the interop venv has no `aws` CLI: tests/python-requirements.txt must list awscli"
        );
        let bin = bin_dir(dir.path(), &python);
        let (work, out) = (dir.path().join("work"), dir.path().join("out"));
        std::fs::create_dir_all(&work).expect("work dir");
        std::fs::create_dir_all(&out).expect("out dir");
        let commands: Vec<(String, Option<Vec<SocketAddr>>)> = block
            .commands
            .iter()
            .map(|c| {
                let command = rewrite(c, &bin);
                let listens = listens(&words(&command));
                (command, listens)
            })
            .collect();
        for (command, addrs) in &commands {
            for addr in addrs.iter().flatten() {
                if let Err(err) = TcpListener::bind(addr) {
                    panic!(
                        "README block {name}: `{}` listens on {addr}, which is taken ({err}): stop \
                         what holds it (another `throughline up`?) and run the test again",
                        words(command).join(" ")
                    );
                }
            }
        }
        let path = format!(
            "{}:{}:{}",
            bin.display(),
            venv_bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut bash = Command::new("bash");
        bash.arg("-c")
            .arg(script(&commands))
            .current_dir(&work)
            .env("PATH", path)
            .env("HOME", dir.path())
            .env("README_TEST_OUT", &out)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        // A newcomer's shell: none of this process's AWS, OpenTelemetry or throughline settings.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if [
                "AWS_",
                "OTEL_",
                "THROUGHLINE_",
                "ONBOARDING_",
                "RUST_",
                "DATABASE_",
                "PG",
            ]
            .iter()
            .any(|p| key.starts_with(p))
            {
                bash.env_remove(&*key);
            }
        }
        let child = bash.spawn().expect("run bash");
        let mut run = Self {
            name: name.to_owned(),
            commands,
            out,
            child,
            _dir: dir,
        };
        let deadline = Instant::now() + BLOCK_DEADLINE;
        while !run.out.join("done").exists() {
            assert!(
                Instant::now() < deadline,
                "README block {name} did not finish within {BLOCK_DEADLINE:?}\n{}",
                run.report()
            );
            assert!(
                run.child.try_wait().expect("bash").is_none(),
                "the shell of README block {name} exited early\n{}",
                run.report()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        run
    }

    fn file(&self, n: usize, ext: &str) -> String {
        std::fs::read_to_string(self.out.join(format!("{n}.{ext}"))).unwrap_or_default()
    }

    /// The index of the command that holds `needle`.
    fn find(&self, needle: &str) -> usize {
        self.commands
            .iter()
            .position(|(c, _)| c.contains(needle))
            .unwrap_or_else(|| panic!("README block {} has no `{needle}` command", self.name))
    }

    fn stdout(&self, n: usize) -> String {
        self.file(n, "out")
    }

    fn status(&self, n: usize) -> Option<i32> {
        self.file(n, "status").trim().parse().ok()
    }

    /// Every command with its status and output, for a failure message.
    fn report(&self) -> String {
        let mut s = String::new();
        for (n, (command, listens)) in self.commands.iter().enumerate() {
            let _ = writeln!(
                s,
                "--- [{n}] {command}\n    status: {}{}\n    stdout:\n{}\n    stderr:\n{}",
                self.file(n, "status").trim(),
                if listens.is_some() {
                    format!(", {}", self.file(n, "ready").trim())
                } else {
                    String::new()
                },
                tail(&self.stdout(n)),
                tail(&self.file(n, "err")),
            );
        }
        s
    }

    /// Asserts that command `n` ended with exit status 0 and returns its stdout.
    fn succeeded(&self, needle: &str) -> String {
        let n = self.find(needle);
        assert_eq!(
            self.status(n),
            Some(0),
            "README block {}: `{}` did not exit 0\n{}",
            self.name,
            self.commands[n].0,
            self.report()
        );
        self.stdout(n)
    }

    /// Whether background command `n` still runs (not gone, not a zombie).
    fn running(&self, n: usize) -> bool {
        let pid = self.file(n, "pid");
        std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).is_ok_and(|stat| {
            stat.rsplit(") ")
                .next()
                .is_some_and(|s| !s.starts_with('Z'))
        })
    }

    /// Waits (bounded) until a background command's stdout holds every one of `needles`.
    fn wait_for_output(&self, needle: &str, needles: &[&str], timeout: Duration) -> String {
        let n = self.find(needle);
        let deadline = Instant::now() + timeout;
        loop {
            let out = self.stdout(n);
            if needles.iter().all(|w| out.contains(w)) {
                return out;
            }
            assert!(
                Instant::now() < deadline && self.running(n),
                "README block {}: `{}` never printed {needles:?}\n{}",
                self.name,
                self.commands[n].0,
                self.report()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the background commands (SIGTERM, last started first) and asserts that each had
    /// listened, was still running, and exited 0.
    fn stop(mut self) {
        std::fs::write(self.out.join("stop"), "").expect("write stop");
        let deadline = Instant::now() + Duration::from_secs(40);
        while self.child.try_wait().expect("bash").is_none() {
            assert!(
                Instant::now() < deadline,
                "README block {}: a background command did not stop on SIGTERM\n{}",
                self.name,
                self.report()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        for (n, (command, listens)) in self.commands.iter().enumerate() {
            if listens.is_none() {
                continue;
            }
            let fine = self.file(n, "ready").trim() == "ready"
                && self.file(n, "alive").trim() == "alive"
                && self.status(n) == Some(0);
            assert!(
                fine,
                "README block {}: `{command}` should have kept running until stopped and then \
                 exited 0\n{}",
                self.name,
                self.report()
            );
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let group = nix::unistd::Pid::from_raw(self.child.id() as i32);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

/// The last lines of a command's output.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..]
        .iter()
        .map(|l| format!("      {l}\n"))
        .collect()
}

/// `verify`'s summary line, `N traces: W whole, B broken, S settling`, as numbers.
fn summary(verify: &str) -> (u64, u64, u64, u64) {
    let line = verify
        .lines()
        .find(|l| l.contains(" traces: "))
        .unwrap_or_else(|| panic!("verify prints its summary line:\n{verify}"));
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    match numbers[..] {
        [found, whole, broken, settling] => (found, whole, broken, settling),
        _ => panic!("not a summary line: {line}"),
    }
}

fn one_block_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    DEFAULT_PORTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `up` → `load` → `verify`: load reports every trace whole, verify agrees and exits 0.
#[test]
fn the_quick_start_runs_as_written() {
    let _ports = one_block_at_a_time();
    let run = Run::block("quickstart");
    let load = run.succeeded("throughline load");
    let whole = load
        .lines()
        .find(|l| l.contains("traces whole"))
        .unwrap_or_else(|| panic!("load prints its traces-whole line\n{}", run.report()));
    let (seen, of) = whole
        .trim()
        .split_once(' ')
        .and_then(|(count, _)| count.split_once('/'))
        .unwrap_or_else(|| panic!("`N/M traces whole`: {whole}"));
    assert!(
        seen == of && of.parse::<u64>().is_ok_and(|n| n > 0),
        "every trace whole: {whole}\n{}",
        run.report()
    );
    for promised in [
        "500 requests",
        "rejected as expected",
        "errors 0",
        "latency  p50",
    ] {
        assert!(load.contains(promised), "load prints `{promised}`:\n{load}");
    }
    // Right after load, verify agrees: every one of those traces whole, none settling.
    let verify = run.succeeded("throughline verify");
    let (found, whole, broken, settling) = summary(&verify);
    assert!(
        found == 500 && whole == found && broken == 0 && settling == 0,
        "verify sees load's 500 traces whole:\n{verify}"
    );
    run.stop();
}

/// The collector takes `your-service`'s trace, sent as an SDK sends it by default, and `verify`
/// finds it.
#[test]
fn the_collector_example_runs_as_written() {
    let _ports = one_block_at_a_time();
    let run = Run::block("collector");
    run.succeeded("your-service");
    let verify = run.succeeded("throughline verify");
    let (found, _, broken, _) = summary(&verify);
    assert!(
        found == 1 && broken == 0,
        "your-service's one trace arrived and is not broken:\n{}",
        run.report()
    );
    assert!(verify.contains("services: your-service"), "{verify}");
    run.stop();
}

/// The broker takes the aws CLI's `send-message` with the README's environment, and `/metrics`
/// shows the metric names the README lists.
#[test]
fn the_broker_example_runs_as_written() {
    let _ports = one_block_at_a_time();
    let run = Run::block("broker");
    let sent = run.succeeded("sqs send-message");
    let sent: serde_json::Value = serde_json::from_str(&sent)
        .unwrap_or_else(|e| panic!("send-message prints JSON ({e})\n{}", run.report()));
    assert!(sent["MessageId"].is_string(), "{sent}");
    let metrics = run.succeeded("/metrics");
    for name in [
        "throughline_broker_messages_visible",
        "throughline_broker_messages_in_flight",
        "throughline_broker_messages_delayed",
        "throughline_broker_oldest_message_age_seconds",
        "throughline_broker_messages_received_total",
        "throughline_broker_messages_deleted_total",
        "throughline_broker_messages_moved_to_dead_letter_total",
    ] {
        assert!(metrics.contains(name), "/metrics lacks {name}:\n{metrics}");
    }
    assert!(
        metrics.contains("throughline_broker_messages_sent_total{queue=\"orders\"} 1\n"),
        "the message sent is counted:\n{metrics}"
    );
    run.stop();
}

/// The Lambda host runs the worker for the record sent, with the platform's log lines.
#[test]
fn the_lambda_host_example_runs_as_written() {
    let _ports = one_block_at_a_time();
    let run = Run::block("lambda");
    let sent = run.succeeded("sqs send-message");
    assert!(sent.contains("\"MessageId\""), "{sent}");
    let log = run.wait_for_output(
        "throughline lambda",
        &[
            "START RequestId: ",
            "END RequestId: ",
            "REPORT RequestId: ",
            "Init Duration: ",
        ],
        Duration::from_secs(30),
    );
    assert!(log.contains("Memory Size: 128 MB"), "{log}");
    run.stop();
}

#[test]
fn comments_and_prefixes_are_read_as_a_shell_reads_them() {
    let command = "AWS_REGION=us-east-1 \\\n  throughline broker --listen=127.0.0.1:1 # '#' \"x\"";
    assert_eq!(
        words(command),
        ["throughline", "broker", "--listen=127.0.0.1:1"]
    );
    assert_eq!(
        listens(&words(command)),
        Some(vec!["127.0.0.1:1".parse().expect("addr")])
    );
    assert_eq!(strip_comments("echo 'a # b' # c"), "echo 'a # b'");
    assert_eq!(listens(&words("throughline verify --url x")), None);

    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("throughline"), "").expect("a stand-in binary");
    assert_eq!(
        rewrite("cargo run --release -- up", dir.path()),
        "throughline up"
    );
    assert_eq!(
        rewrite("./target/release/throughline conformance", dir.path()),
        format!("{}/throughline conformance", dir.path().display())
    );
}
