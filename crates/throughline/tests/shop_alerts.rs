//! The shop's compressed Black Friday (`up shop --scenario blackfriday --minute-secs 1`) under
//! the shop's built-in alert rules, delivered to a webhook receiver started here: slow queries
//! fire (degradation), then pool exhaustion and failed checkouts (critical), then their flow,
//! in that order; after the demo every one resolves. The Alerts page and
//! `GET /api/throughline/alerts` tell the same story.

mod shop_common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use serde_json::Value;
use shop_common::Shop;

const RULES: [&str; 4] = [
    "SlowQueries",
    "PoolExhausted",
    "CheckoutFailures",
    "BlackFridayCascade",
];

type Posts = Arc<Mutex<Vec<Value>>>;

async fn receive(State(posts): State<Posts>, body: String) -> &'static str {
    posts
        .lock()
        .unwrap()
        .push(serde_json::from_str(&body).expect("a JSON payload"));
    "ok"
}

fn nanos(s: &str) -> i128 {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{s:?}: {e}"))
        .unix_timestamp_nanos()
}

/// (alertname, status, startsAt) of every alert delivered, in arrival order.
fn deliveries(posts: &Posts) -> Vec<(String, String, i128)> {
    posts
        .lock()
        .unwrap()
        .iter()
        .flat_map(|p| {
            assert_eq!(p["version"], "4", "{p}");
            p["alerts"].as_array().cloned().unwrap_or_default()
        })
        .map(|a| {
            (
                a["labels"]["alertname"].as_str().unwrap().to_owned(),
                a["status"].as_str().unwrap().to_owned(),
                nanos(a["startsAt"].as_str().unwrap()),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn black_friday_fires_slow_queries_then_pool_then_checkouts_then_the_flow() {
    let posts = Posts::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(posts.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut shop = Shop::up(&[
        "--scenario",
        "blackfriday",
        "--minute-secs",
        "1",
        "--pool-size",
        "1",
        "--pool-wait-ms",
        "150",
        "--peak-rate",
        "15",
        // Full scans of 100,000 rows pass 5 ms; indexed pages stay under it (a stray slow
        // one fires and resolves on its own, which the flow survives).
        "--slow-query-ms",
        "5",
        "--alert-webhook",
        &hook,
    ]);
    shop.wait_ready().await;
    let client = reqwest::Client::new();
    let stats_url = format!("http://{}/api/stats", shop.loadgen);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let stats: Value = client
            .get(&stats_url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if stats["demo_minute"].as_f64().is_some_and(|m| m >= 30.5) {
            break;
        }
        assert!(Instant::now() < deadline, "the demo did not end: {stats}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Every rule fired and then resolved.
    let alerts_url = format!("http://{}/api/throughline/alerts", shop.query);
    let deadline = Instant::now() + Duration::from_secs(30);
    let statuses = loop {
        let body: Value = client
            .get(&alerts_url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let data = body["data"].as_array().cloned().unwrap_or_default();
        let resolved = RULES.iter().all(|name| {
            data.iter()
                .any(|s| s["alert"] == *name && s["state"] == "resolved")
        });
        if resolved {
            break data;
        }
        assert!(
            Instant::now() < deadline,
            "not all resolved after the demo: {:#?}\ndelivered: {:?}",
            data.iter()
                .map(|s| (
                    s["alert"].clone(),
                    s["state"].clone(),
                    s["valueText"].clone()
                ))
                .collect::<Vec<_>>(),
            deliveries(&posts)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    for s in &statuses {
        let history = s["history"].as_array().unwrap();
        assert!(
            history.iter().any(|h| h["state"] == "firing"),
            "{} never fired: {s}",
            s["alert"]
        );
        assert!(
            s["firingSince"].is_null() && s["resolvedAt"].is_string(),
            "{s}"
        );
    }
    let slow = statuses
        .iter()
        .find(|s| s["alert"] == "SlowQueries")
        .unwrap();
    let traces = slow["recentTraces"].as_array().unwrap();
    assert!(
        !traces.is_empty(),
        "a slow query's traces are linked: {slow}"
    );
    // The linked trace holds a slow query.
    let trace = shop
        .trace(traces[0].as_str().unwrap())
        .await
        .expect("the linked trace");
    assert!(trace.to_string().contains("db.slow_query"), "{trace}");

    // Delivered in the cascade's order: each rule's first firing no earlier than the one
    // before it, slow queries well before the pool (ten demo minutes apart).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let delivered = deliveries(&posts);
    let first_firing = |name: &str| {
        delivered
            .iter()
            .find(|(n, s, _)| n == name && s == "firing")
            .map(|(_, _, t)| *t)
            .unwrap_or_else(|| panic!("{name} was never delivered firing: {delivered:?}"))
    };
    let times: Vec<i128> = RULES.iter().map(|n| first_firing(n)).collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "out of order: {:?}",
        RULES.iter().zip(&times).collect::<Vec<_>>()
    );
    assert!(
        times[1] - times[0] >= 5_000_000_000,
        "slow queries (degradation) came {} ms before the pool (critical)",
        (times[1] - times[0]) / 1_000_000
    );
    let arrival = |name: &str, status: &str| {
        delivered
            .iter()
            .position(|(n, s, _)| n == name && s == status)
            .unwrap_or_else(|| panic!("no {status} {name}: {delivered:?}"))
    };
    for name in RULES {
        assert!(
            arrival(name, "firing") < arrival(name, "resolved"),
            "{name}"
        );
    }
    assert!(arrival("CheckoutFailures", "firing") < arrival("BlackFridayCascade", "firing"));

    // The page shows the same.
    let page = client
        .get(format!("http://{}/alerts", shop.query))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in RULES {
        assert!(
            page.contains(&format!("data-alert=\"{name}\"")),
            "{name} on the page"
        );
    }
    assert!(page.contains("data-state=\"resolved\""));
    assert!(shop.stop(), "up stops cleanly");
}
