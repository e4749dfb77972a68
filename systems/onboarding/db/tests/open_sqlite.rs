//! `open_sqlite` on a real file: directory created, WAL, busy timeout, `synchronous = NORMAL`,
//! the schema run (and run again harmlessly by a second opener, as the two services do).

use onboarding_db::schema::CUSTOMERS_SQLITE;
use onboarding_db::{SqliteOpenError, open_sqlite};

#[test]
fn opens_with_the_shared_settings_and_creates_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/deeper/onboarding.sqlite3");
    let conn = open_sqlite(&path, CUSTOMERS_SQLITE).unwrap();
    assert!(path.exists());
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let busy_ms: i64 = conn
        .pragma_query_value(None, "busy_timeout", |r| r.get(0))
        .unwrap();
    assert_eq!(busy_ms, 5000);
    let synchronous: i64 = conn
        .pragma_query_value(None, "synchronous", |r| r.get(0))
        .unwrap();
    assert_eq!(synchronous, 1, "NORMAL");
    let columns: i64 = conn
        .query_row(
            "SELECT count(*) FROM pragma_table_info('customers')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(columns, 13);
    // The other service opens the same file while this connection is open.
    let second = open_sqlite(&path, CUSTOMERS_SQLITE).unwrap();
    second
        .execute(
            "INSERT INTO customers (customer_id, email, name, customer_type, status, request_id,
                                    trace_id, created_at, updated_at)
             VALUES ('c1', 'a@b.c', 'A', 'individual', 'received', 'r', 't', 'now', 'now')",
            [],
        )
        .unwrap();
    let status: String = conn
        .query_row("SELECT status FROM customers", [], |r| r.get(0))
        .unwrap();
    assert_eq!(status, "received");
}

#[test]
fn names_the_directory_or_the_file_that_failed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let e = open_sqlite(&file.join("db.sqlite3"), CUSTOMERS_SQLITE).unwrap_err();
    assert!(
        matches!(&e, SqliteOpenError::Directory { path, .. } if path == &file),
        "{e:?}"
    );
    assert!(
        e.to_string().starts_with("cannot create the directory "),
        "{e}"
    );

    let e = open_sqlite(&dir.path().join("db.sqlite3"), "CREATE TABLE (").unwrap_err();
    assert!(matches!(e, SqliteOpenError::Database { .. }), "{e:?}");
    assert!(e.to_string().starts_with("database "), "{e}");
}
