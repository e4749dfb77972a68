//! PostgreSQL TLS rejects what it should and allows what the README says: `verify-full` against a
//! certificate from another CA, or for a host name the certificate does not name, stops start-up
//! naming `DATABASE_URL`; `verify-ca` checks the CA (and here the name too); `prefer` encrypts
//! when the server offers TLS and still connects when it does not.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use onboarding_api::customers::CustomerStore;
use onboarding_api::{ApiConfig, Telemetry};
use opentelemetry::global::BoxedTracer;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use throughline_testkit::PostgresServer;

fn config(database_url: &str) -> ApiConfig {
    let env = HashMap::from([
        ("DATABASE_URL".to_owned(), database_url.to_owned()),
        ("DATABASE_CONNECT_TIMEOUT_MS".to_owned(), "2000".to_owned()),
    ]);
    ApiConfig::from_env(&env).expect("a valid configuration")
}

/// The API's start-up error for `url`; panics if it starts.
async fn start_up_error(url: &str) -> String {
    let provider = SdkTracerProvider::builder().build();
    let telemetry = Telemetry {
        tracer: BoxedTracer::new(Box::new(provider.tracer("onboarding-api"))),
        meter: opentelemetry::global::meter("test"),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    onboarding_api::serve(config(url), telemetry, listener, std::future::pending())
        .await
        .expect_err("start-up must fail")
        .to_string()
}

/// A CA certificate of a throwaway CA that signed nothing the server has.
fn other_ca(dir: &Path) -> PathBuf {
    let ca = dir.join("other-ca.pem");
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=another test CA", "-keyout"])
        .arg(dir.join("other-ca.key"))
        .arg("-out")
        .arg(&ca)
        .output()
        .expect("run openssl (apt-get install openssl)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ca
}

/// Whether a connection made as the API makes it (`DATABASE_URL` → connect options) is
/// encrypted, as the server sees it.
async fn connection_is_encrypted(url: &str) -> bool {
    let onboarding_db::DatabaseConfig::Postgres(pg) = config(url).database else {
        panic!("{url} is not PostgreSQL");
    };
    let options = pg.connect_options().expect("connect options");
    let mut connection = <sqlx::PgConnection as sqlx::Connection>::connect_with(&options)
        .await
        .unwrap_or_else(|err| panic!("{url}: {err}"));
    let (ssl,): (bool,) =
        sqlx::query_as("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&mut connection)
            .await
            .expect("query pg_stat_ssl");
    ssl
}

#[tokio::test]
async fn verify_full_refuses_a_certificate_from_another_ca() {
    let pg = PostgresServer::start_with_tls();
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        pg.url(),
        other_ca(dir.path()).display()
    );
    let e = start_up_error(&url).await;
    assert!(e.starts_with("DATABASE_URL postgres://postgres@"), "{e}");
}

#[tokio::test]
async fn verify_full_refuses_a_host_name_the_certificate_does_not_name() {
    let pg = PostgresServer::start_with_tls();
    let ca = pg.tls_ca().expect("a TLS server has a CA");
    // The certificate names IP 127.0.0.1 only; `localhost` reaches the same server.
    let url = format!(
        "postgres://postgres@localhost:{}/throughline?sslmode=verify-full&sslrootcert={}",
        pg.port(),
        ca.display()
    );
    let e = start_up_error(&url).await;
    assert!(
        e.starts_with("DATABASE_URL postgres://postgres@localhost"),
        "{e}"
    );
}

/// `verify-ca` checks the CA (and, unlike libpq's, also the host name: sqlx's rustls verifier
/// does, as the README says). It used to panic in rustls (no process-level crypto provider).
#[tokio::test]
async fn verify_ca_checks_the_ca_and_connects() {
    let pg = PostgresServer::start_with_tls();
    let ca = pg.tls_ca().expect("a TLS server has a CA");
    let url = format!(
        "{}?sslmode=verify-ca&sslrootcert={}",
        pg.url(),
        ca.display()
    );
    CustomerStore::open(&config(&url).database)
        .await
        .expect("verify-ca accepts the server's certificate");
    assert!(connection_is_encrypted(&url).await);
    let dir = tempfile::tempdir().expect("temp dir");
    let other = format!(
        "{}?sslmode=verify-ca&sslrootcert={}",
        pg.url(),
        other_ca(dir.path()).display()
    );
    let e = start_up_error(&other).await;
    assert!(e.starts_with("DATABASE_URL"), "{e}");
    let other_name = format!(
        "postgres://postgres@localhost:{}/throughline?sslmode=verify-ca&sslrootcert={}",
        pg.port(),
        ca.display()
    );
    let e = start_up_error(&other_name).await;
    assert!(e.starts_with("DATABASE_URL"), "{e}");
}

#[tokio::test]
async fn prefer_encrypts_when_offered_and_connects_when_not() {
    let tls = PostgresServer::start_with_tls();
    assert!(connection_is_encrypted(&format!("{}?sslmode=prefer", tls.url())).await);
    let plain = PostgresServer::start();
    assert!(!connection_is_encrypted(&format!("{}?sslmode=prefer", plain.url())).await);
}
