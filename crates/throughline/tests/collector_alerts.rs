//! `throughline alerts check` and `throughline collector --alert-rules … --alert-webhook …` as
//! processes: a file is checked (the issue's example passes, mistakes are listed by group, rule
//! and field, exit 1); a bad file stops the collector before it listens; a running collector
//! fires a span rule on OTLP/JSON spans it receives, POSTs the webhook payload, and lists the
//! rule on `/api/throughline/alerts` and the Alerts page.

mod collector_common;

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use collector_common::{now_nanos, start_collector_with};
use serde_json::{Value, json};

/// The issue's example file (shared with the alerts crate's parsing tests).
const EXAMPLE: &str = include_str!("../../alerts/tests/issue_example.yaml");

const BAD: &str = r#"groups:
  - name: shop
    rules:
      - alert: Slow
        spans: {service: catalog, where: 'db.duration ~ 5'}
        window: 1 minute
        above: 0
      - alert: Cascade
        flow: [Slow, Missing]
        within: 10m
"#;

fn throughline(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_throughline"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run throughline");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn alerts_check_passes_the_issues_example_and_lists_every_mistake() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&good, EXAMPLE).unwrap();
    std::fs::write(&bad, BAD).unwrap();
    let (code, out, err) = throughline(&["alerts", "check", good.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ok: 5 rules"), "{out}");
    assert!(out.contains("BlackFridayCascade (flow)"), "{out}");

    let (code, out, err) = throughline(&["alerts", "check", bad.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}{err}");
    for line in [
        "group \"shop\": rule \"Slow\": `spans.where`: \"db.duration ~ 5\": unknown operator \"~\"",
        "group \"shop\": rule \"Slow\": `window`: \"1 minute\" is not a duration",
        "group \"shop\": rule \"Cascade\": `flow`: names \"Missing\", which is no rule",
    ] {
        assert!(err.contains(line), "{line}\nin: {err}");
    }
}

#[test]
fn a_bad_rules_file_stops_the_collector_naming_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, BAD).unwrap();
    let data = dir.path().join("data");
    let (code, _, err) = throughline(&[
        "collector",
        "--data-dir",
        data.to_str().unwrap(),
        "--grpc-addr",
        "127.0.0.1:0",
        "--http-addr",
        "127.0.0.1:0",
        "--query-addr",
        "127.0.0.1:0",
        "--alert-rules",
        bad.to_str().unwrap(),
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("rule \"Slow\": `window`"), "{err}");
    assert!(!data.exists(), "nothing was opened");
    let (code, _, err) = throughline(&[
        "collector",
        "--data-dir",
        data.to_str().unwrap(),
        "--alert-webhook",
        "not a url",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("--alert-webhook"), "{err}");
}

type Posts = Arc<Mutex<Vec<Value>>>;

async fn receive(State(posts): State<Posts>, body: String) -> &'static str {
    posts
        .lock()
        .unwrap()
        .push(serde_json::from_str(&body).unwrap());
    "ok"
}

fn failed_checkouts(n: usize) -> Value {
    let end = now_nanos();
    let spans: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "traceId": format!("{:032x}", 0xabc0 + i),
                "spanId": format!("{:016x}", 0x10 + i),
                "name": "POST /orders/create",
                "kind": 2,
                "startTimeUnixNano": (end - 5_000_000).to_string(),
                "endTimeUnixNano": end.to_string(),
                "attributes": [{"key": "checkout.failed", "value": {"boolValue": true}}],
                "status": {"code": 2}
            })
        })
        .collect();
    json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "checkout"}}]},
        "scopeSpans": [{"spans": spans}]
    }]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_fires_a_span_rule_to_its_webhook_and_lists_it() {
    let posts = Posts::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(posts.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yaml");
    std::fs::write(&rules, EXAMPLE.replace("interval: 5s", "interval: 200ms")).unwrap();
    let (_collector, addrs) = start_collector_with(
        &dir.path().join("data"),
        &[
            "--alert-rules",
            rules.to_str().unwrap(),
            "--alert-webhook",
            &hook,
        ],
    );
    let client = reqwest::Client::new();
    let alerts_url = format!("http://{}/api/throughline/alerts", addrs.query);
    let listed: Value = client
        .get(&alerts_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["alert"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "CheckoutFailures",
            "OnboardingErrorRate",
            "BlackFridayCascade",
            "SlowQueries",
            "PoolExhausted"
        ]
    );
    assert!(
        listed["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["state"] == "inactive")
    );

    // Six failed checkouts (above five) over OTLP/HTTP JSON on the gRPC port.
    let r = client
        .post(format!("http://{}/v1/traces", addrs.grpc))
        .json(&failed_checkouts(6))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());

    let deadline = Instant::now() + Duration::from_secs(20);
    let payload = loop {
        if let Some(p) = posts.lock().unwrap().first().cloned() {
            break p;
        }
        assert!(Instant::now() < deadline, "no webhook payload");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(payload["status"], "firing");
    assert_eq!(payload["externalURL"], format!("http://{}", addrs.query));
    let alert = &payload["alerts"][0];
    assert_eq!(alert["labels"]["alertname"], "CheckoutFailures");
    assert_eq!(
        alert["annotations"]["summary"],
        "6 failed checkouts in the last minute"
    );
    // The generator URL is the APM's search for the matching traces; it lists them.
    let generator = alert["generatorURL"].as_str().unwrap();
    assert!(
        generator.starts_with(&format!("http://{}/search?", addrs.query)),
        "{generator}"
    );
    let page = client
        .get(generator)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(&format!("{:032x}", 0xabc0)),
        "a matching trace on {generator}"
    );

    let listed: Value = client
        .get(&alerts_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let s = &listed["data"][0];
    assert_eq!(s["state"], "firing");
    assert_eq!(s["value"], 6.0);
    assert_eq!(s["recentTraces"].as_array().unwrap().len(), 6);
    let page = client
        .get(format!("http://{}/alerts", addrs.query))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("data-alert=\"CheckoutFailures\""));
    assert!(page.contains("data-state=\"firing\""));
    assert!(page.contains("6 failed checkouts in the last minute"));
    // The stored-metric-free rules evaluate without errors.
    assert!(
        listed["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["error"].is_null()),
        "{listed}"
    );
}
