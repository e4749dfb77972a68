//! `throughline up`, `load` and `verify` as processes, as a user runs them: the README's quick
//! start passes, `up` supervises its parts (restarts, dies with them never left behind), locks
//! its data directory, appends its logs, and every failure names what to do.

mod onboarding_common;

use std::collections::HashSet;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use onboarding_common::{System, alive, customer_status, onboard};
use serde_json::{Value, json};
use throughline_testkit::free_loopback_addr;

fn throughline(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_throughline"))
        .args(args)
        .output()
        .expect("run throughline")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn customer(id: &str) -> Value {
    json!({"customer_id": id, "email": format!("{id}@example.com"), "name": "Acme", "company_size": "small"})
}

/// `up` (moved ports) → the `try:` line it prints → `load` → `verify` with the README's hop.
#[test]
fn the_quick_start_passes_as_printed_with_moved_ports() {
    let mut system = System::up(&[], &[]);
    let banner = system.banner();
    // The API exports its spans within a few hundred milliseconds, not the SDK's 5 s.
    let api_pid = system
        .part_pid("serve")
        .expect("onboarding-api runs under up");
    let environ = std::fs::read(format!("/proc/{api_pid}/environ")).expect("the API's environment");
    let environ = String::from_utf8_lossy(&environ);
    assert!(
        environ
            .split('\0')
            .any(|kv| kv == "OTEL_BSP_SCHEDULE_DELAY=200"),
        "{environ}"
    );
    let (api, query) = (
        format!("http://{}", system.api),
        format!("http://{}", system.query),
    );
    let try_line = banner
        .lines()
        .find(|l| l.starts_with("try: "))
        .expect("a try: line");
    assert!(
        try_line.contains(&format!("--api {api}"))
            && try_line.contains(&format!("--query {query}")),
        "{banner}"
    );
    // The printed command, as printed (without the Ctrl-C note), plus --json to read it.
    let command = try_line
        .trim_start_matches("try: throughline ")
        .split("   (")
        .next()
        .expect("the command");
    let mut args: Vec<&str> = command.split_whitespace().collect();
    // Fewer requests than printed, to keep the test short.
    let at = args
        .iter()
        .position(|a| *a == "--requests")
        .expect("--requests printed");
    args[at + 1] = "120";
    args.push("--json");
    let out = throughline(&args);
    assert!(out.status.success(), "load failed:\n{}", text(&out));
    let summary: Value = serde_json::from_slice(&out.stdout).expect("load --json");
    let traces = &summary["traces"];
    assert!(
        summary["rejected_as_expected"].as_u64() > Some(0),
        "{summary}"
    );
    assert_eq!(traces["whole"], traces["checked"], "{summary}");

    // Right after `load`, `verify` agrees, with the hop written as the README writes it.
    let out = throughline(&[
        "verify",
        "--url",
        &query,
        "--service",
        "onboarding-api",
        "--expect-hop",
        "onboarding-api:onboarding-lambda",
    ]);
    let said = text(&out);
    assert!(
        out.status.success(),
        "verify failed right after load:\n{said}"
    );
    assert!(said.contains("whole (rejected request)"), "{said}");
    assert!(!said.contains("BROKEN"), "{said}");

    // Log files carry no terminal colour codes, and a clean stop warns of nothing (it used to
    // log a metrics-export error, then a missed shutdown grace of the worker).
    system.stop();
    for entry in std::fs::read_dir(system.log_dir()).expect("logs") {
        let path = entry.expect("entry").path();
        let log = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            !log.contains('\u{1b}'),
            "{} holds colour codes",
            path.display()
        );
        let alarming: Vec<&str> = log
            .lines()
            .filter(|l| {
                l.contains("\"level\":\"WARN\"")
                    || l.contains("\"level\":\"ERROR\"")
                    || l.contains(" WARN ")
                    || l.contains(" ERROR ")
            })
            .collect();
        assert!(
            alarming.is_empty(),
            "{} warns after a clean run and stop:\n{}",
            path.display(),
            alarming.join("\n")
        );
    }
}

#[test]
fn load_says_the_api_is_untraced_and_skips_the_trace_check() {
    // `up SYSTEM` names the system to run.
    let system = System::up(&["onboarding", "--untraced-api"], &[]);
    let out = throughline(&[
        "load",
        "onboarding",
        "--api",
        &format!("http://{}", system.api),
        "--query",
        &format!("http://{}", system.query),
        "--requests",
        "20",
        "--quiet",
    ]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("untraced") && said.contains("traces not checked"),
        "{said}"
    );

    // Requests answered unexpectedly (here: sent to the query API, which has no /onboard) exit 1.
    let out = throughline(&[
        "load",
        "onboarding",
        "--api",
        &format!("http://{}", system.query),
        "--requests",
        "5",
        "--invalid-ratio",
        "0",
        "--no-verify",
        "--quiet",
    ]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("error  http 4"), "{said}");
}

#[test]
fn load_and_verify_name_the_url_they_cannot_reach_and_exit_2() {
    let nobody = format!("http://{}", free_loopback_addr());
    let out = throughline(&[
        "load",
        "onboarding",
        "--api",
        &nobody,
        "--requests",
        "3",
        "--quiet",
    ]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains(&nobody) && said.contains("throughline up") && said.contains("--api"),
        "{said}"
    );

    let out = throughline(&["verify", "--url", &nobody]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains(&nobody) && said.contains("throughline up") && said.contains("--url"),
        "{said}"
    );
}

#[test]
fn a_part_that_stops_during_start_up_shows_its_own_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let addr = |_: u8| free_loopback_addr().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_throughline"))
        .args([
            "up",
            "onboarding",
            "--data-dir",
            dir.path().to_str().expect("utf-8"),
        ])
        .args(["--api-addr", &addr(0), "--broker-addr", &addr(1)])
        .args(["--otlp-grpc-addr", &addr(2), "--otlp-http-addr", &addr(3)])
        .args(["--query-addr", &addr(4)])
        .args(["--database-url", "mysql://nowhere/db"])
        .output()
        .expect("run up");
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("onboarding-api stopped during start-up") && said.contains("DATABASE_URL"),
        "the terminal shows the part's own error:\n{said}"
    );
}

#[test]
fn a_second_up_on_the_same_data_dir_refuses_and_logs_are_appended() {
    let first = System::up(&[], &[]);
    let second = Command::new(env!("CARGO_BIN_EXE_throughline"))
        .args([
            "up",
            "onboarding",
            "--data-dir",
            first.dir.path().to_str().expect("utf-8"),
        ])
        .args(["--api-addr", &free_loopback_addr().to_string()])
        .args(["--broker-addr", &free_loopback_addr().to_string()])
        .args(["--otlp-grpc-addr", &free_loopback_addr().to_string()])
        .args(["--otlp-http-addr", &free_loopback_addr().to_string()])
        .args(["--query-addr", &free_loopback_addr().to_string()])
        .output()
        .expect("run a second up");
    let said = text(&second);
    assert!(!second.status.success(), "{said}");
    assert!(
        said.contains(&first.pid().to_string()) && said.contains("--data-dir"),
        "{said}"
    );
    let log = first.log_dir().join("broker.log");
    let before = std::fs::read_to_string(&log).expect("broker log");
    assert!(!before.is_empty(), "the first up's logs are intact");

    // A restart on the same directory appends to the logs instead of truncating them.
    let dir = first.into_dir();
    let again = System::up_in(dir, &[], &[]);
    let after = std::fs::read_to_string(again.log_dir().join("broker.log")).expect("broker log");
    assert!(
        after.starts_with(&before) && after.len() > before.len(),
        "appended:\n{after}"
    );
}

/// Broker `kill -9` under load: `up` restarts it, the API keeps serving, and every request the
/// API acknowledged is processed by the worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_restarts_a_killed_broker_and_every_acknowledged_request_completes() {
    let mut system = System::up(&["--visibility-timeout-secs", "2"], &[]);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut senders = Vec::new();
    for task in 0..4 {
        let (client, acked, stop, api) = (client.clone(), acked.clone(), stop.clone(), system.api);
        senders.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let id = format!("KILL-{task}-{n:05}");
                n += 1;
                let resp = client
                    .post(format!("http://{api}/onboard"))
                    .json(&customer(&id))
                    .send()
                    .await;
                if let Ok(resp) = resp
                    && resp.status().is_success()
                {
                    acked.lock().expect("acked").push(id);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let broker = system.part_pid("broker").expect("the broker runs under up");
    let before_kill = acked.lock().expect("acked").len();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(broker as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill -9 the broker");
    // Keep sending until the restarted broker has taken more requests.
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.lock().expect("acked").len() < before_kill + 40 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for s in senders {
        s.await.expect("sender");
    }
    let acked = acked.lock().expect("acked").clone();
    assert!(
        acked.len() >= before_kill + 40,
        "the API served after the restart: {} acknowledged",
        acked.len()
    );
    let restarted = system.part_pid("broker").expect("a broker runs again");
    assert_ne!(restarted, broker);

    let mut pending: HashSet<String> = acked.into_iter().collect();
    let deadline = Instant::now() + Duration::from_secs(90);
    while !pending.is_empty() && Instant::now() < deadline {
        let mut done = Vec::new();
        for id in pending.iter().take(50) {
            if customer_status(&client, system.api, id).await.as_deref() == Some("completed") {
                done.push(id.clone());
            }
        }
        for id in done {
            pending.remove(&id);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        pending.is_empty(),
        "{} acknowledged customers never completed, e.g. {:?}; logs:\n{}",
        pending.len(),
        pending.iter().next(),
        system.logs()
    );
    let (clean, stderr) = system.stop_with_output();
    assert!(clean, "{stderr}");
    assert!(
        stderr.contains("broker stopped on its own (killed by SIGKILL); restarting")
            && stderr.contains("broker restarted"),
        "up says what it did:\n{stderr}"
    );
}

/// The collector only handles telemetry: killing it never takes the API down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_collector_never_takes_the_api_down() {
    let mut system = System::up(&[], &[]);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let collector = system
        .part_pid("collector")
        .expect("the collector runs under up");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(collector as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill -9 the collector");
    for n in 0..30 {
        let (status, answer) = onboard(&client, system.api, &customer(&format!("NOCOL-{n}"))).await;
        assert_eq!(
            status, 200,
            "request {n} while the collector is down or restarting: {answer}"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while system
        .part_pid("collector")
        .is_none_or(|pid| pid == collector)
    {
        assert!(Instant::now() < deadline, "the collector was not restarted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (clean, stderr) = system.stop_with_output();
    assert!(clean && stderr.contains("collector restarted"), "{stderr}");
}

/// `kill -9` of `up` takes every part with it, the worker's Lambda environments included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_and_lambda_environments_die_with_up() {
    let mut system = System::up(&[], &[]);
    let client = reqwest::Client::new();
    let (status, answer) = onboard(&client, system.api, &customer("ORPHAN-1")).await;
    assert_eq!(status, 200, "{answer}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while customer_status(&client, system.api, "ORPHAN-1")
        .await
        .as_deref()
        != Some("completed")
    {
        assert!(
            Instant::now() < deadline,
            "the worker did not process the customer"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let parts = system.descendants();
    assert!(
        parts
            .iter()
            .any(|(_, cmd)| cmd.contains("serve onboarding-lambda")),
        "a Lambda environment runs: {parts:?}"
    );
    let mut up = system.child.take().expect("up runs");
    up.kill().expect("kill -9 up");
    up.wait().expect("reap up");
    let deadline = Instant::now() + Duration::from_secs(15);
    while parts.iter().any(|(pid, _)| alive(*pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left: Vec<_> = parts.iter().filter(|(pid, _)| alive(*pid)).collect();
    assert!(left.is_empty(), "left running after up died: {left:?}");
}

/// The postmaster's pid, from `DATA/postgres/data/postmaster.pid`.
fn postmaster_pid(system: &System) -> u32 {
    let path = system.dir.path().join("postgres/data/postmaster.pid");
    let text = std::fs::read_to_string(&path).expect("postmaster.pid of the running server");
    text.lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .expect("a pid on postmaster.pid's first line")
}

fn wait_gone(pid: u32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while alive(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// `kill -9` of `up --postgres` takes the PostgreSQL server with it (its watchdog stops it),
/// and the next `up` starts on the same data; a server still left running (its watchdog killed
/// as well) is stopped by the next `up`, which takes the data directory over with nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_dies_with_up_and_a_left_over_server_is_taken_over() {
    let port = free_loopback_addr().port().to_string();
    let flags = ["--postgres", "--postgres-port", port.as_str()];
    let client = reqwest::Client::new();
    let mut system = System::up(&flags, &[]);
    let (status, answer) = onboard(&client, system.api, &customer("PG-KILL-1")).await;
    assert_eq!(status, 200, "{answer}; logs:\n{}", system.logs());
    let postmaster = postmaster_pid(&system);
    assert!(alive(postmaster), "the postmaster {postmaster} runs");

    let mut up = system.child.take().expect("up runs");
    up.kill().expect("kill -9 up");
    up.wait().expect("reap up");
    assert!(
        wait_gone(postmaster, Duration::from_secs(15)),
        "PostgreSQL (pid {postmaster}) outlived a kill -9 of up"
    );

    let mut system = System::up_in(system.into_dir(), &flags, &[]);
    assert!(
        customer_status(&client, system.api, "PG-KILL-1")
            .await
            .is_some_and(|s| s != "error"),
        "the customer acknowledged before the kill is in the restarted database"
    );
    let postmaster = postmaster_pid(&system);
    let watchdog = system
        .descendants()
        .into_iter()
        .find(|(_, cmd)| cmd.contains("throughline-pgcluster-watchdog"))
        .map(|(pid, _)| pid)
        .expect("the server's watchdog runs under up");
    for pid in [watchdog, system.pid()] {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill -9");
    }
    let mut up = system.child.take().expect("up runs");
    let _ = up.wait();
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        alive(postmaster),
        "without its watchdog the server is left running (what the next up must handle)"
    );

    let mut system = System::up_in(system.into_dir(), &flags, &[]);
    assert!(
        !alive(postmaster),
        "the next up stopped the server left running"
    );
    let (status, answer) = onboard(&client, system.api, &customer("PG-KILL-2")).await;
    assert_eq!(status, 200, "{answer}; logs:\n{}", system.logs());
    assert!(
        customer_status(&client, system.api, "PG-KILL-1")
            .await
            .is_some_and(|s| s != "error"),
        "the first customer survived both kills"
    );
    let last = postmaster_pid(&system);
    let (clean, stderr) = system.stop_with_output();
    assert!(
        clean
            && stderr.contains(&format!(
                "stopped PostgreSQL (pid {postmaster}) left running"
            )),
        "{stderr}"
    );
    assert!(!alive(last), "a clean stop of up stops its server");
}

/// A record the worker fails every time ends in `onboarding-queue-dlq`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_that_keep_failing_reach_the_dead_letter_queue() {
    let system = System::up(
        &[
            "--failures",
            "compliance=1",
            "--max-receive-count",
            "2",
            "--visibility-timeout-secs",
            "1",
        ],
        &[],
    );
    let client = reqwest::Client::new();
    let ids = ["DLQ-1", "DLQ-2", "DLQ-3"];
    for id in ids {
        let (status, answer) = onboard(&client, system.api, &customer(id)).await;
        assert_eq!(status, 200, "{answer}");
    }
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .region(aws_sdk_sqs::config::Region::new("us-east-1"))
            .credentials_provider(aws_credential_types::Credentials::new(
                "local", "local", None, None, "test",
            ))
            .endpoint_url(format!("http://{}", system.broker))
            .build(),
    );
    let dlq = format!("http://{}/000000000000/onboarding-queue-dlq", system.broker);
    let mut seen: HashSet<String> = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < ids.len() && Instant::now() < deadline {
        let got = sqs
            .receive_message()
            .queue_url(&dlq)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .visibility_timeout(600)
            .send()
            .await
            .expect("receive from the dead-letter queue");
        for m in got.messages() {
            let body = m.body().unwrap_or_default();
            for id in ids {
                if body.contains(id) {
                    seen.insert(id.to_owned());
                }
            }
        }
    }
    assert_eq!(
        seen.len(),
        ids.len(),
        "in the DLQ: {seen:?}; logs:\n{}",
        system.logs()
    );
}

/// With failures injected, `load` waits for the redeliveries, so the count it reports is real.
#[test]
fn load_waits_for_redeliveries_when_deliveries_fail() {
    let system = System::up(
        &[
            "--failures",
            "compliance=0.3",
            "--visibility-timeout-secs",
            "1",
            "--max-receive-count",
            "10",
        ],
        &[],
    );
    let out = throughline(&[
        "load",
        "onboarding",
        "--api",
        &format!("http://{}", system.api),
        "--query",
        &format!("http://{}", system.query),
        "--requests",
        "60",
        "--invalid-ratio",
        "0",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let summary: Value = serde_json::from_slice(&out.stdout).expect("load --json");
    let traces = &summary["traces"];
    assert_eq!(traces["whole"], traces["checked"], "{summary}");
    assert!(traces["redeliveries"].as_u64() > Some(0), "{summary}");
    assert_eq!(traces["failed_every_delivery"], 0, "{summary}");
}
