//! The event fan-out under `throughline up events`, the real binary on free ports: `throughline
//! load events` finds every placement's trace whole across the three branches (with `_trace` in
//! the detail, and with the X-Ray `TraceHeader` alone), on SQLite and on PostgreSQL (schema
//! `events`); the N+1 route's trace holds one query per video and is an N+1 finding under the
//! default thresholds, the eager one a single query and none; the trace view shows the three branches with
//! their queue times; a worker that fails every record dead-letters them in
//! its own queue while the other two branches finish.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use throughline_testkit::{free_loopback_addr, wait_for_port};

/// A running `throughline up events`, stopped with SIGTERM when dropped.
struct Events {
    child: Option<Child>,
    dir: tempfile::TempDir,
    api: SocketAddr,
    query: SocketAddr,
    broker: SocketAddr,
}

impl Events {
    fn up(flags: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let (api, webhook, broker, grpc, http, query) = (
            free_loopback_addr(),
            free_loopback_addr(),
            free_loopback_addr(),
            free_loopback_addr(),
            free_loopback_addr(),
            free_loopback_addr(),
        );
        let child = Command::new(env!("CARGO_BIN_EXE_throughline"))
            .args(["up", "events", "--data-dir"])
            .arg(dir.path())
            .args(["--events-api-addr", &api.to_string()])
            .args(["--events-webhook-addr", &webhook.to_string()])
            .args(["--broker-addr", &broker.to_string()])
            .args(["--otlp-grpc-addr", &grpc.to_string()])
            .args(["--otlp-http-addr", &http.to_string()])
            .args(["--query-addr", &query.to_string()])
            .args(flags)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start throughline up events");
        let events = Self {
            child: Some(child),
            dir,
            api,
            query,
            broker,
        };
        assert!(
            wait_for_port(api, Duration::from_secs(30)),
            "nedlia-api did not come up; logs:\n{}",
            events.logs()
        );
        events
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        if let Ok(entries) = std::fs::read_dir(self.dir.path().join("logs")) {
            for e in entries.flatten() {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                let tail: String = text.chars().rev().take(1500).collect::<String>();
                out.push_str(&format!(
                    "--- {}\n{}\n",
                    e.path().display(),
                    tail.chars().rev().collect::<String>()
                ));
            }
        }
        out
    }

    /// `throughline load events` against this system: its JSON summary and exit status.
    fn load(&self, requests: u32) -> (Value, i32) {
        let out = Command::new(env!("CARGO_BIN_EXE_throughline"))
            .args(["load", "events", "--json", "--quiet", "--concurrency", "8"])
            .args(["--requests", &requests.to_string()])
            .args(["--api", &format!("http://{}", self.api)])
            .args(["--query", &format!("http://{}", self.query)])
            .args(["--invalid-ratio", "0.1", "--settle-secs", "60"])
            .output()
            .expect("run throughline load");
        let summary: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "load printed no JSON ({e}): {}\n{}\nlogs:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.logs()
            )
        });
        (summary, out.status.code().unwrap_or(-1))
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn assert_all_whole(events: &Events, summary: &Value, status: i32) {
    let traces = &summary["traces"];
    assert_eq!(
        status,
        0,
        "load failed: {summary:#}\nlogs:\n{}",
        events.logs()
    );
    assert!(
        summary["errors"].as_object().is_some_and(|e| e.is_empty()),
        "{summary:#}"
    );
    assert!(summary["accepted"].as_u64().unwrap() > 0, "{summary:#}");
    // Invalid (400) and overlapping (409) requests were sent and refused as they should be.
    assert!(
        summary["rejected_as_expected"].as_u64().unwrap() >= 4,
        "{summary:#}"
    );
    assert_eq!(traces["checked"], summary["accepted"], "{summary:#}");
    assert_eq!(traces["whole"], traces["checked"], "{summary:#}");
}

/// The spans of one trace once `done` says they are all in (or after 30 s, for the assertion
/// to show what came).
async fn trace_when(
    query: SocketAddr,
    trace_id: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let spans = fetch_spans(query, trace_id).await.unwrap_or_default();
        if done(&spans) || Instant::now() > deadline {
            return spans;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn count_named(spans: &[Value], name: &str) -> usize {
    spans.iter().filter(|s| s["operationName"] == name).count()
}

/// A branch's CONSUMER span (`process {queue}`).
fn is_consumer(span: &Value) -> bool {
    span["operationName"]
        .as_str()
        .is_some_and(|n| n.starts_with("process "))
}

fn count_consumers(spans: &[Value]) -> usize {
    spans.iter().filter(|s| is_consumer(s)).count()
}

/// Whether every CONSUMER span's producer (the span it is a child of, or links to) is in the
/// trace too. The API's spans leave on its batch processor's timer, the workers' as each
/// invocation ends, so a branch's consumer can be stored before the send that started it.
fn consumers_have_their_producers(spans: &[Value]) -> bool {
    let producers: std::collections::HashSet<&str> = spans
        .iter()
        .filter(|s| {
            s["tags"].as_array().is_some_and(|tags| {
                tags.iter()
                    .any(|t| t["key"] == "span.kind" && t["value"] == "producer")
            })
        })
        .filter_map(|s| s["spanID"].as_str())
        .collect();
    spans.iter().filter(|s| is_consumer(s)).all(|s| {
        s["references"].as_array().is_some_and(|refs| {
            refs.iter().any(|r| {
                r["spanID"]
                    .as_str()
                    .is_some_and(|id| producers.contains(id))
            })
        })
    })
}

async fn fetch_spans(query: SocketAddr, trace_id: &str) -> Option<Vec<Value>> {
    let answer = reqwest::get(format!("http://{query}/api/traces/{trace_id}"))
        .await
        .ok()?;
    if !answer.status().is_success() {
        return None;
    }
    let body: Value = answer.json().await.ok()?;
    body["data"][0]["spans"].as_array().cloned()
}

/// The trace id of an answer's `traceresponse`.
fn trace_of(answer: &reqwest::Response) -> String {
    answer.headers()["traceresponse"]
        .to_str()
        .unwrap()
        .split('-')
        .nth(1)
        .unwrap()
        .to_owned()
}

/// The N+1 findings the collector reports for one trace.
async fn n_plus_one_findings(query: SocketAddr, trace_id: &str) -> Vec<Value> {
    let url = format!(
        "http://{query}/api/throughline/findings?kind=n_plus_one_db&lookback=1h&traceID={trace_id}"
    );
    let Ok(answer) = reqwest::get(url).await else {
        return Vec::new();
    };
    let body: Value = answer.json().await.unwrap_or_default();
    body["data"].as_array().cloned().unwrap_or_default()
}

/// The listing with placements is one `SELECT placements` per video and, under the default
/// thresholds (5 repeats, 50 ms), an N+1 finding of the collector; the eager listing is one
/// query and no finding. Spans name the engine (`db.system.name`).
async fn n_plus_one_is_a_finding_and_eager_is_not(events: &Events, system: &str) {
    let eager = reqwest::get(format!(
        "http://{}/v1/videos?include=placements&eager=true",
        events.api
    ))
    .await
    .expect("the API answers");
    assert_eq!(eager.status(), 200);
    let eager_trace = trace_of(&eager);
    let lazy = reqwest::get(format!(
        "http://{}/v1/videos?include=placements",
        events.api
    ))
    .await
    .expect("the API answers");
    assert_eq!(lazy.status(), 200);
    let lazy_trace = trace_of(&lazy);
    let listed: Value = lazy.json().await.unwrap();
    let videos = listed["videos"].as_array().unwrap().len();
    assert!(videos >= 50, "{videos} videos listed");

    for (trace_id, queries) in [(&eager_trace, 1), (&lazy_trace, videos)] {
        let spans = trace_when(events.query, trace_id, |s| {
            count_named(s, "SELECT placements") >= queries && count_named(s, "GET /v1/videos") == 1
        })
        .await;
        assert_eq!(
            count_named(&spans, "SELECT placements"),
            queries,
            "{spans:#?}"
        );
        let select = spans
            .iter()
            .find(|s| s["operationName"] == "SELECT placements")
            .unwrap();
        let engine = select["tags"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["key"] == "db.system.name")
            .map(|t| t["value"].clone());
        assert_eq!(engine, Some(Value::from(system)), "{select:#}");
    }

    // Findings are made when a trace settles; the eager trace came first, so once the N+1 one
    // has its finding the eager one has settled too.
    let deadline = Instant::now() + Duration::from_secs(60);
    let found = loop {
        let found = n_plus_one_findings(events.query, &lazy_trace).await;
        if !found.is_empty() || Instant::now() > deadline {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(found.len(), 1, "the N+1 listing is a finding: {found:#?}");
    assert_eq!(found[0]["count"], videos, "{found:#?}");
    assert_eq!(found[0]["service"], "nedlia-api");
    assert!(
        found[0]["durationMs"].as_f64().unwrap() >= 50.0,
        "{found:#?}"
    );
    assert!(
        n_plus_one_findings(events.query, &eager_trace)
            .await
            .is_empty(),
        "the eager listing is no finding"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_placement_trace_is_whole_and_the_n_plus_one_route_shows_one_query_per_video() {
    let events = Events::up(&[]);
    let (summary, status) = events.load(120);
    assert_all_whole(&events, &summary, status);

    n_plus_one_is_a_finding_and_eager_is_not(&events, "sqlite").await;
    assert_trace_view_shows_three_queued_branches(&events).await;
    assert_the_map_shows_the_bus_and_the_three_queues(&events).await;

    // `verify` with the system's shape agrees on every API trace, the read routes' included,
    // once the collector has judged them all (none settling).
    let products = reqwest::get(format!("http://{}/v1/products", events.api))
        .await
        .expect("the API answers");
    let products_trace = products.headers()["traceresponse"]
        .to_str()
        .unwrap()
        .split('-')
        .nth(1)
        .unwrap()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let verify = Command::new(env!("CARGO_BIN_EXE_throughline"))
            .args(["verify", "--system", "events", "--service", "nedlia-api"])
            .args(["--query", &format!("http://{}", events.query)])
            .output()
            .expect("run throughline verify");
        let said = String::from_utf8_lossy(&verify.stdout).into_owned();
        // `N traces: W whole, B broken, S settling`
        let counts: Vec<u64> = said
            .lines()
            .find(|l| l.contains(" traces: "))
            .unwrap_or_else(|| panic!("verify prints its summary:\n{said}"))
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse().ok())
            .collect();
        let [found, whole, broken, settling] = counts[..] else {
            panic!("not a summary: {said}");
        };
        if settling == 0 {
            assert!(
                verify.status.success() && broken == 0 && whole == found,
                "verify:\n{said}"
            );
            // A read route's trace was among them, judged whole alone (not as a rejection).
            let line = said
                .lines()
                .find(|l| l.starts_with(&products_trace))
                .unwrap_or_else(|| panic!("GET /v1/products' trace in:\n{said}"));
            assert!(
                line.contains(" whole ") && !line.contains("rejected"),
                "{line}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "verify never settled:\n{said}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_every_placement_trace_is_whole_and_the_workers_write_to_its_schema() {
    let server = throughline_testkit::PostgresServer::start();
    let events = Events::up(&["--database-url", &server.url()]);
    let (summary, status) = events.load(60);
    assert_all_whole(&events, &summary, status);
    n_plus_one_is_a_finding_and_eager_is_not(&events, "postgresql").await;
    // Every accepted placement is in the schema `events`, moved by all three workers (each
    // branch's CONSUMER span was in when `load` judged the trace whole: its writes are done).
    let done = server.psql(
        "SELECT count(*) FROM events.placements WHERE id NOT LIKE 'house-%' AND id NOT LIKE 'seed-%' \
         AND status = 'valid' AND file_key IS NOT NULL AND notified_at IS NOT NULL",
    );
    assert_eq!(
        done.trim(),
        summary["accepted"].to_string(),
        "logs:\n{}",
        events.logs()
    );
    assert!(
        !events.dir.path().join("events/events.sqlite3").exists(),
        "no SQLite file beside PostgreSQL"
    );
}

/// The APM's service map: `nedlia-api → the bus → each queue → its worker`, as nodes.
async fn assert_the_map_shows_the_bus_and_the_three_queues(events: &Events) {
    let page = reqwest::get(format!("http://{}/map?lookback=1h", events.query))
        .await
        .expect("the map answers")
        .text()
        .await
        .unwrap();
    let node = |name: &str, kind: &str| format!("data-name=\"{name}\" data-kind=\"{kind}\"");
    let mut wanted = vec![
        node("nedlia-api", "service"),
        node("aws_eventbridge/nedlia-events", "queue"),
    ];
    for (queue, worker) in [
        ("file-generator-queue", "nedlia-file-generator"),
        ("validator-queue", "nedlia-validator"),
        ("notifier-queue", "nedlia-notifier"),
    ] {
        wanted.push(node(&format!("aws_sqs/{queue}"), "queue"));
        wanted.push(node(worker, "service"));
    }
    for want in wanted {
        assert!(page.contains(&want), "the map lacks {want}:\n{page}");
    }
}

/// The APM's trace view of one placement: its three branches, each with its queue time.
async fn assert_trace_view_shows_three_queued_branches(events: &Events) {
    let answer = reqwest::Client::new()
        .post(format!("http://{}/v1/placements", events.api))
        .json(&json!({"video_id": "vid-004", "product_id": "prod-001",
                      "start_time": 90_000, "end_time": 90_010}))
        .send()
        .await
        .expect("the API answers");
    assert_eq!(answer.status(), 201);
    let body: Value = answer.json().await.unwrap();
    let trace_id = body["trace_id"].as_str().unwrap().to_owned();
    // Every branch's CONSUMER span in with the send it came from, and the webhook's SERVER span.
    let spans = trace_when(events.query, &trace_id, |s| {
        count_consumers(s) == 3
            && consumers_have_their_producers(s)
            && count_named(s, "POST /webhook") == 1
    })
    .await;
    assert_eq!(count_consumers(&spans), 3, "{spans:#?}");
    assert!(consumers_have_their_producers(&spans), "{spans:#?}");
    let page = reqwest::get(format!("http://{}/trace/{trace_id}", events.query))
        .await
        .expect("the trace page answers")
        .text()
        .await
        .unwrap();
    assert_eq!(
        page.matches("data-testid=\"queue-time\"").count(),
        3,
        "one queue time per branch"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_xray_trace_header_alone_joins_every_branch_to_the_trace() {
    let events = Events::up(&["--events-xray-only"]);
    let (summary, status) = events.load(40);
    assert_all_whole(&events, &summary, status);
}

async fn queue_depth(sqs: &aws_sdk_sqs::Client, queue: &str) -> u64 {
    let url = sqs
        .get_queue_url()
        .queue_name(queue)
        .send()
        .await
        .expect("queue url")
        .queue_url
        .expect("a url");
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .expect("queue attributes");
    attrs
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_worker_dead_letters_in_its_own_queue_and_the_other_branches_finish() {
    let events = Events::up(&[
        "--events-failures",
        "validator=1",
        "--events-visibility-timeout-secs",
        "1",
        "--events-max-receive-count",
        "2",
    ]);
    let client = reqwest::Client::new();
    let mut placements = Vec::new();
    for n in 0..3 {
        // Past the seeded placements (`events_db::FREE_FROM_SECS`) and the other tests' slots.
        let start = 100_000.0 + 20.0 * f64::from(n);
        let answer = client
            .post(format!("http://{}/v1/placements", events.api))
            .json(&json!({"video_id": "vid-003", "product_id": "prod-004",
                          "start_time": start, "end_time": start + 10.0}))
            .send()
            .await
            .expect("the API answers");
        assert_eq!(answer.status(), 201);
        let body: Value = answer.json().await.unwrap();
        placements.push(body["placement"]["id"].as_str().unwrap().to_owned());
    }
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .endpoint_url(format!("http://{}", events.broker))
            .region(aws_sdk_sqs::config::Region::new("us-east-1"))
            .credentials_provider(aws_credential_types::Credentials::new(
                "local", "local", None, None, "test",
            ))
            .build(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while queue_depth(&sqs, "validator-queue-dlq").await < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(
        queue_depth(&sqs, "validator-queue-dlq").await,
        3,
        "logs:\n{}",
        events.logs()
    );
    assert_eq!(queue_depth(&sqs, "file-generator-queue-dlq").await, 0);
    assert_eq!(queue_depth(&sqs, "notifier-queue-dlq").await, 0);
    for id in &placements {
        let deadline = Instant::now() + Duration::from_secs(30);
        let placement = loop {
            let body: Value = client
                .get(format!("http://{}/v1/placements/{id}", events.api))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let p = body["placement"].clone();
            if (p["file_key"].is_string() && p["notified_at"].is_string())
                || Instant::now() > deadline
            {
                break p;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        };
        // The other two branches finished; the validator never moved the status.
        assert!(placement["file_key"].is_string(), "{placement}");
        assert!(placement["notified_at"].is_string(), "{placement}");
        assert_eq!(placement["status"], "created", "{placement}");
    }
}
