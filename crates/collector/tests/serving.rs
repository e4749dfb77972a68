//! What the collector's listeners answer before a receiver runs, seen by real clients over the
//! network: a foreign `Host` is refused on loopback (DNS rebinding), an allowed one is served, and
//! an export over the memory bound gets HTTP 429 with `Retry-After` (reqwest) and gRPC
//! `RESOURCE_EXHAUSTED` with `RetryInfo` (a tonic client).

mod common;

use std::time::Duration;

use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use throughline_collector::{CollectorConfig, IngestLimits, Signal, default_serve_config};
use throughline_service_kit::AllowedHosts;
use tonic_types::StatusExt;

async fn with_allowed(names: &[&str]) -> TestCollector {
    let serve = throughline_service_kit::ServeConfig {
        allowed_hosts: AllowedHosts::parse("--allowed-host", names).expect("valid names"),
        ..default_serve_config()
    };
    start_with_config(CollectorConfig {
        serve,
        ..CollectorConfig::default()
    })
    .await
}

async fn export_with_host(url: &str, host: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(url)
        .header("host", host)
        .header("content-type", "application/x-protobuf")
        .body(two_service_trace(3, now_nanos()).encode_to_vec())
        .send()
        .await
        .expect("the collector answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

#[tokio::test]
async fn a_foreign_host_is_refused_on_every_loopback_port() {
    let c = with_allowed(&["collector.test"]).await;
    let urls = [
        format!("http://{}/v1/traces", c.running.http_addr),
        format!("http://{}/v1/traces", c.running.grpc_addr),
    ];
    for url in &urls {
        let (status, body) = export_with_host(url, "evil.example").await;
        assert_eq!(status, 403, "{url}: {body}");
        assert!(
            body.contains("host \"evil.example\" is not allowed"),
            "{body}"
        );
        for host in ["localhost:4318", "127.0.0.1", "collector.test:4318"] {
            let (status, body) = export_with_host(url, host).await;
            assert_eq!(status, 200, "{url} with {host}: {body}");
        }
    }
    let query = reqwest::Client::new()
        .get(format!("http://{}/api/services", c.running.query_addr))
        .header("host", "rebound.example:16686")
        .send()
        .await
        .expect("the query API answers");
    assert_eq!(query.status(), reqwest::StatusCode::FORBIDDEN);
    let (status, _) = get_json(&c.query_url("/api/services")).await;
    assert_eq!(status, reqwest::StatusCode::OK);
}

/// A collector whose memory bound is taken by a held reservation, so the next export is over it.
async fn over_the_bound() -> (TestCollector, throughline_collector::ingest::Reservation) {
    let limits = IngestLimits {
        max_inflight_bytes: 1024,
        retry_after: Duration::from_secs(3),
        ..IngestLimits::default()
    };
    let c = start_with(limits).await;
    let held = c
        .running
        .ingest()
        .reserve(Signal::Traces, 1024)
        .expect("the first reservation is admitted");
    (c, held)
}

#[tokio::test]
async fn over_the_memory_bound_http_gets_429_with_retry_after() {
    let (c, held) = over_the_bound().await;
    let response = reqwest::Client::new()
        .post(c.http_url("/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(two_service_trace(4, now_nanos()).encode_to_vec())
        .send()
        .await
        .expect("the collector answers");
    assert_eq!(response.status(), reqwest::StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "3");
    let status = tonic_types::Status::decode(response.bytes().await.unwrap()).expect("a status");
    assert_eq!(status.code, tonic::Code::ResourceExhausted as i32);
    drop(held);
    let (status, _) = export_with_host(&c.http_url("/v1/traces"), "localhost").await;
    assert_eq!(status, 200, "admitted again once the bound is free");
}

#[tokio::test]
async fn over_the_memory_bound_grpc_gets_resource_exhausted_with_retry_info() {
    let (c, held) = over_the_bound().await;
    let mut client = TraceServiceClient::connect(c.grpc_url())
        .await
        .expect("grpc connects");
    let status = client
        .export(two_service_trace(5, now_nanos()))
        .await
        .expect_err("refused over the bound");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    let retry = status.get_details_retry_info().expect("RetryInfo attached");
    assert_eq!(retry.retry_delay, Some(Duration::from_secs(3)));
    drop(held);
    client
        .export(two_service_trace(5, now_nanos()))
        .await
        .expect("admitted again once the bound is free");
}
