//! `throughline up onboarding --worker-telemetry extension`: the worker's two concurrent
//! environments each run the collector as a Lambda extension on loopback ports of their own; the
//! worker flushes to it, it forwards to `up`'s collector. Every accepted request's trace is whole
//! (API SERVER and PRODUCER, worker CONSUMER) as with the direct path.

mod onboarding_common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use onboarding_common::{System, customer_status, integrity, onboard, spans, trace};
use serde_json::json;

const REQUESTS: usize = 24;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_through_the_worker_extension_are_whole() {
    let system = System::up(
        &[
            "--worker-telemetry",
            "extension",
            "--worker-concurrency",
            "2",
            "--settle-secs",
            "2",
        ],
        &[],
    );
    let client = reqwest::Client::new();
    let mut accepted = HashMap::new(); // trace id -> customer id
    for n in 0..REQUESTS {
        let body = json!({"customer_id": format!("X-{n}"), "email": format!("x{n}@example.com"), "name": "Extension Co", "type": "standard"});
        let (status, answer) = onboard(&client, system.api, &body).await;
        assert_eq!(status, 200, "{answer}");
        accepted.insert(
            answer["trace_id"].as_str().unwrap_or("").to_owned(),
            answer["customer_id"].as_str().unwrap_or("").to_owned(),
        );
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    for customer in accepted.values() {
        while customer_status(&client, system.api, customer)
            .await
            .as_deref()
            != Some("completed")
        {
            assert!(
                Instant::now() < deadline,
                "the worker did not complete {customer}; logs:\n{}",
                system.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Each environment registered its own extension, on loopback ports of its own.
    let logs = system.logs();
    let registered: std::collections::BTreeSet<&str> = logs
        .lines()
        .filter(|l| l.contains("collector (lambda extension throughline-collector-extension"))
        .filter_map(|l| l.split("OTLP/HTTP ").nth(1)?.split_whitespace().next())
        .collect();
    assert!(
        !registered.is_empty(),
        "no extension started; logs:\n{logs}"
    );
    // The functions' OTLP endpoints are their own environment's extension (its gRPC port,
    // beside the HTTP one the log names), never the collector's.
    let functions: Vec<String> = system
        .descendants()
        .into_iter()
        .filter(|(_, cmd)| cmd.ends_with("serve onboarding-lambda") && !cmd.contains("--queue"))
        .filter_map(|(pid, _)| {
            let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
            environ
                .split(|b| *b == 0)
                .filter_map(|kv| std::str::from_utf8(kv).ok())
                .find_map(|kv| kv.strip_prefix("OTEL_EXPORTER_OTLP_ENDPOINT="))
                .map(str::to_owned)
        })
        .collect();
    assert!(!functions.is_empty(), "no worker process found");
    for endpoint in &functions {
        let grpc = endpoint.trim_start_matches("http://");
        assert!(
            logs.lines().any(
                |l| l.contains(&format!("OTLP/gRPC {grpc} ")) && l.contains("lambda extension")
            ),
            "{endpoint} is no extension's; logs:\n{logs}"
        );
    }

    let mut whole = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    for trace_id in accepted.keys() {
        loop {
            let arrived = match trace(&client, system.query, trace_id).await {
                Some(t) => {
                    let s = spans(&t);
                    let has = |service: &str, kind: &str| {
                        s.iter().any(|x| x.service == service && x.kind == kind)
                    };
                    has("onboarding-api", "server")
                        && has("onboarding-api", "producer")
                        && has("onboarding-lambda", "consumer")
                }
                None => false,
            };
            if arrived {
                let report = integrity(&client, system.query, trace_id).await;
                if report.integrity == "whole" {
                    whole += 1;
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "trace {trace_id} is not whole through the extension; logs:\n{}",
                system.logs()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    assert_eq!(whole, REQUESTS);
}
