//! Delivery to real peers: a webhook receiver checks Alertmanager's webhook payload field by
//! field (and answers the first POST with 503, which is retried), and a real Alertmanager
//! (Debian's `prometheus-alertmanager`, started here) lists the alert that fired and drops it
//! once it resolved. Spans go through the tapped sink into a real store.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use common::{b, export, kv, span};
use serde_json::Value;
use throughline_alerts::notify::fingerprint;
use throughline_alerts::{Alerts, Delivery, NoticeKind, Retry, Target, parse};
use throughline_store::{Store, StoreConfig};

const RULES: &str = r#"
groups:
  - name: shop
    interval: 1s
    rules:
      - alert: CheckoutFailures
        spans:
          service: checkout
          where: 'checkout.failed = true'
        window: 2s
        above: 0
        labels: {severity: critical}
        annotations:
          summary: "{{ $value }} failed checkouts"
          description: "severity {{ $labels.severity }}"
      - alert: CheckoutErrorRate
        metric: error_rate
        service: checkout
        window: 5m
        above: 0.5
"#;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

struct Setup {
    alerts: Arc<Alerts>,
    sink: Arc<dyn throughline_store::SpanSink>,
    _dir: tempfile::TempDir,
}

fn setup(target: Target) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<Store> = Arc::new(Store::open(StoreConfig::new(dir.path())).unwrap());
    let alerts = Arc::new(Alerts::over_store(
        parse(RULES).unwrap(),
        store.clone(),
        Delivery {
            targets: vec![target],
            retry: Retry {
                first_backoff: Duration::from_millis(50),
                ..Retry::default()
            },
            external_url: "http://apm.test:16686".into(),
        },
    ));
    let sink = alerts.sink(store);
    Setup {
        alerts,
        sink,
        _dir: dir,
    }
}

fn failed_checkout(sink: &dyn throughline_store::SpanSink) {
    let request = export(
        "checkout",
        vec![span(
            "POST /orders/create",
            now(),
            vec![
                kv("checkout.failed", b(true)),
                kv(
                    "http.response.status_code",
                    opentelemetry_proto::tonic::common::v1::any_value::Value::IntValue(503),
                ),
            ],
            true,
        )],
    );
    let report = sink.write_traces(request).unwrap();
    assert_eq!(report.accepted_spans, 1);
}

#[derive(Clone, Default)]
struct Received {
    posts: Arc<Mutex<Vec<(u16, Value)>>>,
}

async fn receive(State(r): State<Received>, body: String) -> StatusCode {
    let mut posts = r.posts.lock().unwrap();
    // The first delivery fails: the notifier must retry it.
    let status = if posts.is_empty() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    posts.push((status.as_u16(), serde_json::from_str(&body).unwrap()));
    status
}

async fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn rfc3339_nanos(s: &str) -> u64 {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{s:?}: {e}"))
        .unix_timestamp_nanos() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_receives_alertmanagers_payload_and_the_resolution() {
    let received = Received::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(received.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let s = setup(Target::Webhook(format!("http://{addr}/hook")));
    failed_checkout(s.sink.as_ref());
    let fired_at = now();
    let notices = s.alerts.evaluate_all(fired_at);
    assert_eq!(notices.len(), 2, "both rules fire: {notices:?}");
    assert!(notices.iter().all(|n| n.kind == NoticeKind::Firing));

    // Two payloads delivered (the first after a 503), one per alert.
    let ok = wait_for("two delivered payloads", || {
        let posts = received.posts.lock().unwrap();
        let ok: Vec<Value> = posts
            .iter()
            .filter(|(s, _)| *s == 200)
            .map(|(_, v)| v.clone())
            .collect();
        (ok.len() >= 2).then_some((posts.len(), ok))
    })
    .await;
    assert_eq!(ok.0, 3, "the refused first POST was retried");
    let posts = received.posts.lock().unwrap().clone();
    assert_eq!(posts[0].1, posts[1].1, "the retry is the same payload");
    let p =
        ok.1.iter()
            .find(|p| p["groupLabels"]["alertname"] == "CheckoutFailures")
            .expect("the span rule's payload")
            .clone();
    assert_eq!(p["version"], "4");
    assert_eq!(p["status"], "firing");
    assert_eq!(p["receiver"], "throughline");
    assert_eq!(p["externalURL"], "http://apm.test:16686");
    assert_eq!(p["truncatedAlerts"], 0);
    assert_eq!(p["groupKey"], "{}:{alertname=\"CheckoutFailures\"}");
    assert_eq!(
        p["groupLabels"],
        serde_json::json!({"alertname": "CheckoutFailures"})
    );
    let labels = serde_json::json!({"alertname": "CheckoutFailures", "severity": "critical"});
    assert_eq!(p["commonLabels"], labels);
    assert_eq!(
        p["commonAnnotations"],
        serde_json::json!({"summary": "1 failed checkouts", "description": "severity critical"})
    );
    let alerts = p["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1);
    let a = &alerts[0];
    assert_eq!(a["status"], "firing");
    assert_eq!(a["labels"], labels);
    assert_eq!(a["annotations"]["summary"], "1 failed checkouts");
    assert_eq!(
        rfc3339_nanos(a["startsAt"].as_str().unwrap()) / 1_000_000_000,
        fired_at / 1_000_000_000
    );
    assert_eq!(a["endsAt"], "0001-01-01T00:00:00Z");
    let generator = a["generatorURL"].as_str().unwrap();
    assert!(
        generator.starts_with("http://apm.test:16686/search?start="),
        "{generator}"
    );
    assert!(generator.contains("&service=checkout"), "{generator}");
    assert!(
        generator.contains("&tags=checkout.failed%3Dtrue"),
        "{generator}"
    );
    let mut l = BTreeMap::new();
    l.insert("alertname".to_owned(), "CheckoutFailures".to_owned());
    l.insert("severity".to_owned(), "critical".to_owned());
    assert_eq!(a["fingerprint"], fingerprint(&l));
    assert_eq!(a["fingerprint"].as_str().unwrap().len(), 16);
    // The metric rule's payload comes from the store's span metrics: one error of one call.
    let m =
        ok.1.iter()
            .find(|p| p["groupLabels"]["alertname"] == "CheckoutErrorRate")
            .unwrap();
    assert!(
        m["alerts"][0]["generatorURL"]
            .as_str()
            .unwrap()
            .ends_with("/services/checkout")
    );

    // The window passes: the span rule resolves and says when.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let resolved_at = now();
    let notices = s.alerts.evaluate_all(resolved_at);
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!(notices[0].kind, NoticeKind::Resolved);
    let r = wait_for("the resolved payload", || {
        received
            .posts
            .lock()
            .unwrap()
            .iter()
            .find(|(_, p)| p["status"] == "resolved")
            .map(|(_, p)| p.clone())
    })
    .await;
    let a = &r["alerts"][0];
    assert_eq!(a["status"], "resolved");
    assert_eq!(a["labels"], labels);
    assert_eq!(a["fingerprint"], fingerprint(&l));
    assert_eq!(
        rfc3339_nanos(a["endsAt"].as_str().unwrap()) / 1_000_000,
        resolved_at / 1_000_000
    );
    assert_eq!(
        rfc3339_nanos(a["startsAt"].as_str().unwrap()) / 1_000_000,
        fired_at / 1_000_000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_lists_the_alert_that_fired_and_drops_it_when_resolved() {
    let am = throughline_testkit::AlertmanagerServer::start();
    let s = setup(Target::Alertmanager(am.url()));
    let client = reqwest::Client::new();
    let listed = || async {
        let r = client
            .get(format!("{}/api/v2/alerts", am.url()))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
        r.json::<Vec<Value>>().await.unwrap()
    };
    assert!(listed().await.is_empty());

    failed_checkout(s.sink.as_ref());
    s.alerts.evaluate_all(now());
    let deadline = Instant::now() + Duration::from_secs(20);
    let alert = loop {
        let all = listed().await;
        if let Some(a) = all
            .iter()
            .find(|a| a["labels"]["alertname"] == "CheckoutFailures")
        {
            break a.clone();
        }
        assert!(
            Instant::now() < deadline,
            "Alertmanager never listed it: {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(alert["status"]["state"], "active");
    assert_eq!(alert["labels"]["severity"], "critical");
    assert_eq!(alert["annotations"]["summary"], "1 failed checkouts");
    assert!(
        alert["generatorURL"]
            .as_str()
            .unwrap()
            .starts_with("http://apm.test:16686/search?")
    );
    // Alertmanager's own fingerprint of the labels is ours.
    let mut l = BTreeMap::new();
    l.insert("alertname".to_owned(), "CheckoutFailures".to_owned());
    l.insert("severity".to_owned(), "critical".to_owned());
    assert_eq!(alert["fingerprint"], fingerprint(&l));
    assert!(
        rfc3339_nanos(alert["endsAt"].as_str().unwrap()) > now(),
        "a firing alert ends in the future until re-sent"
    );

    tokio::time::sleep(Duration::from_millis(2500)).await;
    let notices = s.alerts.evaluate_all(now());
    assert!(notices.iter().any(|n| n.kind == NoticeKind::Resolved));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let all = listed().await;
        if !all
            .iter()
            .any(|a| a["labels"]["alertname"] == "CheckoutFailures")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still listed after resolving: {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The error-rate rule still fires (the error stays in its 5-minute window).
    assert!(
        listed()
            .await
            .iter()
            .any(|a| a["labels"]["alertname"] == "CheckoutErrorRate")
    );
}
