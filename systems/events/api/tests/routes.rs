//! nedlia-api in-process against the real broker: validation (400 naming each field), 404, 409,
//! `placement.created` delivered by a rule with its context in `detail._trace` and the X-Ray
//! `TraceHeader` turned into `AWSTraceHeader`; the N+1 route's one query per video and the eager
//! route's one query; health untraced.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_sqs::types::MessageSystemAttributeName;
use opentelemetry::trace::SpanKind;
use serde_json::{Value, json};
use throughline_broker::{
    Broker, BrokerConfig, BrokerHandle, Declarations, QueueDeclaration, RuleDeclaration,
    TargetDeclaration,
};
use throughline_instrument::SharedTracer;
use throughline_propagation::{PropagatorName, Propagators, XRayPropagator};
use throughline_telemetry::testing::TestTracing;

struct Api {
    url: String,
    tracing: TestTracing,
    broker: BrokerHandle,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Api {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn start(extra_env: &[(&str, &str)]) -> Api {
    opentelemetry::global::set_text_map_propagator(Propagators::from_names(&[
        PropagatorName::TraceContext,
        PropagatorName::XRay,
    ]));
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = BrokerConfig::new(dir.path().join("broker"));
    config.declarations = Declarations {
        queues: vec![QueueDeclaration::named("probe")],
        rules: vec![RuleDeclaration {
            name: "placements".into(),
            event_bus: Some("nedlia-events".into()),
            event_pattern: json!({"source": ["nedlia.api"], "detail-type": ["placement.created"]}),
            targets: vec![TargetDeclaration {
                id: "probe".into(),
                queue: "probe".into(),
            }],
        }],
    };
    let broker = Broker::open(config).await.expect("broker opens");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let broker = broker.serve(listener).expect("broker serves");
    let mut env: HashMap<String, String> = [
        ("NEDLIA_API_ADDR", "127.0.0.1:0".to_owned()),
        (
            "DATABASE_URL",
            dir.path().join("events.sqlite3").display().to_string(),
        ),
        ("AWS_ENDPOINT_URL_EVENTBRIDGE", broker.endpoint_url()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (k, v) in extra_env {
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    let config = events_api::ApiConfig::from_env(&env).expect("config");
    let tracing = TestTracing::new();
    let tracer: SharedTracer = Arc::new(opentelemetry::global::BoxedTracer::new(Box::new(
        tracing.tracer("nedlia-api"),
    )));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        events_api::serve(config, tracer, listener, async {
            let _ = stopped.await;
        })
        .await
        .expect("the API serves");
    });
    Api {
        url,
        tracing,
        broker,
        _dir: dir,
        stop: Some(stop),
    }
}

async fn post(api: &Api, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/placements", api.url))
        .json(&body)
        .send()
        .await
        .expect("the API answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON answer"))
}

async fn get(api: &Api, path: &str) -> (u16, Value, bool) {
    let response = reqwest::get(format!("{}{path}", api.url))
        .await
        .expect("the API answers");
    let status = response.status().as_u16();
    let traced = response.headers().contains_key("traceresponse");
    (
        status,
        response.json().await.expect("a JSON answer"),
        traced,
    )
}

fn fields(body: &Value) -> Vec<&str> {
    body["fields"]
        .as_array()
        .expect("a fields list")
        .iter()
        .map(|f| f["field"].as_str().expect("a field name"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_placement_is_validated_checked_stored_and_published_with_its_trace() {
    let api = start(&[]).await;

    let (status, body) = post(
        &api,
        json!({"video_id": 3, "start_time": -1, "end_time": 5}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(fields(&body), ["video_id", "product_id", "start_time"]);

    let good = |video: &str, product: &str, start: f64| json!({"video_id": video, "product_id": product, "start_time": start, "end_time": start + 5.0});
    let (status, body) = post(&api, good("vid-999", "prod-001", 100.0)).await;
    assert_eq!((status, fields(&body)), (404, vec!["video_id"]), "{body}");
    let (status, body) = post(&api, good("vid-001", "prod-999", 100.0)).await;
    assert_eq!((status, fields(&body)), (404, vec!["product_id"]), "{body}");
    // The house placement covers 0..30 of every video.
    let (status, body) = post(&api, good("vid-001", "prod-002", 10.0)).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["conflicting_placement_id"], "house-vid-001");

    api.tracing.exporter().reset();
    let (status, body) = post(&api, good("vid-002", "prod-003", 100.0)).await;
    assert_eq!(status, 201, "{body}");
    let id = body["placement"]["id"].as_str().expect("an id").to_owned();
    let trace_id = body["trace_id"].as_str().expect("a trace id").to_owned();
    assert_eq!(body["placement"]["status"], "created");

    let spans = api.tracing.spans();
    let server = "POST /v1/placements";
    spans
        .assert_kind(server, SpanKind::Server)
        .assert_kind("send nedlia-events", SpanKind::Producer)
        .assert_parent("send nedlia-events", server)
        // The seed's shape: placement.create with its two checks, then the publish beside it.
        .assert_parent("placement.create", server)
        .assert_parent("placement.validate_video", "placement.create")
        .assert_parent("SELECT videos", "placement.validate_video")
        .assert_parent("SELECT products", "placement.validate_video")
        .assert_parent("placement.check_overlaps", "placement.create")
        .assert_parent("SELECT placements", "placement.check_overlaps")
        .assert_parent("INSERT placements", "placement.create")
        .assert_attribute("placement.create", "placement.id", id.clone())
        .assert_attribute(
            "send nedlia-events",
            "messaging.operation.name",
            "PutEvents",
        )
        .assert_attribute("send nedlia-events", "placement.id", id.clone())
        .assert_attribute("INSERT placements", "db.system.name", "sqlite");
    let producer = spans.find("send nedlia-events").span_context.clone();
    assert_eq!(producer.trace_id().to_string(), trace_id);

    // The rule delivered the envelope: `detail._trace` names the PRODUCER span, and the entry's
    // TraceHeader came through as the record's AWSTraceHeader.
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .endpoint_url(api.broker.endpoint_url())
            .region(aws_sdk_sqs::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "local", "local", None, None, "test",
            ))
            .build(),
    );
    let url = sqs
        .get_queue_url()
        .queue_name("probe")
        .send()
        .await
        .expect("probe queue")
        .queue_url
        .expect("a url");
    let received = sqs
        .receive_message()
        .queue_url(url)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .wait_time_seconds(2)
        .send()
        .await
        .expect("receive");
    let message = &received.messages()[0];
    let envelope: Value = serde_json::from_str(message.body().expect("a body")).unwrap();
    assert_eq!(envelope["source"], "nedlia.api");
    assert_eq!(envelope["detail-type"], "placement.created");
    assert_eq!(envelope["detail"]["placement_id"], id.as_str());
    let traceparent = envelope["detail"]["_trace"]["traceparent"]
        .as_str()
        .expect("detail._trace.traceparent");
    assert_eq!(
        traceparent,
        format!("00-{}-{}-01", producer.trace_id(), producer.span_id())
    );
    let header = message
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::AwsTraceHeader))
        .expect("AWSTraceHeader");
    let xray = XRayPropagator::span_context_from_header(header).expect("an X-Ray header");
    assert_eq!(
        (xray.trace_id(), xray.span_id()),
        (producer.trace_id(), producer.span_id())
    );

    let (status, body, _) = get(&api, &format!("/v1/placements/{id}")).await;
    assert_eq!(
        (status, body["placement"]["video_id"].as_str()),
        (200, Some("vid-002"))
    );
    let (status, body, _) = get(&api, "/v1/placements/nope").await;
    assert_eq!((status, fields(&body)), (404, vec!["id"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_detail_trace_only_the_xray_header_carries_the_context() {
    let api = start(&[("NEDLIA_DETAIL_TRACE", "off")]).await;
    let (status, body) = post(
        &api,
        json!({"video_id": "vid-001", "product_id": "prod-001", "start_time": 50, "end_time": 60}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .endpoint_url(api.broker.endpoint_url())
            .region(aws_sdk_sqs::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "local", "local", None, None, "test",
            ))
            .build(),
    );
    let url = sqs
        .get_queue_url()
        .queue_name("probe")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let received = sqs
        .receive_message()
        .queue_url(url)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .wait_time_seconds(2)
        .send()
        .await
        .unwrap();
    let message = &received.messages()[0];
    let envelope: Value = serde_json::from_str(message.body().unwrap()).unwrap();
    assert!(envelope["detail"].get("_trace").is_none(), "{envelope}");
    assert!(
        message
            .attributes()
            .is_some_and(|a| a.contains_key(&MessageSystemAttributeName::AwsTraceHeader))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_n_plus_one_route_queries_once_per_video_and_the_eager_one_once() {
    let api = start(&[]).await;
    let videos = events_db::SEED_VIDEO_COUNT;

    api.tracing.exporter().reset();
    let (status, body, traced) = get(&api, "/v1/videos?include=placements").await;
    assert_eq!((status, traced), (200, true));
    assert_eq!(body["videos"].as_array().unwrap().len(), videos);
    let first = &body["videos"][0]["placements"];
    assert_eq!(first[0]["id"], "house-vid-001");
    assert_eq!(
        first.as_array().unwrap().len(),
        1 + events_db::CATALOGUE_PLACEMENTS_PER_VIDEO
    );
    assert_eq!(first[0]["product_name"], "Espresso Machine");
    assert!(first[0]["product_reach"].as_i64().unwrap() >= videos as i64);
    let spans = api.tracing.spans();
    assert_eq!(spans.find_all("SELECT placements").len(), videos);
    assert_eq!(spans.find_all("SELECT videos").len(), 1);

    api.tracing.exporter().reset();
    let (status, body, _) = get(&api, "/v1/videos?include=placements&eager=true").await;
    assert_eq!(status, 200);
    assert_eq!(body["videos"][4]["placements"][0]["id"], "house-vid-005");
    let spans = api.tracing.spans();
    assert_eq!(spans.find_all("SELECT placements").len(), 1);
    spans.assert_parent("SELECT placements", "GET /v1/videos");

    api.tracing.exporter().reset();
    let (status, body, _) = get(&api, "/v1/videos").await;
    assert_eq!(status, 200);
    assert!(body["videos"][0].get("placements").is_none());
    assert!(api.tracing.spans().find_all("SELECT placements").is_empty());

    let (status, body, _) = get(&api, "/v1/videos?include=comments").await;
    assert_eq!((status, fields(&body)), (400, vec!["include"]));
    let (status, body, _) = get(&api, "/v1/videos?include=placements&eager=yes").await;
    assert_eq!((status, fields(&body)), (400, vec!["eager"]));
    let (status, body, _) = get(&api, "/v1/products").await;
    assert_eq!(status, 200);
    assert_eq!(
        body["products"].as_array().unwrap().len(),
        events_db::SEED_PRODUCTS.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_routes_are_not_traced() {
    let api = start(&[]).await;
    api.tracing.exporter().reset();
    for path in ["/health", "/health/ready", "/health/live"] {
        let (status, body, traced) = get(&api, path).await;
        assert_eq!((status, traced), (200, false), "{path}");
        assert_eq!(body["status"], "ok");
    }
    assert!(api.tracing.spans().is_empty());
}
