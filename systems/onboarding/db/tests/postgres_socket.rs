//! libpq's unix-socket form of `DATABASE_URL` (`postgres://user@/db?host=/path/to/socket`)
//! reaches a real PostgreSQL server over its socket, with no TCP in the URL.

use std::collections::HashMap;

use onboarding_db::{DatabaseConfig, DatabaseDefaults};
use throughline_testkit::PostgresServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unix_socket_form_connects_over_the_socket() {
    let server = PostgresServer::start();
    let url = format!(
        "postgres://postgres@/throughline?host={}&port={}",
        server.dir().display(),
        server.port()
    );
    let env = HashMap::from([("DATABASE_URL".to_owned(), url.clone())]);
    let defaults = DatabaseDefaults {
        url: "unused.sqlite",
        max_connections: 1,
        connect_timeout: std::time::Duration::from_secs(5),
    };
    let config = DatabaseConfig::from_env(&env, &defaults)
        .unwrap_or_else(|err| panic!("{url} is refused: {err}"));
    let DatabaseConfig::Postgres(pg) = config else {
        panic!("{url} is not read as PostgreSQL");
    };
    let options = pg.connect_options().expect("connect options");
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .unwrap_or_else(|err| panic!("connect over the socket: {err}\n{}", server.log_text()));
    // The server says the connection came over its unix socket (no client address).
    let (address,): (Option<String>,) = sqlx::query_as("select inet_client_addr()::text")
        .fetch_one(&pool)
        .await
        .expect("query");
    assert_eq!(address, None, "the connection used TCP");
    pool.close().await;
}
