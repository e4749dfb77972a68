//! The whole onboarding system under `throughline up --database-url postgres://…`: the API and
//! the worker share one real PostgreSQL database, every customer reaches `completed`, the traces
//! say `postgresql`, and the URL's password is in no log line.

mod onboarding_common;

use std::time::{Duration, Instant};

use onboarding_common::{System, customer_status, onboard, spans, trace};
use serde_json::{Value, json};
use throughline_testkit::PostgresServer;

const CUSTOMERS: usize = 12;
const PASSWORD: &str = "e2e-secret-4410";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_and_worker_share_one_postgres_database() {
    let pg = PostgresServer::start();
    let url = pg.url_with_password(PASSWORD);
    let mut system = System::up(&["--database-url", &url], &[]);
    let client = reqwest::Client::new();

    let mut accepted = Vec::new();
    for n in 0..CUSTOMERS {
        let tier = ["standard", "premium", "enterprise"][n % 3];
        let body = json!({"customer_id": format!("PG-{n}"), "email": format!("pg{n}@example.com"),
                          "company_name": "Postgres Co", "type": tier});
        let (status, answer) = onboard(&client, system.api, &body).await;
        assert_eq!(status, 200, "{answer}; logs:\n{}", system.logs());
        accepted.push(answer["trace_id"].as_str().unwrap_or("").to_owned());
    }
    let (status, answer) = onboard(
        &client,
        system.api,
        &json!({"customer_id": "PG-0", "email": "again@example.com", "name": "Again"}),
    )
    .await;
    assert_eq!(status, 409, "{answer}");

    // The worker moves every row of the shared table to `completed`.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let completed = pg.psql("SELECT count(*) FROM customers WHERE status = 'completed'");
        if completed == CUSTOMERS.to_string() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{completed} of {CUSTOMERS} completed within 60 s; logs:\n{}",
            system.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        customer_status(&client, system.api, "PG-5")
            .await
            .as_deref(),
        Some("completed")
    );
    assert_eq!(
        pg.psql("SELECT count(DISTINCT customer_id) FROM audit_trail"),
        CUSTOMERS.to_string()
    );
    assert!(
        !system
            .dir
            .path()
            .join("onboarding/onboarding.sqlite3")
            .exists(),
        "no SQLite file when DATABASE_URL names PostgreSQL"
    );

    // Both services' database spans say PostgreSQL.
    let deadline = Instant::now() + Duration::from_secs(30);
    let wanted = ["INSERT customers", "UPDATE customers"];
    let db_spans = loop {
        let found: Vec<_> = match trace(&client, system.query, &accepted[1]).await {
            Some(t) => spans(&t)
                .into_iter()
                .filter(|s| wanted.contains(&s.name.as_str()))
                .collect(),
            None => Vec::new(),
        };
        if found.len() == wanted.len() || Instant::now() > deadline {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(db_spans.len(), 2, "{db_spans:?}");
    for s in &db_spans {
        let tag = |k: &str| s.tags.iter().find(|(key, _)| key == k).map(|(_, v)| v);
        assert_eq!(tag("db.system.name"), Some(&json!("postgresql")), "{s:?}");
        assert_eq!(tag("db.namespace"), Some(&json!("throughline")), "{s:?}");
        assert_eq!(
            tag("server.port").and_then(Value::as_i64),
            Some(i64::from(pg.port())),
            "{s:?}"
        );
    }

    assert!(system.stop(), "throughline up did not stop cleanly");
    let logs = system.logs();
    assert!(
        !logs.contains(PASSWORD),
        "a log holds the password:\n{logs}"
    );
    assert!(
        logs.contains("postgres://postgres:***@127.0.0.1:"),
        "{logs}"
    );
}
