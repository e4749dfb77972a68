//! The checkout over real sockets with the real catalog beside it: an order priced at the
//! catalog and written with all its lines, bad carts answered 400 naming the field, and, in the
//! critical phase, a pool that really runs dry answering 503 naming `ConnectionPoolExhausted`
//! with the seed's alert attributes, no order half-written.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::global::BoxedTracer;
use opentelemetry::trace::SpanKind;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use serde_json::{Value, json};
use shop_checkout::{App, CheckoutConfig, OrderStore, Telemetry, routes};
use throughline_service_kit::{ServeConfig, spawn_http};
use throughline_telemetry::testing::TestTracing;

struct Shop {
    checkout: String,
    tracing: TestTracing,
    dir: tempfile::TempDir,
}

/// The catalog and the checkout, both traced into one in-memory store; `extra` goes to the
/// checkout's environment.
async fn start(extra: &[(&str, String)]) -> Shop {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let dir = tempfile::tempdir().expect("temp dir");
    let tracing = TestTracing::new();
    let tracer = |scope| Arc::new(BoxedTracer::new(Box::new(tracing.tracer(scope))));

    let env = HashMap::from([
        (
            "DATABASE_URL".to_owned(),
            format!("sqlite:{}", dir.path().join("catalog.sqlite3").display()),
        ),
        ("SHOP_PRODUCTS".to_owned(), "500".to_owned()),
    ]);
    let config = shop_catalog::CatalogConfig::from_env(&env).unwrap();
    let store = shop_catalog::CatalogStore::open(&config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let telemetry = shop_catalog::Telemetry {
        tracer: tracer("product-catalog"),
    };
    let app = Arc::new(shop_catalog::App::new(store, telemetry, &config, port));
    let catalog = spawn_http(
        listener,
        shop_catalog::routes::router(app),
        ServeConfig::default(),
    )
    .unwrap();

    let mut env = HashMap::from([
        (
            "DATABASE_URL".to_owned(),
            format!("sqlite:{}", dir.path().join("checkout.sqlite3").display()),
        ),
        (
            "SHOP_CATALOG_URL".to_owned(),
            format!("http://{}", catalog.local_addr()),
        ),
    ]);
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    let config = CheckoutConfig::from_env(&env).unwrap();
    let store = OrderStore::open(&config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let telemetry = Telemetry {
        tracer: tracer("checkout"),
    };
    let app = Arc::new(App::new(store, telemetry, &config, port));
    let checkout = spawn_http(listener, routes::router(app), ServeConfig::default()).unwrap();
    let url = format!("http://{}", checkout.local_addr());
    // Both run in their own tasks until the test's runtime ends.
    std::mem::forget(catalog);
    std::mem::forget(checkout);
    Shop {
        checkout: url,
        tracing,
        dir,
    }
}

async fn post(url: &str, body: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("the checkout answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn count(shop: &Shop, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(shop.dir.path().join("checkout.sqlite3")).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[tokio::test]
async fn an_order_is_priced_at_the_catalog_and_written_with_its_lines() {
    let shop = start(&[]).await;
    let cart = json!({"user_id": "u-1", "items": [
        {"product_id": 7, "quantity": 2}, {"product_id": 9, "quantity": 1}]});
    let (status, order) = post(
        &format!("{}/orders/create", shop.checkout),
        &cart.to_string(),
    )
    .await;
    assert_eq!(status, 201, "{order}");
    let price = |id: i64| {
        let conn = rusqlite::Connection::open(shop.dir.path().join("catalog.sqlite3")).unwrap();
        conn.query_row(
            "SELECT price_cents FROM products WHERE id = ?1",
            [id],
            |r| r.get::<_, i64>(0),
        )
        .unwrap()
    };
    assert_eq!(order["total_cents"], price(7) * 2 + price(9));
    let id = order["order_id"].as_str().unwrap().to_owned();
    let read: Value = reqwest::get(format!("{}/orders/{id}", shop.checkout))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read["lines"].as_array().unwrap().len(), 2, "{read}");

    let spans = shop.tracing.spans();
    spans
        .assert_kind("POST /orders/create", SpanKind::Server)
        .assert_attribute("POST /orders/create", "user.id", "u-1")
        .assert_attribute("POST /orders/create", "checkout.items", 2_i64)
        .assert_attribute("POST /orders/create", "order.id", id.clone())
        .assert_parent("INSERT orders", "POST /orders/create")
        .assert_parent("INSERT order_lines", "POST /orders/create")
        .assert_kind("INSERT orders", SpanKind::Client)
        .assert_attribute("INSERT orders", "db.system.name", "sqlite")
        .assert_attribute("INSERT order_lines", "db.collection.name", "order_lines")
        .assert_same_trace(&["POST /orders/create", "INSERT orders", "INSERT order_lines"]);
    // One priced call per product: the catalog's SERVER span under the checkout's CLIENT span.
    let priced = spans.find_all("GET /products/{id}");
    assert_eq!(priced.len(), 2);
    for server in priced {
        let client = spans.parent_of(server).expect("a parent");
        assert_eq!(
            (client.name.as_ref(), client.span_kind.clone()),
            ("GET", SpanKind::Client)
        );
        let parent = spans.parent_of(client).expect("a parent");
        assert_eq!(parent.name, "POST /orders/create");
    }
    assert!(
        !spans
            .find("POST /orders/create")
            .attributes
            .iter()
            .any(|kv| kv.key.as_str().starts_with("db.connection.pool")),
        "a healthy checkout carries no pool alert"
    );
}

#[tokio::test]
async fn a_bad_cart_is_a_400_naming_the_field_and_writes_nothing() {
    let shop = start(&[]).await;
    let table = [
        (
            r#"{"user_id": "u", "items": [{"product_id": 99999, "quantity": 1}]}"#,
            "items[0].product_id",
        ),
        (r#"{"user_id": "u", "items": []}"#, "items"),
        (
            r#"{"user_id": "u", "items": [{"product_id": 3, "quantity": -1}]}"#,
            "items[0].quantity",
        ),
        (r#"{"user_id": "u", "items": [{"product_"#, "body"),
    ];
    for (body, field) in table {
        let (status, answer) = post(&format!("{}/orders/create", shop.checkout), body).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["field"], field, "{body}: {answer}");
    }
    assert_eq!(count(&shop, "SELECT COUNT(*) FROM orders"), 0);
}

#[tokio::test]
async fn in_the_critical_phase_the_pool_runs_dry_and_answers_503_naming_it() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Minute 26 of a demo with 60-second minutes: the critical phase for a while yet.
    let shop = start(&[
        ("DEMO_MODE", "blackfriday".to_owned()),
        ("DEMO_START_TIMESTAMP", (now - 26 * 60).to_string()),
        ("SHOP_POOL_SIZE", "1".to_owned()),
        ("SHOP_POOL_WAIT_MS", "100".to_owned()),
        ("SHOP_CRITICAL_HOLD_MS", "600".to_owned()),
    ])
    .await;
    let cart = json!({"user_id": "u-2", "items": [{"product_id": 5, "quantity": 3}]}).to_string();
    let url = format!("{}/orders/create", shop.checkout);
    let answers = futures_join(&url, &cart, 3).await;
    let created = answers.iter().filter(|(s, _)| *s == 201).count();
    let refused: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == 503)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(created + refused.len(), 3, "{answers:?}");
    assert!(created >= 1 && !refused.is_empty(), "{answers:?}");
    for body in &refused {
        assert_eq!(body["reason"], "ConnectionPoolExhausted", "{body}");
        assert_eq!(body["pool_size"], 1);
        assert!(body["error"].as_str().unwrap().contains("pool exhausted"));
    }
    // Every order committed with its line; none half-written.
    assert_eq!(count(&shop, "SELECT COUNT(*) FROM orders"), created as i64);
    assert_eq!(
        count(&shop, "SELECT COUNT(*) FROM order_lines"),
        created as i64
    );

    let spans = shop.tracing.spans();
    let failed: Vec<_> = spans
        .find_all("POST /orders/create")
        .into_iter()
        .filter(|s| {
            s.attributes
                .iter()
                .any(|kv| kv.key.as_str() == "db.connection.pool.exhausted")
        })
        .collect();
    assert_eq!(failed.len(), refused.len());
    let attr = |key: &str| {
        failed[0]
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.to_string())
            .unwrap_or_else(|| panic!("{key} missing"))
    };
    assert_eq!(attr("db.connection.pool.exhausted"), "true");
    assert_eq!(attr("db.connection.pool.size"), "1");
    assert!(
        attr("db.connection.pool.wait_time_ms")
            .parse::<i64>()
            .unwrap()
            >= 100
    );
    assert_eq!(attr("checkout.failed"), "true");
    assert_eq!(attr("checkout.failure_reason"), "ConnectionPoolExhausted");
    assert_eq!(attr("checkout.cart_abandoned"), "true");
    assert!(attr("checkout.total").parse::<f64>().unwrap() > 0.0);
    assert_eq!(attr("http.response.status_code"), "503");
}

/// `n` checkouts of `cart` at once.
async fn futures_join(url: &str, cart: &str, n: usize) -> Vec<(u16, Value)> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (url, cart) = (url.to_owned(), cart.to_owned());
            tokio::spawn(async move { post(&url, &cart).await })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}
