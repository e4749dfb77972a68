//! The HTTP client helper against a server traced by the layer, over a real socket: the
//! client's CLIENT span is the parent of the server's SERVER span, the `traceresponse` names the
//! server span, a 5xx is an error on both sides, and an excluded path is not traced.

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use opentelemetry::trace::{SpanKind, Status};
use throughline_instrument::{HttpClient, HttpServerLayer, Spans};
use throughline_telemetry::testing::TestTracing;

async fn serve(tracing: &TestTracing) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("an address").port();
    let router = Router::new()
        .route("/items/{id}", get(|| async { "an item" }))
        .route("/broken", get(|| async { StatusCode::BAD_GATEWAY }))
        .route("/health", get(|| async { "ok" }))
        .layer(
            HttpServerLayer::new(tracing.tracer("server"))
                .server_port(port)
                .exclude_paths("health, /ready"),
        );
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .await
            .expect("the server runs");
    });
    (format!("http://127.0.0.1:{port}"), server)
}

#[tokio::test]
async fn a_client_span_is_the_parent_of_the_server_span_across_a_socket() {
    opentelemetry::global::set_text_map_propagator(
        throughline_propagation::TraceContextPropagator::new(),
    );
    let tracing = TestTracing::new();
    let (base, server) = serve(&tracing).await;
    let client = HttpClient::new(reqwest::Client::new(), tracing.tracer("client"));
    let spans = Spans::new(tracing.tracer("client"));

    let outer = spans.start("checkout", []);
    let (ok, broken, health) = outer
        .run(async {
            let get = |path: &str| client.inner().get(format!("{base}{path}")).build().unwrap();
            (
                client.execute(get("/items/7")).await.expect("an answer"),
                client.execute(get("/broken")).await.expect("an answer"),
                client.execute(get("/health")).await.expect("an answer"),
            )
        })
        .await;
    outer.end();
    server.abort();

    let tree = tracing.spans();
    let server_span = tree.find("GET /items/{id}");
    let traceresponse = ok.headers()["traceresponse"].to_str().unwrap();
    assert_eq!(
        traceresponse,
        format!(
            "00-{}-{}-01",
            server_span.span_context.trace_id(),
            server_span.span_context.span_id()
        )
    );
    assert!(!health.headers().contains_key("traceresponse"));
    assert_eq!(broken.status(), 502);
    let clients = tree.find_all("GET");
    assert_eq!(clients.len(), 3, "{}", tree.render());
    for c in &clients {
        assert_eq!(c.span_kind, SpanKind::Client);
        assert_eq!(tree.parent_of(c).map(|p| p.name.as_ref()), Some("checkout"));
    }
    let items_client = tree
        .parent_of(server_span)
        .expect("the server span has a parent");
    assert_eq!(items_client.span_kind, SpanKind::Client);
    tree.assert_attribute("GET /items/{id}", "url.path", "/items/7")
        .assert_attribute("GET /items/{id}", "http.response.status_code", 200_i64)
        .assert_attribute("GET /broken", "error.type", "502")
        .assert_same_trace(&["checkout", "GET /items/{id}", "GET /broken"]);
    assert!(matches!(
        tree.find("GET /broken").status,
        Status::Error { .. }
    ));
    assert!(tree.find_all("GET /health").is_empty(), "{}", tree.render());
}
