//! Support for the APM's integration tests: a CDP client for chromium, the test traces, and a
//! real store filled through `SpanSink::write_traces`, as the collector fills it.
#![allow(dead_code)] // each test binary uses part of the support code

pub mod cdp;
pub mod trace_data;

use std::sync::Arc;

use anyhow::{Context, ensure};
use throughline_store::{ExportTraceServiceRequest, SpanSink, Store, StoreConfig, TraceReader};

/// A store in a temporary folder holding `requests`; integrity is judged at once (settle 0 s).
pub fn filled_store(
    requests: Vec<ExportTraceServiceRequest>,
) -> anyhow::Result<(Arc<dyn TraceReader>, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let mut config = StoreConfig::new(dir.path());
    config.settle_secs = 0;
    let store = Store::open(config).context("open the store")?;
    for r in requests {
        let report = store.write_traces(r).context("write traces")?;
        ensure!(
            report.rejected_spans == 0,
            "the store rejected spans: {}",
            report.rejection_reason
        );
    }
    store.maintain().context("settle the store")?;
    Ok((Arc::new(store), dir))
}
