//! Findings through the store: an N+1 trace is found once it settles, a near miss is not, and
//! findings survive a reopen.

use std::time::{SystemTime, UNIX_EPOCH};

use throughline_store::testdata::QueryLoopTrace;
use throughline_store::*;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as u64
}

fn all(kind: Option<FindingKind>) -> FindingQuery {
    FindingQuery {
        kind,
        end_unix_nanos: u64::MAX,
        ..FindingQuery::default()
    }
}

#[test]
fn an_n_plus_one_is_found_when_its_trace_settles_and_kept_across_a_reopen() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut config = StoreConfig::new(dir.path());
    config.settle_secs = 3600;
    let start = now() - 60_000_000_000;
    // 7 queries of 9 ms: found. 4 queries of 20 ms: too few. 6 queries of 8 ms: 48 ms, too short.
    let loop7 = QueryLoopTrace::new(1, start, 7, 9_000);
    let few = QueryLoopTrace::new(2, start + 1000, 4, 20_000);
    let short = QueryLoopTrace::new(3, start + 2000, 6, 8_000);
    {
        let store = Store::open(config.clone())?;
        for t in [&loop7, &few, &short] {
            store.write_traces(t.request())?;
        }
        assert!(store.findings(&all(None))?.is_empty(), "still settling");
        store.close()?;
    }
    config.settle_secs = 0;
    let store = Store::open(config.clone())?;
    let found = store.findings(&all(Some(FindingKind::NPlusOneDb)))?;
    assert_eq!(found.len(), 1, "{found:?}");
    let f = &found[0];
    assert_eq!(f.trace_id, loop7.trace_id);
    assert_eq!(f.parent_span_id, loop7.root_span_id());
    assert_eq!(f.count, 7);
    assert_eq!(
        f.span_ids,
        (0..7).map(|i| loop7.item_span_id(i)).collect::<Vec<_>>()
    );
    assert_eq!(
        f.statement,
        "SELECT slot, ad_id FROM placements WHERE video_id = ?"
    );
    assert_eq!(f.duration_nanos, 63_000_000);
    assert_eq!(f.service, "videos-api");
    assert!(
        store
            .findings(&all(Some(FindingKind::RepeatedHttp)))?
            .is_empty()
    );
    store.close()?;
    let store = Store::open(config)?;
    assert_eq!(store.findings(&all(None))?, found, "kept across a reopen");
    Ok(())
}

#[test]
fn the_detector_can_be_turned_off_and_its_thresholds_set() -> anyhow::Result<()> {
    let start = now() - 60_000_000_000;
    let three = QueryLoopTrace::new(4, start, 3, 2_000);
    for (enabled, min_repeats, want) in [(true, 3, 1), (true, 5, 0), (false, 3, 0)] {
        let dir = tempfile::tempdir()?;
        let mut config = StoreConfig::new(dir.path());
        config.settle_secs = 0;
        config.findings = FindingsConfig {
            enabled,
            min_repeats,
            min_duration_ms: 5,
        };
        let store = Store::open(config)?;
        store.write_traces(three.request())?;
        assert_eq!(
            store.findings(&all(None))?.len(),
            want,
            "{enabled} {min_repeats}"
        );
    }
    Ok(())
}
