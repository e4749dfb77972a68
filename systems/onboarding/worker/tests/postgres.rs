//! The handler on a real PostgreSQL server holding onboarding-api's own `customers` table: the
//! status moves to `completed` (or `failed` with its attempt), the audit trail grows, the database
//! spans name PostgreSQL, one connection serves every invocation, and the URL's password shows
//! nowhere.

use std::collections::HashMap;

mod common;

use aws_lambda_events::event::sqs::{SqsMessage, SqsMessageAttribute};
use common::event;
use onboarding_lambda::Invocation;
use opentelemetry_sdk::trace::SpanData;
use throughline_testkit::PostgresServer;

const PASSWORD: &str = "worker-secret-5519";

fn record(id: &str, attempt: u32) -> SqsMessage {
    let mut attr = SqsMessageAttribute::default();
    attr.string_value = Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned());
    attr.data_type = Some("String".into());
    let mut m = SqsMessage::default();
    m.message_id = Some(format!("msg-{id}"));
    m.body = Some(
        serde_json::json!({"customer_id": id, "email": format!("{id}@secret.example"),
                           "name": "Acme", "type": "premium", "request_id": format!("r-{id}")})
        .to_string(),
    );
    m.message_attributes = HashMap::from([("traceparent".to_owned(), attr)]);
    m.attributes = HashMap::from([("ApproximateReceiveCount".to_owned(), attempt.to_string())]);
    m
}

/// The `customers` table exactly as onboarding-api creates it, with a few customers received.
fn customers_table(pg: &PostgresServer, ids: &[&str]) {
    pg.psql(onboarding_db::schema::CUSTOMERS_POSTGRES);
    for id in ids {
        pg.psql(&format!(
            "INSERT INTO customers (customer_id, email, name, customer_type, status, request_id,
                                    trace_id, created_at, updated_at)
             VALUES ('{id}', '{id}@secret.example', 'Acme', 'premium', 'received', 'r-{id}',
                     '4bf92f3577b34da6a3ce929d0e0e4736', 't0', 't0')"
        ));
    }
}

fn worker(database_url: &str, extra: &[(&str, &str)]) -> common::TestWorker {
    let mut env = vec![("DATABASE_CONNECT_TIMEOUT_MS", "1000")];
    env.extend_from_slice(extra);
    common::worker_on(tempfile::tempdir().expect("temp dir"), database_url, &env)
}

fn attr(span: &SpanData, key: &str) -> Option<opentelemetry::Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.clone())
}

fn assert_no_secrets_on(spans: &[SpanData]) {
    for s in spans {
        let shown = format!("{:?} {:?}", s.attributes, s.status);
        assert!(!shown.contains(PASSWORD), "span {}: {shown}", s.name);
        assert!(
            !shown.contains("secret.example"),
            "span {}: {shown}",
            s.name
        );
    }
}

#[tokio::test]
async fn status_reaches_completed_in_postgres_over_one_connection() {
    let pg = PostgresServer::start();
    customers_table(&pg, &["PG-0", "PG-1", "PG-2"]);
    let (_dir, worker, exporter, _p) = worker(&pg.url_with_password(PASSWORD), &[]);
    worker
        .connect_database()
        .await
        .expect("cold start connects");

    let out = worker
        .handle(
            event(vec![record("PG-0", 1), record("PG-1", 2)]),
            Invocation::default(),
        )
        .await;
    assert!(out.batch_item_failures.is_empty());
    let rows = pg.psql(
        "SELECT customer_id, status, attempts, risk_score IS NOT NULL, status_detail IS NULL
         FROM customers ORDER BY customer_id",
    );
    assert_eq!(
        rows,
        "PG-0|completed|1|t|t\nPG-1|completed|2|t|t\nPG-2|received|0|f|t"
    );
    assert_eq!(
        pg.psql("SELECT customer_id, event, attempt FROM audit_trail ORDER BY customer_id"),
        "PG-0|onboarding_processed|1\nPG-1|onboarding_processed|2"
    );

    // A second invocation of the same environment reuses the connection.
    worker
        .handle(event(vec![record("PG-2", 1)]), Invocation::default())
        .await;
    assert_eq!(
        pg.psql("SELECT status FROM customers WHERE customer_id = 'PG-2'"),
        "completed"
    );
    assert_eq!(
        pg.psql(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'onboarding-lambda'"
        ),
        "1"
    );

    let spans = exporter.get_finished_spans().expect("spans");
    let db_spans: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "UPDATE customers" || s.name == "INSERT audit_trail")
        .collect();
    assert_eq!(db_spans.len(), 6);
    for s in db_spans {
        assert_eq!(
            attr(s, "db.system.name").map(|v| v.to_string()).as_deref(),
            Some("postgresql")
        );
        assert_eq!(
            attr(s, "db.namespace").map(|v| v.to_string()).as_deref(),
            Some("throughline")
        );
        assert_eq!(
            attr(s, "server.address").map(|v| v.to_string()).as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(
            attr(s, "server.port"),
            Some(opentelemetry::Value::I64(i64::from(pg.port())))
        );
    }
    assert_no_secrets_on(&spans);
}

#[tokio::test]
async fn failures_and_unknown_customers_are_recorded_without_the_password() {
    let pg = PostgresServer::start();
    customers_table(&pg, &["F-0"]);
    let url = pg.url_with_password(PASSWORD);
    let (_dir, failing, exporter, _p) = worker(&url, &[("ONBOARDING_FAILURES", "compliance=1")]);
    let out = failing
        .handle(event(vec![record("F-0", 3)]), Invocation::default())
        .await;
    assert_eq!(out.batch_item_failures.len(), 1);
    assert_eq!(
        pg.psql("SELECT status, attempts, status_detail FROM customers"),
        "failed|3|compliance: injected failure"
    );
    assert_no_secrets_on(&exporter.get_finished_spans().expect("spans"));

    // A record for a customer the table does not hold fails its status step, naming the
    // database with the password redacted.
    let (_dir, worker, exporter, _p) = worker(&url, &[]);
    let out = worker
        .handle(event(vec![record("GHOST", 1)]), Invocation::default())
        .await;
    assert_eq!(out.batch_item_failures.len(), 1);
    let spans = exporter.get_finished_spans().expect("spans");
    let status = spans
        .iter()
        .find(|s| s.name == "UPDATE customers")
        .expect("the status step ran")
        .status
        .clone();
    let opentelemetry::trace::Status::Error { description } = status else {
        panic!("the status step must fail, got {status:?}")
    };
    assert!(
        description.contains("no customer GHOST in postgres://postgres:***@127.0.0.1:"),
        "{description}"
    );
    assert_no_secrets_on(&spans);
}

#[tokio::test]
async fn a_bad_database_stops_the_cold_start_naming_database_url() {
    let port = throughline_testkit::free_loopback_addr().port();
    let (_dir, unreachable, _exporter, _p) = worker(
        &format!("postgres://app:{PASSWORD}@127.0.0.1:{port}/shop"),
        &[],
    );
    let shown = format!("{unreachable:?}");
    assert!(!shown.contains(PASSWORD), "{shown}");
    let e = unreachable
        .connect_database()
        .await
        .expect_err("nothing listens there");
    let e = throughline_service_kit::ErrorChain(&e).to_string();
    assert!(
        e.starts_with(&format!(
            "DATABASE_URL postgres://app:***@127.0.0.1:{port}/shop: cannot open the database: \
             no connection within 1000 ms"
        )),
        "{e}"
    );
    assert!(!e.contains(PASSWORD), "{e}");

    // The server is there, the database is not: PostgreSQL's own reason.
    let pg = PostgresServer::start();
    let (_dir2, missing, _exporter2, _p2) = worker(
        &format!(
            "postgresql://postgres:{PASSWORD}@127.0.0.1:{}/nosuchdb",
            pg.port()
        ),
        &[],
    );
    let e = missing
        .connect_database()
        .await
        .expect_err("no such database");
    let e = throughline_service_kit::ErrorChain(&e).to_string();
    assert!(
        e.starts_with("DATABASE_URL postgresql://postgres:***@"),
        "{e}"
    );
    assert!(e.contains("\"nosuchdb\" does not exist"), "{e}");
    assert!(!e.contains(PASSWORD), "{e}");
}

#[tokio::test]
async fn a_worker_alone_creates_the_customers_table_in_postgres() {
    let pg = PostgresServer::start();
    let (_dir, worker, exporter, _p) = worker(&pg.url_with_password(PASSWORD), &[]);
    worker
        .connect_database()
        .await
        .expect("cold start connects and creates the tables");
    assert_eq!(
        pg.psql(
            "SELECT string_agg(table_name, ',' ORDER BY table_name) FROM information_schema.tables
             WHERE table_name IN ('customers', 'audit_trail')"
        ),
        "audit_trail,customers"
    );
    let out = worker
        .handle(event(vec![record("PG-9", 1)]), Invocation::default())
        .await;
    assert_eq!(out.batch_item_failures.len(), 1, "no customer PG-9 yet");
    let spans = exporter.get_finished_spans().expect("spans");
    let shown: Vec<String> = spans.iter().map(|s| format!("{:?}", s.status)).collect();
    assert!(
        shown.iter().any(|s| s.contains("no customer PG-9")),
        "{shown:?}"
    );
    assert!(
        !shown.iter().any(|s| s.contains("does not exist")),
        "{shown:?}"
    );
    // The API's own INSERT fits the table the worker made; the redelivery completes.
    customers_table(&pg, &["PG-9"]);
    let out = worker
        .handle(event(vec![record("PG-9", 2)]), Invocation::default())
        .await;
    assert!(out.batch_item_failures.is_empty());
    assert_eq!(
        pg.psql("SELECT status FROM customers WHERE customer_id = 'PG-9'"),
        "completed"
    );
}
