//! The catalog over a real socket on a seeded SQLite file: category pages through the index,
//! the same page as a real full scan once the index is gone (and the span saying so), and bad
//! input answered 400 naming the field.

use std::collections::HashMap;
use std::sync::Arc;

use opentelemetry::global::BoxedTracer;
use opentelemetry::trace::SpanKind;
use serde_json::Value;
use shop_catalog::{App, CatalogConfig, CatalogStore, Telemetry, routes};
use throughline_service_kit::{ServeConfig, spawn_http};
use throughline_telemetry::testing::TestTracing;

struct Catalog {
    url: String,
    store: CatalogStore,
    tracing: TestTracing,
    _dir: tempfile::TempDir,
}

async fn start(products: u64, slow_query_ms: u64) -> Catalog {
    let dir = tempfile::tempdir().expect("temp dir");
    let env = HashMap::from([
        (
            "DATABASE_URL".to_owned(),
            format!("sqlite:{}", dir.path().join("catalog.sqlite3").display()),
        ),
        ("SHOP_PRODUCTS".to_owned(), products.to_string()),
        ("SHOP_SLOW_QUERY_MS".to_owned(), slow_query_ms.to_string()),
    ]);
    let config = CatalogConfig::from_env(&env).expect("a valid configuration");
    let store = CatalogStore::open(&config)
        .await
        .expect("the catalog opens");
    let tracing = TestTracing::new();
    let telemetry = Telemetry {
        tracer: Arc::new(BoxedTracer::new(Box::new(
            tracing.tracer("product-catalog"),
        ))),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = Arc::new(App::new(store.clone(), telemetry, &config, port));
    let server = spawn_http(listener, routes::router(app), ServeConfig::default()).unwrap();
    let url = format!("http://{}", server.local_addr());
    // The server runs in its own task until the test's runtime ends.
    std::mem::forget(server);
    Catalog {
        url,
        store,
        tracing,
        _dir: dir,
    }
}

async fn get(url: &str) -> (u16, Value) {
    let response = reqwest::get(url).await.expect("the catalog answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_category_page_reads_the_index_and_a_dropped_index_means_a_real_scan() {
    let catalog = start(4000, 0).await;
    let (status, page) = get(&format!("{}/products?category=books&limit=5", catalog.url)).await;
    assert_eq!(status, 200, "{page}");
    let names: Vec<&str> = page["products"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 5);
    assert!(names.windows(2).all(|w| w[0] <= w[1]), "{names:?}");
    let spans = catalog.tracing.spans();
    spans
        .assert_kind("SELECT products", SpanKind::Client)
        .assert_parent("SELECT products", "GET /products")
        .assert_attribute("SELECT products", "db.system.name", "sqlite")
        .assert_attribute("SELECT products", "db.collection.name", "products")
        .assert_attribute("SELECT products", "db.operation.name", "SELECT")
        .assert_attribute("SELECT products", "db.response.returned_rows", 5_i64)
        .assert_attribute(
            "SELECT products",
            "db.query.text",
            shop_catalog::store::CATEGORY_SQL,
        );
    let indexed = spans.find("SELECT products");
    assert!(
        !indexed
            .attributes
            .iter()
            .any(|kv| kv.key.as_str() == "db.full_table_scan"),
        "an indexed page is no full scan"
    );

    assert!(catalog.store.set_category_index(false).await.unwrap());
    catalog.tracing.exporter().reset();
    let (status, scanned) = get(&format!("{}/products?category=books&limit=5", catalog.url)).await;
    assert_eq!(status, 200);
    assert_eq!(
        scanned["products"], page["products"],
        "the same page either way"
    );
    let spans = catalog.tracing.spans();
    spans
        .assert_attribute("SELECT products", "db.full_table_scan", true)
        .assert_attribute(
            "SELECT products",
            "db.missing_index",
            "idx_products_category",
        )
        .assert_attribute("SELECT products", "db.slow_query", true);
    let rows = spans
        .find("SELECT products")
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == "db.rows_scanned")
        .and_then(|kv| match kv.value {
            opentelemetry::Value::I64(n) => Some(n),
            _ => None,
        })
        .expect("db.rows_scanned");
    assert_eq!(rows, 4000, "a full scan reads the whole table");

    assert!(catalog.store.set_category_index(true).await.unwrap());
    assert!(!catalog.store.set_category_index(true).await.unwrap());
}

#[tokio::test]
async fn bad_input_is_a_4xx_naming_the_field() {
    let catalog = start(100, 100).await;
    let table = [
        ("/products?category=books&limit=abc", 400, "limit"),
        ("/products?category=books&limit=0", 400, "limit"),
        ("/products?limit=3", 400, "category"),
        ("/products/seven", 400, "id"),
        ("/products/999999", 404, "id"),
    ];
    for (path, want, field) in table {
        let (status, body) = get(&format!("{}{path}", catalog.url)).await;
        assert_eq!(status, want, "{path}: {body}");
        assert_eq!(body["field"], field, "{path}: {body}");
    }
    let (status, product) = get(&format!("{}/products/7", catalog.url)).await;
    assert_eq!(status, 200);
    assert_eq!(product["id"], 7);
    assert!(product["price_cents"].as_i64().unwrap() > 0);
}
