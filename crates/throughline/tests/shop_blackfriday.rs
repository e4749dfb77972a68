//! A compressed Black Friday under `throughline up shop --scenario blackfriday --minute-secs 1`
//! (a 30-second demo on 100,000 products, the load generator driving its own traffic): every
//! span carries `demo.phase`; category queries are real full scans, with the slow-query
//! attributes, exactly in the degradation phase; checkouts fail on a really exhausted pool, 503
//! with the pool-exhaustion attributes, exactly in the critical phase; afterwards the index is
//! back and the pool healthy; the seed's log events name their traces. On SQLite, and on
//! PostgreSQL (`up --database-url`). And the same demo started on a shop already running
//! (`throughline load shop --scenario blackfriday --minute-secs 1`), reported by phase.

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
        // Exhausted only by the critical phase's held transactions (3 s each, 9 checkouts a
        // second at twice the peak), not by the degradation's CPU-heavy scans slowing commits.
        "--pool-size",
        "4",
        "--pool-wait-ms",
        "1000",
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
    // Checkouts begun late in the degradation (their prices read from its slow catalog) that
    // reached the pool once the critical phase had begun: (their end, µs).
    let mut late_refusals = Vec::new();
    let mut critical_began = u64::MAX;
    for trace in traces {
        for (i, (service, name, tags)) in spans(trace).into_iter().enumerate() {
            let raw = &trace["spans"][i];
            let start = raw["startTime"].as_u64().unwrap();
            let end = start + raw["duration"].as_u64().unwrap();
            let phase = tag(&tags, "demo.phase")
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("{service} {name} has no demo.phase: {tags:?}"))
                .to_owned();
            phases.insert(phase.clone());
            if phase == "critical" {
                critical_began = critical_began.min(start);
            }
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
                    !pool || phase == "critical" || phase == "degradation",
                    "pool exhaustion only in the critical phase: {phase} {tags:?}"
                );
                if pool && phase == "degradation" {
                    late_refusals.push((end, format!("{tags:?}")));
                }
                if pool {
                    exhausted += 1;
                    assert_eq!(
                        tag(&tags, "http.response.status_code"),
                        Some(&Value::from(503))
                    );
                    assert_eq!(tag(&tags, "db.connection.pool.size"), Some(&Value::from(4)));
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
    for (end, tags) in &late_refusals {
        assert!(
            *end >= critical_began,
            "a checkout of the degradation refused before the critical phase began: {tags}"
        );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_runs_a_black_friday_on_a_running_shop_and_reports_each_phase() {
    let mut shop = Shop::up(&[
        "--pool-size",
        "4",
        "--pool-wait-ms",
        "1000",
        "--slow-query-ms",
        "1",
    ]);
    shop.wait_ready().await;
    let client = reqwest::Client::new();
    let phase_of = |service: std::net::SocketAddr| {
        let client = client.clone();
        async move {
            let health: Value = client
                .get(format!("http://{service}/health"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            health["demo_phase"].as_str().unwrap().to_owned()
        }
    };
    assert_eq!(phase_of(shop.catalog).await, "normal");

    // A refused scenario is named, exit 2.
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_throughline"))
        .args(["load", "shop", "--quiet", "--scenario", "cybermonday"])
        .args(["--api", &format!("http://{}", shop.loadgen)])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("scenario"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    let (code, summary) = shop.load(&[
        "--scenario",
        "blackfriday",
        "--minute-secs",
        "1",
        "--peak-rate",
        "15",
        "--settle-secs",
        "30",
    ]);
    assert_eq!(code, 0, "{summary:#}\nlogs:\n{}", shop.logs());
    let stats = &summary["system_stats"];
    let phases = stats["phases"].as_array().unwrap();
    let row = |name: &str| {
        phases
            .iter()
            .find(|p| p["phase"] == name)
            .unwrap_or_else(|| panic!("no phase {name}: {stats:#}"))
    };
    let names: Vec<&str> = phases
        .iter()
        .map(|p| p["phase"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["ramp", "peak", "degradation", "critical"],
        "{stats:#}"
    );
    for name in ["ramp", "peak"] {
        assert_eq!(row(name)["errors"], 0, "{name}: {stats:#}");
    }
    for name in ["ramp", "peak", "degradation", "critical"] {
        assert!(
            row(name)["requests"].as_u64().unwrap() > 10,
            "{name}: {stats:#}"
        );
        // Only checkouts refused by the critical phase's exhausted pool failed (some of
        // journeys begun late in the degradation, whose checkout came in the critical phase).
        assert_eq!(
            row(name)["errors"],
            row(name)["expected_errors"],
            "{name}: {stats:#}"
        );
    }
    let critical = row("critical");
    assert!(
        critical["errors"].as_u64().unwrap() > 0,
        "checkouts refused: {stats:#}"
    );
    assert_eq!(summary["unexpected_errors"], 0);
    assert_eq!(summary["phases_missing"], serde_json::json!([]));
    // The degradation's pages are slower than the peak's (full scans).
    let p50 = |name: &str| {
        row(name)["journeys"]["browse"]["latency_ms"]["p50"]
            .as_f64()
            .unwrap()
    };
    assert!(p50("degradation") > p50("peak"), "{stats:#}");
    // The sampled traces of every phase read back whole.
    let traces = &summary["traces"];
    assert!(traces["checked"].as_u64().unwrap() >= 100, "{summary:#}");
    assert_eq!(traces["whole"], traces["checked"], "{summary:#}");
    assert_eq!(stats["steps"]["create_order"]["errors"], stats["errors"]);

    // After the demo the running shop is back to normal: index in place, pool healthy.
    assert_eq!(phase_of(shop.catalog).await, "normal");
    assert_eq!(phase_of(shop.checkout).await, "normal");
    let after: Value = client
        .post(format!("http://{}/api/journeys/purchase", shop.loadgen))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(after["ok"], true, "{after}");

    // `normal`: the same traffic, nothing degraded, every journey answered.
    let (code, summary) = shop.load(&[
        "--scenario",
        "normal",
        "--minute-secs",
        "0.2",
        "--peak-rate",
        "15",
        "--settle-secs",
        "30",
    ]);
    assert_eq!(code, 0, "{summary:#}");
    let phases = summary["system_stats"]["phases"].as_array().unwrap();
    assert_eq!(phases.len(), 1, "{summary:#}");
    assert_eq!(phases[0]["phase"], "normal");
    assert_eq!(phases[0]["errors"], 0);
    assert!(phases[0]["requests"].as_u64().unwrap() > 30, "{summary:#}");
    assert_eq!(summary["traces"]["whole"], summary["traces"]["checked"]);
    assert!(shop.stop(), "up stops cleanly");
}
