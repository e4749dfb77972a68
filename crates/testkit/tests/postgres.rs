//! The throwaway PostgreSQL server: it starts, answers on its URL over TCP, and is gone, files
//! and all, after drop.

use std::net::TcpStream;

use throughline_testkit::{POSTGRES_DATABASE, PostgresServer};

#[test]
fn starts_answers_and_stops_on_drop() {
    let pg = PostgresServer::start();
    assert_eq!(
        pg.url(),
        format!(
            "postgres://postgres@127.0.0.1:{}/{POSTGRES_DATABASE}",
            pg.port()
        )
    );
    assert_eq!(
        pg.psql("SELECT current_database(), current_setting('fsync'), current_user"),
        format!("{POSTGRES_DATABASE}|off|postgres")
    );
    assert_eq!(pg.psql("SELECT 1 UNION ALL SELECT 2"), "1\n2");
    let (port, dir) = (pg.port(), pg.dir().to_owned());
    assert!(dir.join("data/PG_VERSION").is_file());
    drop(pg);
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    assert!(!dir.exists());
}
