//! The S3 document store against a real S3-protocol server (moto's standalone server, from the
//! interop venv): the worker is configured from its environment map only, stores one profile per
//! customer under the URL's prefix, and an unreachable endpoint fails the record, not the batch.

mod common;

use common::{attr, event, record, setup};
use onboarding_lambda::{Invocation, names};
use opentelemetry::trace::Status;
use opentelemetry_sdk::trace::SpanData;
use throughline_testkit::{MOTO_CREDENTIALS, MotoS3, free_loopback_addr};

fn status_text(s: &SpanData) -> String {
    match &s.status {
        Status::Error { description } => description.to_string(),
        _ => String::new(),
    }
}

#[tokio::test]
async fn profiles_are_stored_in_s3_configured_from_the_environment_map() {
    let moto = tokio::task::spawn_blocking(|| MotoS3::start("docs"))
        .await
        .unwrap();
    let endpoint = moto.endpoint();
    let mut env = vec![
        ("ONBOARDING_DOCUMENTS_URL", "s3://docs/onboarding"),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_REGION", "us-east-1"),
    ];
    env.extend(MOTO_CREDENTIALS);
    let (_dir, worker, exporter, _provider) = setup(&env);

    let out = worker
        .handle(
            event(vec![
                record(0, "00f067aa0ba902b0"),
                record(1, "00f067aa0ba902b1"),
            ]),
            Invocation::default(),
        )
        .await;
    assert!(
        out.batch_item_failures.is_empty(),
        "{:?}",
        out.batch_item_failures
    );

    let documents = tokio::task::spawn_blocking(move || moto.json_objects("docs", "onboarding/"))
        .await
        .unwrap();
    let mut keys: Vec<_> = documents.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "onboarding/profiles/C-0.json",
            "onboarding/profiles/C-1.json"
        ]
    );
    for n in 0..2 {
        let profile = &documents[&format!("onboarding/profiles/C-{n}.json")];
        assert_eq!(profile["customer_id"], format!("C-{n}"));
        assert_eq!(profile["request_id"], format!("r{n}"));
        assert!(
            !profile.to_string().contains("secret.example"),
            "an email in the stored profile: {profile}"
        );
    }

    let spans = exporter.get_finished_spans().unwrap();
    let stored: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "store customer documents")
        .collect();
    assert_eq!(stored.len(), 2);
    for span in stored {
        assert_eq!(
            attr(span, names::DOCUMENT_COUNT),
            Some(&opentelemetry::Value::I64(1))
        );
        assert!(
            matches!(attr(span, names::DOCUMENT_BYTES), Some(opentelemetry::Value::I64(n)) if *n > 0),
            "{:?}",
            span.attributes
        );
        assert_eq!(span.status, Status::Unset);
    }
}

#[tokio::test]
async fn an_unreachable_endpoint_fails_the_record_at_the_documents_step() {
    const SECRET: &str = "s3cr3t-never-shown";
    // Nothing listens here: the port was free a moment ago and nobody binds it.
    let endpoint = format!("http://{}", free_loopback_addr());
    let (dir, worker, exporter, _provider) = setup(&[
        ("ONBOARDING_DOCUMENTS_URL", "s3://docs/onboarding"),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "AKIDNEVERSHOWN"),
        ("AWS_SECRET_ACCESS_KEY", SECRET),
        // One attempt: object_store would otherwise back off and retry a refused connection.
        ("AWS_MAX_ATTEMPTS", "1"),
    ]);

    let out = worker
        .handle(
            event(vec![record(0, "00f067aa0ba902b0")]),
            Invocation::default(),
        )
        .await;
    let ids: Vec<_> = out
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(ids, ["msg-0"]);

    let spans = exporter.get_finished_spans().unwrap();
    let consumer = spans
        .iter()
        .find(|s| s.name == "process onboarding-queue")
        .unwrap();
    assert_eq!(
        attr(consumer, names::FAILED_STEP)
            .map(|v| v.to_string())
            .as_deref(),
        Some("documents")
    );
    let documents = spans
        .iter()
        .find(|s| s.name == "store customer documents")
        .unwrap();
    let message = status_text(documents);
    assert!(message.starts_with("documents: "), "{message}");
    assert!(
        spans.iter().all(|s| s.name != "UPDATE customers"),
        "the steps after documents ran"
    );

    let detail: String = rusqlite::Connection::open(dir.path().join("db.sqlite3"))
        .unwrap()
        .query_row(
            "SELECT status || ': ' || status_detail FROM customers WHERE customer_id = 'C-0'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert!(detail.starts_with("failed: documents: "), "{detail}");
    for text in [message, status_text(consumer), detail] {
        assert!(
            !text.contains(SECRET) && !text.contains("AKIDNEVERSHOWN"),
            "{text}"
        );
    }
}
