//! The whole shop under `throughline up shop` (100,000 products on SQLite): `throughline load
//! shop` drives journeys of every type through the load generator and reads every trace back,
//! each whole; the checkout's `order_created` log line names its trace.

mod shop_common;

use shop_common::Shop;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journeys_of_every_type_each_have_one_whole_trace() {
    let dir = journeys(&[]).await;
    assert!(dir.path().join("shop/catalog.sqlite3").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_too() {
    let server = throughline_testkit::PostgresServer::start();
    journeys(&["--database-url", &server.url()]).await;
    // Every order committed with all its lines, in the shop's own schema.
    let orders = server.psql("SELECT count(*) FROM shop.orders");
    assert_eq!(orders.trim(), "12", "{orders}");
    let orphans = server.psql(
        "SELECT count(*) FROM shop.orders o WHERE NOT EXISTS (SELECT 1 FROM shop.order_lines l WHERE l.order_id = o.id)",
    );
    assert_eq!(orphans.trim(), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_postgresql_that_up_starts_itself() {
    let port = throughline_testkit::free_loopback_addr().port().to_string();
    let dir = journeys(&["--postgres", "--postgres-port", &port]).await;
    assert!(
        dir.path().join("postgres/data/PG_VERSION").is_file(),
        "the cluster lives in the data directory"
    );
}

/// Runs the journeys and hands back the stopped system's data directory.
async fn journeys(flags: &[&str]) -> tempfile::TempDir {
    let mut shop = Shop::up(flags);
    shop.wait_ready().await;
    let (code, summary) = shop.load(&[
        "--journeys",
        "40",
        "--concurrency",
        "4",
        "--invalid-ratio",
        "0",
        "--settle-secs",
        "30",
    ]);
    assert_eq!(code, 0, "{summary:#}\nlogs:\n{}", shop.logs());
    assert_eq!(summary["accepted"], 40, "{summary:#}");
    assert_eq!(summary["traces"]["checked"], 40, "{summary:#}");
    assert_eq!(summary["traces"]["whole"], 40, "{summary:#}");
    // The load generator's own stats of this load, by journey and step.
    let stats = &summary["system_stats"];
    assert_eq!(stats["journeys"]["purchase"]["requests"], 12, "{stats:#}");
    assert_eq!(stats["journeys"]["browse"]["requests"], 16, "{stats:#}");
    assert_eq!(stats["steps"]["create_order"]["requests"], 12, "{stats:#}");
    assert_eq!(stats["errors"], 0, "{stats:#}");

    // The checkout's log line of each order names the order's trace.
    let created: Vec<_> = shop
        .json_logs("checkout")
        .into_iter()
        .filter(|l| l["message"] == "order_created")
        .collect();
    // 40 journeys in the load's mix: 3 purchases in every 10.
    assert_eq!(created.len(), 12, "{created:?}");
    for line in &created {
        let trace_id = line["fields"]["trace_id"].as_str().expect("trace_id");
        assert_eq!(trace_id.len(), 32, "{line}");
        assert!(line["fields"]["order_id"].is_string(), "{line}");
    }
    assert!(shop.stop(), "up stops cleanly");
    std::mem::replace(&mut shop.dir, tempfile::tempdir().expect("temp dir"))
}
