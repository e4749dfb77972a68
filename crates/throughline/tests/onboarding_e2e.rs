//! The whole onboarding system under `throughline up`: a few hundred requests, some invalid, with
//! worker failures injected; every accepted request's trace is read back from the query API.

mod onboarding_common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use onboarding_common::{System, customer_status, integrity, onboard, spans, trace};
use serde_json::{Value, json};

const VALID: usize = 240;
const INVALID: usize = 40;
/// The personal data the test sends; it must appear in no span and no log line.
const EMAIL_DOMAIN: &str = "private-person.example";

fn body(n: usize) -> (Value, bool) {
    let id = format!("E2E-{n:04}");
    if n % 7 == 3 && n / 7 < INVALID {
        // Invalid on purpose, each naming a different field.
        let bad = match n % 3 {
            0 => json!({"customer_id": id, "name": "Acme"}),
            1 => {
                json!({"customer_id": id, "email": format!("p{n}@{EMAIL_DOMAIN}"), "company_name": "Acme", "type": "gold"})
            }
            _ => {
                json!({"customer_id": "has space", "email": format!("p{n}@{EMAIL_DOMAIN}"), "name": "Acme"})
            }
        };
        return (bad, false);
    }
    let email = format!("person{n}@{EMAIL_DOMAIN}");
    let b = if n.is_multiple_of(2) {
        json!({"customer_id": id, "email": email, "name": "Test Company", "company_size": "medium"})
    } else {
        let tier = ["standard", "premium", "enterprise"][n % 3];
        json!({"customer_id": id, "email": email, "company_name": "Demo Corp", "type": tier})
    };
    (b, true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_accepted_request_has_one_whole_trace_across_api_queue_and_worker() {
    let mut system = System::up(
        &[
            "--failures",
            "compliance=0.15",
            "--visibility-timeout-secs",
            "1",
            "--max-receive-count",
            "5",
        ],
        &[],
    );
    let client = reqwest::Client::new();

    // Send, 8 at a time.
    let mut accepted: HashMap<String, String> = HashMap::new(); // trace id -> customer id
    let mut invalid_seen = 0;
    let total = VALID + INVALID;
    let mut n = 0;
    while n < total {
        let batch: Vec<_> = (n..(n + 8).min(total)).map(|i| (i, body(i))).collect();
        n += batch.len();
        let results = futures_join(&client, &system, batch).await;
        for (i, valid, status, answer) in results {
            if valid {
                assert_eq!(status, 200, "request {i}: {answer}");
                assert_eq!(answer["status"], "success");
                let trace_id = answer["trace_id"]
                    .as_str()
                    .expect("trace_id in the answer")
                    .to_owned();
                assert_eq!(trace_id.len(), 32);
                accepted.insert(
                    trace_id,
                    answer["customer_id"].as_str().unwrap_or("").to_owned(),
                );
            } else {
                assert_eq!(status, 400, "request {i}: {answer}");
                assert!(
                    !answer["fields"]
                        .as_array()
                        .expect("fields named")
                        .is_empty(),
                    "{answer}"
                );
                invalid_seen += 1;
            }
        }
    }
    assert!(invalid_seen > 10, "the test sends invalid requests");
    assert!(accepted.len() >= 200, "{} accepted", accepted.len());

    // A duplicate customer id is refused, naming the field.
    let (status, answer) = onboard(&client, system.api, &body(0).0).await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["fields"][0]["field"], "customer_id");

    // Read every trace back until its record is done (processed, or out of deliveries).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut done: HashMap<String, Value> = HashMap::new();
    while done.len() < accepted.len() && Instant::now() < deadline {
        for trace_id in accepted.keys() {
            if done.contains_key(trace_id) {
                continue;
            }
            let Some(t) = trace(&client, system.query, trace_id).await else {
                continue;
            };
            let s = spans(&t);
            let consumers: Vec<_> = s
                .iter()
                .filter(|s| s.kind == "consumer" && s.service == "onboarding-lambda")
                .collect();
            let succeeded = consumers.iter().any(|c| !c.error);
            // Children of the consumer spans arrive in the same export; wait for a success or
            // for every delivery to have failed.
            let api_arrived = s
                .iter()
                .any(|x| x.service == "onboarding-api" && x.kind == "producer")
                && s.iter()
                    .any(|x| x.service == "onboarding-api" && x.kind == "server");
            if api_arrived && (succeeded || consumers.len() >= 5) {
                done.insert(trace_id.clone(), t);
            }
        }
        if done.len() < accepted.len() {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    assert_eq!(
        done.len(),
        accepted.len(),
        "{} of {} traces not done within 60 s; logs:\n{}",
        accepted.len() - done.len(),
        accepted.len(),
        system
            .logs()
            .chars()
            .rev()
            .take(4000)
            .collect::<String>()
            .chars()
            .rev()
            .collect::<String>()
    );

    let mut redelivered = 0;
    for (trace_id, t) in &done {
        let s = spans(t);
        // The structure, judged as `load` and `verify` judge it: the store's own verdict (one
        // root, no orphan), then onboarding's expected hops.
        let report = integrity(&client, system.query, trace_id).await;
        let parsed: throughline_jaeger::Trace =
            serde_json::from_value(t.clone()).expect("a Jaeger trace");
        let judgement = throughline_harness::expect::judge(
            &report,
            Some(&parsed),
            &onboarding_system::expected(),
        );
        assert!(
            matches!(
                judgement.verdict,
                throughline_harness::Verdict::Whole | throughline_harness::Verdict::Retrying
            ),
            "trace {trace_id}: {judgement:?}"
        );
        let server = s
            .iter()
            .find(|s| s.service == "onboarding-api" && s.kind == "server")
            .unwrap_or_else(|| panic!("trace {trace_id}: no SERVER span"));
        assert_eq!(server.name, "POST /onboard");
        assert!(server.parent.is_none());
        let producer = s
            .iter()
            .find(|s| s.service == "onboarding-api" && s.kind == "producer")
            .unwrap_or_else(|| panic!("trace {trace_id}: no PRODUCER span"));
        assert_eq!(producer.parent.as_deref(), Some(server.id.as_str()));
        assert!(
            producer
                .tags
                .iter()
                .any(|(k, v)| k == "messaging.system" && v == "aws_sqs")
        );
        let consumers: Vec<_> = s
            .iter()
            .filter(|s| s.kind == "consumer" && s.service == "onboarding-lambda")
            .collect();
        assert!(!consumers.is_empty());
        for c in &consumers {
            assert_eq!(
                c.parent.as_deref(),
                Some(producer.id.as_str()),
                "trace {trace_id}: CONSUMER under PRODUCER"
            );
        }
        if consumers.len() > 1 {
            redelivered += 1;
            // Each redelivery says which attempt it was.
            let attempts: std::collections::BTreeSet<i64> = consumers
                .iter()
                .filter_map(|c| {
                    c.tags
                        .iter()
                        .find(|(k, _)| k == "onboarding.delivery_attempt")
                        .and_then(|(_, v)| v.as_i64())
                })
                .collect();
            assert!(
                attempts.len() > 1 && attempts.contains(&2),
                "trace {trace_id}: attempts {attempts:?}"
            );
        }
        // Nothing personal anywhere on the trace.
        let text = t.to_string();
        assert!(
            !text.contains(EMAIL_DOMAIN),
            "trace {trace_id} carries an email"
        );
    }
    assert!(
        redelivered > 0,
        "with compliance failing 15% of the time some records are redelivered"
    );

    // The worker's invocations show as its own FaaS spans, not as the Lambda runtime crate's
    // `Lambda runtime invoke` spans in one-span traces of their own.
    let operations: Value = client
        .get(format!(
            "http://{}/api/services/onboarding-lambda/operations",
            system.query
        ))
        .send()
        .await
        .expect("operations answer")
        .json()
        .await
        .expect("operations JSON");
    let operations: Vec<&str> = operations["data"]
        .as_array()
        .expect("operations list")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        operations.contains(&"process onboarding-queue")
            && !operations.contains(&"Lambda runtime invoke"),
        "worker operations: {operations:?}"
    );

    // The customer's status moved as the worker processed it.
    let (trace_id, customer) = accepted
        .iter()
        .find(|(t, _)| {
            spans(&done[*t])
                .iter()
                .any(|s| s.kind == "consumer" && !s.error)
        })
        .expect("one processed");
    assert_eq!(
        customer_status(&client, system.api, customer)
            .await
            .as_deref(),
        Some("completed"),
        "customer of {trace_id}"
    );

    // Ctrl-C (SIGTERM here) stops everything cleanly; no log line carried an email.
    assert!(system.stop(), "throughline up did not stop cleanly");
    for entry in std::fs::read_dir(system.log_dir()).expect("logs") {
        let path = entry.expect("log entry").path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            !text.contains(EMAIL_DOMAIN),
            "{} holds an email",
            path.display()
        );
    }
}

async fn futures_join(
    client: &reqwest::Client,
    system: &System,
    batch: Vec<(usize, (Value, bool))>,
) -> Vec<(usize, bool, u16, Value)> {
    let handles: Vec<_> = batch
        .into_iter()
        .map(|(i, (b, valid))| {
            let (client, api) = (client.clone(), system.api);
            tokio::spawn(async move {
                let (status, answer) = onboard(&client, api, &b).await;
                (i, valid, status, answer)
            })
        })
        .collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("request task"));
    }
    out
}

#[test]
fn up_refuses_a_taken_port_naming_it_and_the_flag() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let dir = tempfile::tempdir().expect("temp dir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_throughline"))
        .args([
            "up",
            "onboarding",
            "--data-dir",
            dir.path().to_str().expect("utf-8"),
            "--api-addr",
            &addr.to_string(),
        ])
        .args([
            "--broker-addr",
            "127.0.0.1:0",
            "--otlp-grpc-addr",
            "127.0.0.1:0",
            "--otlp-http-addr",
            "127.0.0.1:0",
            "--query-addr",
            "127.0.0.1:0",
        ])
        .output()
        .expect("run throughline up");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&addr.to_string())
            && err.contains("onboarding-api")
            && err.contains("--api-addr"),
        "{err}"
    );
    // Nothing was started: the logs directory was never made.
    assert!(!dir.path().join("logs").exists());
}
