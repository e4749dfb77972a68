//! Log records in the store on a real directory: each filter of a log search, the trace index
//! after a crash, after sealing and reopening from index files, and retention.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use throughline_store::testdata::{
    kv, log_export, log_record, log_span_id, seeds_like_logs, trace_id,
};
use throughline_store::*;

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "throughline-store-logs-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as u64
}

const MS: u64 = 1_000_000;

fn all(q: LogQuery) -> LogQuery {
    LogQuery {
        start_unix_nanos: 0,
        end_unix_nanos: u64::MAX,
        limit: 1000,
        ..q
    }
}

#[test]
fn each_filter_of_a_log_search_narrows_it() -> anyhow::Result<()> {
    let dir = TempDir::new("filters");
    let store = Store::open(StoreConfig::new(&dir.0))?;
    let base = now() - 60_000 * MS;
    let t1 = trace_id(1);
    let s1 = log_span_id(1, 0);
    store.write_logs(log_export(
        "api",
        vec![
            log_record(
                base,
                Severity::Info,
                "request accepted",
                Some((t1, s1)),
                vec![],
            ),
            log_record(
                base + MS,
                Severity::Error,
                "insert failed",
                Some((t1, log_span_id(1, 1))),
                vec![kv("db.error", "duplicate KEY users_pkey")],
            ),
            log_record(
                base + 2 * MS,
                Severity::Debug,
                "no trace here",
                None,
                vec![],
            ),
        ],
    ))?;
    store.write_logs(log_export(
        "worker",
        vec![log_record(
            base + 3 * MS,
            Severity::Warn,
            "retrying",
            Some((trace_id(2), log_span_id(2, 0))),
            vec![],
        )],
    ))?;

    let bodies = |q: LogQuery| -> anyhow::Result<Vec<String>> {
        Ok(store
            .search_logs(&all(q))?
            .iter()
            .map(StoredLog::body_text)
            .collect())
    };
    assert_eq!(
        bodies(LogQuery::default())?,
        [
            "retrying",
            "no trace here",
            "insert failed",
            "request accepted"
        ],
        "newest first"
    );
    assert_eq!(
        bodies(LogQuery {
            service: Some("worker".into()),
            ..Default::default()
        })?,
        ["retrying"]
    );
    assert!(
        bodies(LogQuery {
            service: Some("nobody".into()),
            ..Default::default()
        })?
        .is_empty()
    );
    assert_eq!(
        bodies(LogQuery {
            min_severity: Some(Severity::Warn),
            ..Default::default()
        })?,
        ["retrying", "insert failed"]
    );
    assert_eq!(
        bodies(LogQuery {
            trace_id: Some(t1),
            ..Default::default()
        })?,
        ["insert failed", "request accepted"]
    );
    assert_eq!(
        bodies(LogQuery {
            trace_id: Some(t1),
            span_id: Some(s1),
            ..Default::default()
        })?,
        ["request accepted"]
    );
    assert_eq!(
        bodies(LogQuery {
            text: Some("users_PKEY".into()),
            ..Default::default()
        })?,
        ["insert failed"],
        "text matches attribute values, in any case"
    );
    assert_eq!(
        bodies(LogQuery {
            text: Some("RETRY".into()),
            ..Default::default()
        })?,
        ["retrying"]
    );
    let window: Vec<String> = store
        .search_logs(&LogQuery {
            start_unix_nanos: base + MS,
            end_unix_nanos: base + 2 * MS,
            limit: 10,
            ..Default::default()
        })?
        .iter()
        .map(StoredLog::body_text)
        .collect();
    assert_eq!(window, ["no trace here", "insert failed"]);
    let newest_two: Vec<String> = store
        .search_logs(&LogQuery {
            limit: 2,
            ..all(LogQuery::default())
        })?
        .iter()
        .map(StoredLog::body_text)
        .collect();
    assert_eq!(newest_two, ["retrying", "no trace here"]);
    let found = store.search_logs(&all(LogQuery {
        trace_id: Some(trace_id(2)),
        ..Default::default()
    }))?;
    assert_eq!(found[0].service_name, "worker");
    assert_eq!(found[0].severity_text(), "WARN");
    assert_eq!(found[0].trace_id(), Some(trace_id(2)));
    Ok(())
}

#[test]
fn logs_survive_a_crash_and_sealed_segments_reopen_with_their_trace_index() -> anyhow::Result<()> {
    let dir = TempDir::new("crash");
    let mut config = StoreConfig::new(&dir.0);
    config.segment_max_bytes = 16 * 1024;
    let base = now() - 600_000 * MS;
    {
        let store = Store::open(config.clone())?;
        for batch in 0..40u64 {
            store.write_logs(seeds_like_logs(
                "api",
                batch * 10,
                10,
                100,
                base + batch * 1000 * MS,
            ))?;
            // Span writes and upkeep seal full segments.
            store.maintain()?;
        }
        assert_eq!(store.log_records(), 4000);
        // A killed process: no close, no checkpoint on drop.
        std::mem::forget(store);
    }
    let segments = std::fs::read_dir(&dir.0)?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".idx"))
        .count();
    assert!(segments >= 2, "several sealed segments, found {segments}");
    for reopen in 0..2 {
        let store = Store::open(config.clone())?;
        assert_eq!(store.log_records(), 4000, "reopen {reopen}");
        for n in [0u64, 155, 399] {
            let found = store.search_logs(&all(LogQuery {
                trace_id: Some(trace_id(n)),
                ..Default::default()
            }))?;
            assert_eq!(found.len(), 10, "trace {n}, reopen {reopen}");
            assert!(found.iter().all(|l| l.trace_id() == Some(trace_id(n))));
        }
        store.close()?;
    }
    Ok(())
}

#[test]
fn retention_deletes_logs_with_their_segment() -> anyhow::Result<()> {
    let dir = TempDir::new("retention");
    let mut config = StoreConfig::new(&dir.0);
    config.retention_secs = 1;
    let store = Store::open(config)?;
    store.write_logs(seeds_like_logs("api", 0, 1, 5, now()))?;
    let q = all(LogQuery {
        trace_id: Some(trace_id(0)),
        ..Default::default()
    });
    assert_eq!(store.search_logs(&q)?.len(), 5);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    store.maintain()?;
    assert!(store.search_logs(&q)?.is_empty());
    assert_eq!(store.log_records(), 0);
    Ok(())
}
