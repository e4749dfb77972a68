//! The load generator against the real catalog and checkout on loopback: each journey type is
//! one trace rooted at `user_journey.{type}`, the catalog's SERVER span under the load
//! generator's CLIENT span, the purchase reaching the checkout; its API answers bad input with
//! a 400 naming the field, and its stats count what ran.

use std::collections::HashMap;
use std::sync::Arc;

use opentelemetry::global::BoxedTracer;
use opentelemetry::trace::SpanKind;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use serde_json::{Value, json};
use shop_loadgen::{LoadgenConfig, routes};
use throughline_instrument::SharedTracer;
use throughline_service_kit::{ServeConfig, spawn_http};
use throughline_telemetry::testing::{SpanTree, TestTracing};

struct Shop {
    loadgen: String,
    tracing: TestTracing,
    _dir: tempfile::TempDir,
}

async fn start() -> Shop {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let dir = tempfile::tempdir().expect("temp dir");
    let tracing = TestTracing::new();
    let tracer =
        |scope| -> SharedTracer { Arc::new(BoxedTracer::new(Box::new(tracing.tracer(scope)))) };
    let db = |name: &str| format!("sqlite:{}", dir.path().join(name).display());

    let env = HashMap::from([
        ("DATABASE_URL".to_owned(), db("catalog.sqlite3")),
        ("SHOP_PRODUCTS".to_owned(), "2000".to_owned()),
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
    let catalog_url = format!("http://{}", catalog.local_addr());

    let env = HashMap::from([
        ("DATABASE_URL".to_owned(), db("checkout.sqlite3")),
        ("SHOP_CATALOG_URL".to_owned(), catalog_url.clone()),
    ]);
    let config = shop_checkout::CheckoutConfig::from_env(&env).unwrap();
    let store = shop_checkout::OrderStore::open(&config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let telemetry = shop_checkout::Telemetry {
        tracer: tracer("checkout"),
    };
    let app = Arc::new(shop_checkout::App::new(store, telemetry, &config, port));
    let checkout = spawn_http(
        listener,
        shop_checkout::routes::router(app),
        ServeConfig::default(),
    )
    .unwrap();

    let env = HashMap::from([
        ("SHOP_CATALOG_URL".to_owned(), catalog_url),
        (
            "SHOP_CHECKOUT_URL".to_owned(),
            format!("http://{}", checkout.local_addr()),
        ),
    ]);
    let config = LoadgenConfig::from_env(&env).unwrap();
    let telemetry = shop_loadgen::Telemetry {
        tracer: tracer("load-generator"),
    };
    let app = shop_loadgen::app(config, telemetry).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let loadgen = spawn_http(listener, routes::router(app), ServeConfig::default()).unwrap();
    let url = format!("http://{}", loadgen.local_addr());
    // All three run in their own tasks until the test's runtime ends.
    std::mem::forget((catalog, checkout, loadgen));
    Shop {
        loadgen: url,
        tracing,
        _dir: dir,
    }
}

async fn call(method: reqwest::Method, url: &str, body: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(method, url);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    let response = request.send().await.expect("the load generator answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The spans of one trace.
fn trace_of(tree: &SpanTree, trace_id: &str) -> Vec<opentelemetry_sdk::trace::SpanData> {
    tree.spans()
        .iter()
        .filter(|s| s.span_context.trace_id().to_string() == trace_id)
        .cloned()
        .collect()
}

#[tokio::test]
async fn each_journey_is_one_trace_from_its_root_through_the_services() {
    let shop = start().await;
    for kind in ["browse", "search", "purchase", "abandon"] {
        let (status, outcome) = call(
            reqwest::Method::POST,
            &format!("{}/api/journeys/{kind}", shop.loadgen),
            None,
        )
        .await;
        assert_eq!(status, 200, "{kind}: {outcome}");
        assert_eq!(outcome["journey"], kind);
        let trace_id = outcome["trace_id"].as_str().unwrap();
        let tree = SpanTree::new(trace_of(&shop.tracing.spans(), trace_id));
        let root_name = format!("user_journey.{kind}");
        tree.assert_root(&root_name)
            .assert_attribute(&root_name, "user.journey", kind)
            .assert_attribute(
                &root_name,
                "user.session_id",
                outcome["session_id"].as_str().unwrap().to_owned(),
            );
        // Every catalog SERVER span sits under a load generator (or checkout) CLIENT span.
        let catalog: Vec<_> = tree
            .spans()
            .iter()
            .filter(|s| s.name.starts_with("GET /products"))
            .collect();
        assert!(!catalog.is_empty(), "{kind}: {}", tree.render());
        for server in &catalog {
            let client = tree.parent_of(server).expect("a parent");
            assert_eq!(client.span_kind, SpanKind::Client, "{}", tree.render());
            assert!(
                tree.children_of(server)
                    .iter()
                    .any(|s| s.name == "SELECT products"),
                "{kind}: each catalog call has its database span: {}",
                tree.render()
            );
        }
        let reached_checkout = tree.get("POST /orders/create").is_some();
        assert_eq!(
            reached_checkout,
            kind == "purchase",
            "{kind}: {}",
            tree.render()
        );
        if kind == "purchase" {
            let server = tree.find("POST /orders/create");
            let client = tree.parent_of(server).expect("a parent");
            assert_eq!(client.name, "POST");
            assert_eq!(tree.parent_of(client).unwrap().name, root_name);
            assert!(outcome["order_id"].is_string(), "{outcome}");
            tree.assert_parent("INSERT orders", "POST /orders/create");
        }
    }
    let (status, stats) = call(
        reqwest::Method::GET,
        &format!("{}/api/stats", shop.loadgen),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(stats["journeys"]["purchase"]["requests"], 1, "{stats}");
    assert_eq!(stats["steps"]["create_order"]["requests"], 1, "{stats}");
    assert_eq!(stats["errors"], 0, "{stats}");
    assert_eq!(stats["phase"], "normal");
    // `throughline load` starts the counters afresh before it sends.
    let (status, _) = call(
        reqwest::Method::POST,
        &format!("{}/api/stats", shop.loadgen),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (_, stats) = call(
        reqwest::Method::GET,
        &format!("{}/api/stats", shop.loadgen),
        None,
    )
    .await;
    assert_eq!(stats["requests"], 0, "{stats}");
    assert!(stats["journeys"].as_object().unwrap().is_empty(), "{stats}");
}

#[tokio::test]
async fn the_api_names_the_bad_field_and_runs_the_seed_browse_call() {
    let shop = start().await;
    let post = reqwest::Method::POST;
    let table = [
        ("/api/journeys/shoplift", None, "type"),
        (
            "/api/products/browse",
            Some("{\"category\": 3}"),
            "category",
        ),
        ("/api/products/browse", Some("{oops"), "body"),
        ("/api/traffic", Some("{}"), "rate"),
        ("/api/traffic", Some("{\"rate\": -2}"), "rate"),
        (
            "/api/traffic",
            Some("{\"rate\": 2, \"duration_secs\": \"x\"}"),
            "duration_secs",
        ),
        (
            "/api/traffic",
            Some("{\"rate\": 2, \"mix\": {\"steal\": 1}}"),
            "mix.steal",
        ),
    ];
    for (path, body, field) in table {
        let (status, answer) = call(post.clone(), &format!("{}{path}", shop.loadgen), body).await;
        assert_eq!(status, 400, "{path} {body:?}: {answer}");
        assert_eq!(answer["field"], field, "{path} {body:?}: {answer}");
    }
    let (status, outcome) = call(
        post.clone(),
        &format!("{}/api/products/browse", shop.loadgen),
        Some(&json!({"category": "electronics"}).to_string()),
    )
    .await;
    assert_eq!(status, 200, "{outcome}");
    let tree = SpanTree::new(trace_of(
        &shop.tracing.spans(),
        outcome["trace_id"].as_str().unwrap(),
    ));
    tree.assert_attribute("user_journey.browse", "product.category", "electronics")
        .assert_attribute("GET /products", "product.category", "electronics");

    let (status, started) = call(
        post,
        &format!("{}/api/traffic", shop.loadgen),
        Some(&json!({"rate": 50, "mix": {"browse": 1}}).to_string()),
    )
    .await;
    assert_eq!(status, 202, "{started}");
    let (_, stopped) = call(
        reqwest::Method::DELETE,
        &format!("{}/api/traffic", shop.loadgen),
        None,
    )
    .await;
    assert_eq!(stopped["stopped"], true);
    let (_, again) = call(
        reqwest::Method::DELETE,
        &format!("{}/api/traffic", shop.loadgen),
        None,
    )
    .await;
    assert_eq!(again["stopped"], false);
}
