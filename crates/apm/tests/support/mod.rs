//! Support for the APM's integration tests: a CDP client for chromium, the test trace, the store.
#![allow(dead_code)] // each test binary uses part of the support code

pub mod cdp;
pub mod fake;
pub mod trace_data;

use std::sync::Arc;

use throughline_store::{ExportTraceServiceRequest, TraceReader};

/// A reader holding `requests`, written as the collector writes them.
pub fn filled_reader(
    requests: Vec<ExportTraceServiceRequest>,
) -> anyhow::Result<Arc<dyn TraceReader>> {
    let mut fake = fake::FakeReader::default();
    for r in requests {
        fake.write(r);
    }
    Ok(Arc::new(fake))
}
