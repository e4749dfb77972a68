//! The worker started before onboarding-api, or without it, on a fresh SQLite file: it creates
//! the `customers` table of the shared contract itself, so a record of a customer the API never
//! stored fails naming the customer (not "no such table"), and once the API stores the customer
//! (its own INSERT, every column of the contract) the redelivered record completes.

mod common;

use common::{event, record, worker_on};
use onboarding_lambda::Invocation;

fn failures(spans: &[opentelemetry_sdk::trace::SpanData]) -> String {
    spans
        .iter()
        .filter_map(|s| match &s.status {
            opentelemetry::trace::Status::Error { description } => {
                Some(format!("{}: {description}", s.name))
            }
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn a_worker_alone_creates_the_customers_table_and_names_a_missing_customer() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("data").join("onboarding.sqlite3");
    let (dir, worker, exporter, _p) = worker_on(dir, &format!("sqlite:{}", db.display()), &[]);

    let out = worker
        .handle(
            event(vec![record(0, "00f067aa0ba902b7")]),
            Invocation::default(),
        )
        .await;
    let ids: Vec<_> = out
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(
        ids,
        ["msg-0"],
        "no customer C-0 yet: the record is redelivered"
    );
    let shown = failures(&exporter.get_finished_spans().expect("spans"));
    assert!(shown.contains("no customer C-0"), "{shown}");
    assert!(!shown.contains("no such table"), "{shown}");

    // The API, started now, stores the customer in the table the worker made.
    let conn = rusqlite::Connection::open(&db).expect("the worker made the file");
    conn.execute(
        "INSERT INTO customers (customer_id, email, name, customer_type, status, request_id,
                                trace_id, created_at, updated_at)
         VALUES ('C-0', 'c0@secret.example', 'Acme', 'premium', 'received', 'r0',
                 '4bf92f3577b34da6a3ce929d0e0e4736', 't0', 't0')",
        [],
    )
    .expect("the table has the contract's columns");
    exporter.reset();
    let out = worker
        .handle(
            event(vec![record(0, "00f067aa0ba902b7")]),
            Invocation::default(),
        )
        .await;
    assert!(
        out.batch_item_failures.is_empty(),
        "{}",
        failures(&exporter.get_finished_spans().expect("spans"))
    );
    let status: String = conn
        .query_row(
            "SELECT status FROM customers WHERE customer_id = 'C-0'",
            [],
            |r| r.get(0),
        )
        .expect("the customer");
    assert_eq!(status, "completed");
    drop(dir);
}
