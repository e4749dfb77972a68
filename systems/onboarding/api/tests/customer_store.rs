//! One contract for every customer store backend, run against an SQLite file and a real
//! PostgreSQL server: insert, duplicate, get, delete, ping, and concurrent inserts.

use std::collections::HashMap;

use onboarding_api::ApiConfig;
use onboarding_api::customers::{CustomerStore, CustomerStoreError, NewCustomer};
use throughline_testkit::PostgresServer;

fn customer(id: &str) -> NewCustomer {
    NewCustomer {
        customer_id: id.to_owned(),
        email: format!("{id}@example.com"),
        name: "Acme".to_owned(),
        customer_type: "premium".to_owned(),
        company_size: Some("medium".to_owned()),
        request_id: format!("req-{id}"),
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".to_owned(),
        created_at: "2026-01-02T03:04:05Z".to_owned(),
    }
}

async fn open(database_url: &str) -> CustomerStore {
    let env = HashMap::from([("DATABASE_URL".to_owned(), database_url.to_owned())]);
    let config = ApiConfig::from_env(&env).expect("a valid DATABASE_URL");
    CustomerStore::open(&config.database)
        .await
        .expect("the store opens")
}

async fn contract(store: CustomerStore) {
    store.ping().await.expect("ping");
    assert_eq!(store.get("C-1".into()).await.expect("get"), None);

    store.insert(customer("C-1")).await.expect("first insert");
    let got = store
        .get("C-1".into())
        .await
        .expect("get")
        .expect("C-1 is there");
    assert_eq!(got.email, "C-1@example.com");
    assert_eq!(got.customer_type, "premium");
    assert_eq!(got.company_size.as_deref(), Some("medium"));
    assert_eq!(got.status, "received");
    assert_eq!(got.status_detail, None);
    assert_eq!(got.risk_score, None);
    assert_eq!(got.attempts, 0);
    assert_eq!(got.request_id, "req-C-1");
    assert_eq!(got.created_at, got.updated_at);

    let mut again = customer("C-1");
    again.email = "someone-else@example.com".into();
    match store.insert(again).await {
        Err(CustomerStoreError::Duplicate(id)) => assert_eq!(id, "C-1"),
        other => panic!("a second C-1 must be a duplicate, got {other:?}"),
    }
    // The first row is untouched.
    let got = store.get("C-1".into()).await.expect("get").expect("C-1");
    assert_eq!(got.email, "C-1@example.com");

    // Concurrent inserts: each id once, duplicates among them refused.
    let mut tasks = Vec::new();
    for n in 0..40 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.insert(customer(&format!("P-{}", n % 20))).await
        }));
    }
    let (mut ok, mut duplicate) = (0, 0);
    for t in tasks {
        match t.await.expect("task") {
            Ok(()) => ok += 1,
            Err(CustomerStoreError::Duplicate(_)) => duplicate += 1,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!((ok, duplicate), (20, 20));

    store.delete("C-1".into()).await.expect("delete");
    // SQLite deletes through its writer thread: a read after the next write sees it.
    store
        .insert(customer("C-2"))
        .await
        .expect("insert after delete");
    assert_eq!(store.get("C-1".into()).await.expect("get"), None);
    store
        .insert(customer("C-1"))
        .await
        .expect("a deleted id can be used again");
}

#[tokio::test]
async fn sqlite_store_keeps_the_contract() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&format!(
        "sqlite:{}",
        dir.path().join("c.sqlite3").display()
    ))
    .await;
    assert_eq!(store.target().system, "sqlite");
    contract(store).await;
}

#[tokio::test]
async fn postgres_store_keeps_the_contract() {
    let pg = PostgresServer::start();
    let store = open(&pg.url()).await;
    let target = store.target();
    assert_eq!(target.system, "postgresql");
    assert_eq!(target.namespace.as_deref(), Some("throughline"));
    assert_eq!(target.server_address.as_deref(), Some("127.0.0.1"));
    assert_eq!(target.server_port, Some(pg.port()));
    contract(store).await;
    // The table has the PostgreSQL types of the shared schema.
    assert_eq!(
        pg.psql(
            "SELECT column_name || ' ' || data_type FROM information_schema.columns
             WHERE table_name = 'customers' AND column_name IN ('risk_score', 'attempts')
             ORDER BY column_name"
        ),
        "attempts bigint\nrisk_score double precision"
    );
    // A second start finds the table there.
    let again = open(&pg.url()).await;
    assert!(again.get("C-2".into()).await.expect("get").is_some());
}
