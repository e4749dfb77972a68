//! A compressed Black Friday under `throughline up shop --scenario blackfriday --minute-secs 1`
//! (a 30-second demo on 100,000 products, the load generator driving its own traffic): every
//! span carries `demo.phase`; category queries are real full scans, with the slow-query
//! attributes, exactly in the degradation phase; checkouts fail on a really exhausted pool, 503
//! with the pool-exhaustion attributes, exactly in the critical phase; afterwards the index is
//! back and the pool healthy; the seed's log events name their traces. On SQLite, and on
//! PostgreSQL (`up --database-url`).

mod shop_common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;
use shop_common::{Shop, spans};

fn tag<'a>(tags: &'a [(String, Value)], key: &str) -> Option<&'a Value> {
    tags.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alerts_appear_exactly_in_the_phases_that_cause_them() {
    black_friday(&[], "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_too() {
    let server = throughline_testkit::PostgresServer::start();
    black_friday(&["--database-url", &server.url()], "postgresql").await;
    // The shop's tables live in their own schema.
    let orders = server.psql("SELECT count(*) FROM shop.orders");
    assert!(orders.trim().parse::<u64>().unwrap() > 0, "{orders}");
}

async fn black_friday(extra: &[&str], system: &str) {
    let mut flags = vec![
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
        "--slow-query-ms",
        "1",
    ];
    flags.extend_from_slice(extra);
    let mut shop = Shop::up(&flags);
    shop.wait_ready().await;
    let client = reqwest::Client::new();
    let stats_url = format!("http://{}/api/stats", shop.loadgen);
    // Until the demo is over (30 demo minutes of a second each, from `up`'s start).
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
            assert!(
                stats["errors"].as_u64().unwrap() > 0,
                "failed checkouts: {stats}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "the demo did not end: {stats}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // After the demo: the index back, the pool healthy.
    let after: Value = client
        .post(format!("http://{}/api/journeys/purchase", shop.loadgen))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(after["ok"], true, "{after}");
    tokio::time::sleep(Duration::from_secs(3)).await;

    let found: Value = client
        .get(format!(
            "http://{}/api/traces?service=load-generator&limit=1500",
            shop.query
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let traces = found["data"].as_array().expect("traces");
    assert!(traces.len() > 100, "{} traces", traces.len());
    let mut phases = BTreeSet::new();
    let (mut scans, mut slow, mut exhausted, mut degraded_pages) = (0, 0, 0, 0);
    for trace in traces {
        for (service, name, tags) in spans(trace) {
            let phase = tag(&tags, "demo.phase")
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("{service} {name} has no demo.phase: {tags:?}"))
                .to_owned();
            phases.insert(phase.clone());
            let category_page = name == "SELECT products"
                && tag(&tags, "db.query.text")
                    .and_then(Value::as_str)
                    .is_some_and(|q| q.contains("WHERE category"));
            if category_page {
                assert_eq!(tag(&tags, "db.system.name"), Some(&Value::from(system)));
                let scanned = tag(&tags, "db.full_table_scan").is_some();
                assert_eq!(
                    scanned,
                    phase == "degradation",
                    "a full scan exactly in the degradation phase: {phase} {tags:?}"
                );
                if scanned {
                    scans += 1;
                    assert_eq!(
                        tag(&tags, "db.missing_index"),
                        Some(&Value::from("idx_products_category"))
                    );
                    let rows = tag(&tags, "db.rows_scanned")
                        .and_then(Value::as_i64)
                        .unwrap();
                    assert_eq!(rows, 100_000, "the whole table");
                    if tag(&tags, "db.slow_query") == Some(&Value::Bool(true)) {
                        slow += 1;
                    }
                }
                if phase == "degradation" {
                    degraded_pages += 1;
                }
            }
            if name == "POST /orders/create" {
                let pool = tag(&tags, "db.connection.pool.exhausted").is_some();
                assert!(
                    !pool || phase == "critical",
                    "pool exhaustion only in the critical phase: {phase} {tags:?}"
                );
                if pool {
                    exhausted += 1;
                    assert_eq!(
                        tag(&tags, "http.response.status_code"),
                        Some(&Value::from(503))
                    );
                    assert_eq!(tag(&tags, "db.connection.pool.size"), Some(&Value::from(1)));
                    assert!(tag(&tags, "db.connection.pool.wait_time_ms").is_some());
                    assert_eq!(tag(&tags, "checkout.failed"), Some(&Value::Bool(true)));
                    assert_eq!(
                        tag(&tags, "checkout.failure_reason"),
                        Some(&Value::from("ConnectionPoolExhausted"))
                    );
                    assert_eq!(
                        tag(&tags, "checkout.cart_abandoned"),
                        Some(&Value::Bool(true))
                    );
                    assert!(
                        tag(&tags, "checkout.total")
                            .and_then(Value::as_f64)
                            .unwrap()
                            > 0.0
                    );
                }
            }
        }
    }
    for phase in ["peak", "degradation", "critical", "normal"] {
        assert!(phases.contains(phase), "{phase} seen: {phases:?}");
    }
    assert!(
        degraded_pages > 0 && scans == degraded_pages,
        "{scans} of {degraded_pages}"
    );
    assert!(slow > 0, "slow queries past 1 ms among {scans} scans");
    assert!(exhausted > 0, "checkouts failed on the pool");

    // The seed's log events, each naming its trace.
    let events = |part: &str, message: &str| {
        shop.json_logs(part)
            .into_iter()
            .filter(|l| l["message"] == message)
            .collect::<Vec<_>>()
    };
    for (part, message) in [
        ("product-catalog", "demo_slow_query_triggered"),
        ("checkout", "demo_pool_exhaustion"),
        ("checkout", "demo_checkout_failed"),
        ("checkout", "order_created"),
    ] {
        let lines = events(part, message);
        assert!(!lines.is_empty(), "{part} logged no {message}");
        assert!(
            lines.iter().all(|l| l["fields"]["trace_id"]
                .as_str()
                .is_some_and(|t| t.len() == 32)),
            "{message}: {lines:?}"
        );
    }
    assert!(shop.stop(), "up stops cleanly");
}
