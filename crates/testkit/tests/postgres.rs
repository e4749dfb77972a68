//! The throwaway PostgreSQL server: it starts, answers on its URL, and is gone after drop.

use std::net::TcpStream;
use std::process::Command;

use throughline_testkit::{POSTGRES_DATABASE, PostgresServer};

#[test]
fn starts_answers_and_stops_on_drop() {
    let pg = PostgresServer::start();
    assert!(
        pg.url()
            .ends_with(&format!(":{}/{POSTGRES_DATABASE}", pg.port()))
    );
    let psql = std::fs::read_dir("/usr/lib/postgresql")
        .unwrap()
        .flatten()
        .map(|e| e.path().join("bin/psql"))
        .find(|p| p.is_file())
        .expect("psql next to the server binaries");
    let out = Command::new(psql)
        .args(["-At", "-d", &pg.url_with_password("s3cret"), "-c"])
        .arg("SELECT current_database() || ' ' || current_setting('fsync')")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("{POSTGRES_DATABASE} off")
    );
    let (port, dir) = (pg.port(), pg.dir().to_owned());
    drop(pg);
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    assert!(!dir.exists());
}
