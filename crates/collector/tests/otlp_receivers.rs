//! The OTLP receivers on loopback: every transport and encoding lands spans that the query API
//! returns whole, and each kind of bad request gets the answer the OTLP specification gives it.

mod common;

use std::io::Write;

use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use throughline_collector::IngestLimits;
use throughline_store::ExportTraceServiceRequest;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("gzip into memory");
    encoder.finish().expect("gzip into memory")
}

async fn post(url: &str, content_type: &str, gzipped: bool, body: Vec<u8>) -> reqwest::Response {
    let mut request = reqwest::Client::new().post(url).header("content-type", content_type);
    if gzipped {
        request = request.header("content-encoding", "gzip");
    }
    request.body(body).send().await.expect("receiver answers")
}

/// Fetches a trace through the Jaeger API and checks it is the fixture, whole.
async fn assert_fixture_trace(c: &TestCollector, trace_byte: u8) {
    let id = format!("{trace_byte:02x}").repeat(16);
    let (status, body) = get_json(&c.query_url(&format!("/api/traces/{id}"))).await;
    assert_eq!(status, 200, "{body}");
    let trace = &body["data"][0];
    let spans = trace["spans"].as_array().expect("spans");
    assert_eq!(spans.len(), 4, "{body}");
    let consumer = spans.iter().find(|s| s["operationName"] == "orders process").expect("consumer span");
    let refs = consumer["references"].as_array().expect("references");
    assert_eq!(refs[0]["refType"], "CHILD_OF");
    assert_eq!(refs[0]["spanID"], "0000000000000002");
    assert_eq!(refs[1]["refType"], "FOLLOWS_FROM");
    let services: Vec<&str> = trace["processes"]
        .as_object()
        .expect("processes")
        .values()
        .map(|p| p["serviceName"].as_str().expect("name"))
        .collect();
    assert!(services.contains(&"shop-api") && services.contains(&"shop-worker"), "{services:?}");
}

#[tokio::test]
async fn grpc_export_is_queryable() {
    let c = start().await;
    let mut client = TraceServiceClient::connect(c.grpc_url()).await.expect("grpc connects");
    let response = client.export(two_service_trace(1, now_nanos())).await.expect("export succeeds");
    assert_eq!(response.into_inner().partial_success, None);
    assert_fixture_trace(&c, 1).await;
}

#[tokio::test]
async fn http_protobuf_plain_and_gzip_are_queryable() {
    let c = start().await;
    let body = two_service_trace(2, now_nanos()).encode_to_vec();
    let response = post(&c.http_url("/v1/traces"), "application/x-protobuf", false, body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-protobuf");
    let decoded = ExportTraceServiceResponse::decode(response.bytes().await.expect("body")).expect("protobuf answer");
    assert_eq!(decoded.partial_success, None);
    assert_fixture_trace(&c, 2).await;

    let body = gzip(&two_service_trace(3, now_nanos()).encode_to_vec());
    let response = post(&c.http_url("/v1/traces"), "application/x-protobuf", true, body).await;
    assert_eq!(response.status(), 200);
    assert_fixture_trace(&c, 3).await;
}

#[tokio::test]
async fn otlp_json_uses_hex_ids_and_integer_enums() {
    let c = start().await;
    let now = now_nanos();
    // Written by hand as the OTLP/JSON spec shows it: hex ids, int enums, u64 times as strings.
    let json = serde_json::json!({
        "resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-svc"}}]},
            "scopeSpans": [{
                "scope": {"name": "manual"},
                "spans": [{
                    "traceId": "5b8efff798038103d269b633813fc60c",
                    "spanId": "eee19b7ec3c1b174",
                    "name": "GET /json",
                    "kind": 2,
                    "startTimeUnixNano": now.to_string(),
                    "endTimeUnixNano": (now + 1_000_000).to_string(),
                    "attributes": [{"key": "http.request.method", "value": {"stringValue": "GET"}}],
                    "status": {"code": 1}
                }]
            }]
        }]
    });
    let response = post(&c.http_url("/v1/traces"), "application/json", false, json.to_string().into_bytes()).await;
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    let (status, body) = get_json(&c.query_url("/api/traces/5b8efff798038103d269b633813fc60c")).await;
    assert_eq!(status, 200, "{body}");
    let span = &body["data"][0]["spans"][0];
    assert_eq!(span["spanID"], "eee19b7ec3c1b174");
    assert_eq!(span["duration"], 1000);
    let tags = span["tags"].as_array().expect("tags");
    assert!(tags.iter().any(|t| t["key"] == "span.kind" && t["value"] == "server"), "{tags:?}");
    assert!(tags.iter().any(|t| t["key"] == "otel.status_code" && t["value"] == "OK"), "{tags:?}");
}

#[tokio::test]
async fn partial_success_reports_rejected_spans() {
    let c = start().await;
    let mut request = two_service_trace(4, now_nanos());
    request.resource_spans[0].scope_spans[0].spans[1].span_id = vec![1, 2, 3]; // not 8 bytes
    let response = post(&c.http_url("/v1/traces"), "application/x-protobuf", false, request.encode_to_vec()).await;
    assert_eq!(response.status(), 200);
    let decoded = ExportTraceServiceResponse::decode(response.bytes().await.expect("body")).expect("protobuf answer");
    let partial = decoded.partial_success.expect("partial success");
    assert_eq!(partial.rejected_spans, 1);
    assert!(!partial.error_message.is_empty());
}

#[tokio::test]
async fn malformed_http_requests_get_their_documented_answers() {
    let c = start_with(IngestLimits { max_body_bytes: 64 * 1024, ..IngestLimits::default() }).await;
    let url = c.http_url("/v1/traces");
    let bomb = gzip(&vec![0u8; 1024 * 1024]);
    let cases: Vec<(&str, &str, bool, Vec<u8>, u16, &str)> = vec![
        ("bad protobuf", "application/x-protobuf", false, vec![0xff, 0xff, 0xff], 400, "not valid OTLP protobuf"),
        ("bad json", "application/json", false, b"{\"resourceSpans\": 7}".to_vec(), 400, "not valid OTLP/JSON"),
        ("bad hex id", "application/json", false,
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}"#.to_vec(), 400, "not valid OTLP/JSON"),
        ("bad gzip", "application/x-protobuf", true, b"not gzip".to_vec(), 400, "not valid gzip"),
        ("wrong content type", "text/plain", false, b"hello".to_vec(), 415, "text/plain"),
        ("too large", "application/x-protobuf", false, vec![0u8; 65 * 1024], 413, "over the limit"),
        ("gzip bomb", "application/x-protobuf", true, bomb, 413, "after decompression"),
    ];
    for (name, content_type, gzipped, body, want_status, want_message) in cases {
        let response = post(&url, content_type, gzipped, body).await;
        assert_eq!(response.status().as_u16(), want_status, "{name}");
        assert!(response.headers().get("retry-after").is_none(), "{name}: not retryable");
        let bytes = response.bytes().await.expect("body");
        let message = if content_type == "application/x-protobuf" {
            tonic_types::Status::decode(bytes).expect("a google.rpc.Status").message
        } else {
            let v: serde_json::Value = serde_json::from_slice(&bytes).expect("a JSON status");
            v["message"].as_str().expect("message").to_owned()
        };
        assert!(message.contains(want_message), "{name}: {message}");
    }
    let (_, metrics) = (200, reqwest::get(c.query_url("/metrics")).await.expect("metrics").text().await.expect("text"));
    for line in [
        r#"throughline_collector_refused_requests_total{signal="traces",reason="malformed"} 4"#,
        r#"throughline_collector_refused_requests_total{signal="traces",reason="unsupported_media_type"} 1"#,
        r#"throughline_collector_refused_requests_total{signal="traces",reason="too_large"} 2"#,
    ] {
        assert!(metrics.contains(line), "missing {line}");
    }
}

/// A message whose field 1 holds bytes that are not a `ResourceSpans`.
#[derive(Clone, PartialEq, prost::Message)]
struct Garbage {
    #[prost(bytes = "vec", tag = "1")]
    field: Vec<u8>,
}

#[tokio::test]
async fn malformed_and_oversized_grpc_requests_get_their_codes() {
    let c = start_with(IngestLimits { max_body_bytes: 64 * 1024, ..IngestLimits::default() }).await;
    // Field 1 of ExportTraceServiceRequest is a ResourceSpans message; garbage bytes there
    // make a payload that does not decode.
    let channel = tonic::transport::Endpoint::from_shared(c.grpc_url()).expect("url").connect().await.expect("connects");
    let mut raw = tonic::client::Grpc::new(channel);
    raw.ready().await.expect("ready");
    let path = http::uri::PathAndQuery::from_static("/opentelemetry.proto.collector.trace.v1.TraceService/Export");
    let status = raw
        .unary::<_, ExportTraceServiceResponse, _>(
            tonic::Request::new(Garbage { field: vec![0xff; 8] }),
            path,
            tonic_prost::ProstCodec::default(),
        )
        .await
        .expect_err("malformed");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");

    let mut big = ExportTraceServiceRequest::default();
    big.resource_spans.push(two_service_trace(5, now_nanos()).resource_spans.remove(0));
    big.resource_spans[0].scope_spans[0].spans[0].name = "x".repeat(70 * 1024);
    let mut grpc = TraceServiceClient::connect(c.grpc_url()).await.expect("grpc connects");
    let status = grpc.export(big).await.expect_err("over the limit");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert!(status.details().is_empty(), "no retry info: the refusal is final");
}

#[tokio::test]
async fn exports_are_refused_with_503_while_shutting_down() {
    let c = start().await;
    c.running.refuse_exports();
    let body = two_service_trace(6, now_nanos()).encode_to_vec();
    let response = post(&c.http_url("/v1/traces"), "application/x-protobuf", false, body).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().get("retry-after").is_some());
    let mut client = TraceServiceClient::connect(c.grpc_url()).await.expect("grpc connects");
    let status = client.export(two_service_trace(6, now_nanos())).await.expect_err("refused");
    assert_eq!(status.code(), tonic::Code::Unavailable);
}

#[tokio::test]
async fn logs_and_metrics_are_accepted() {
    let c = start().await;
    for path in ["/v1/logs", "/v1/metrics"] {
        let response = post(&c.http_url(path), "application/json", false, b"{}".to_vec()).await;
        assert_eq!(response.status(), 200, "{path}");
    }
}
