//! The HTTP client helper against a server traced by the layer, over a real socket: the
//! client's CLIENT span is the parent of the server's SERVER span, the `traceresponse` names the
//! server span, a 5xx is an error on both sides, and an excluded path is not traced; without an
//! SDK the handler still runs inside the caller's trace and nothing else is added.

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

/// What the handler saw as its trace, and the response's `traceresponse`.
async fn through_untraced_layer(traceparent: Option<&str>) -> (String, Option<String>) {
    use opentelemetry::trace::TraceContextExt as _;
    use tower::ServiceExt as _;
    let router = Router::new()
        .route(
            "/items/{id}",
            get(|| async {
                let cx = opentelemetry::Context::current();
                cx.span().span_context().trace_id().to_string()
            }),
        )
        .layer(HttpServerLayer::new(
            opentelemetry::trace::noop::NoopTracer::new(),
        ));
    let mut request = http::Request::get("/items/7");
    if let Some(traceparent) = traceparent {
        request = request.header("traceparent", traceparent);
    }
    let response = router
        .oneshot(request.body(axum::body::Body::empty()).unwrap())
        .await
        .unwrap();
    let traceresponse = response
        .headers()
        .get("traceresponse")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .unwrap();
    (String::from_utf8(body.to_vec()).unwrap(), traceresponse)
}

#[tokio::test]
async fn without_an_sdk_the_handler_still_runs_in_the_callers_trace() {
    opentelemetry::global::set_text_map_propagator(
        throughline_propagation::TraceContextPropagator::new(),
    );
    let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let (seen, traceresponse) = through_untraced_layer(Some(caller)).await;
    assert_eq!(seen, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(traceresponse.as_deref(), Some(caller));

    let (seen, traceresponse) = through_untraced_layer(None).await;
    assert_eq!(seen, "00000000000000000000000000000000");
    assert_eq!(traceresponse, None);
}
