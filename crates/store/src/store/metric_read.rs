//! The metric index's place in the store: fed by each metrics write, rebuilt from the log at
//! open, pruned to the retention, and read by [`Store::metric_series`].

use super::*;
use crate::otlp_metrics::{MetricQuery, MetricSeries};

/// How often the index is pruned to the retention (on a write).
const PRUNE_EVERY_NANOS: u64 = 60 * NANOS_PER_SEC;

impl Store {
    fn metric_state(&self) -> MutexGuard<'_, MetricIndexState> {
        // The index is plain data; a panic mid-update leaves at worst one export half indexed.
        self.metric_index.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Indexes one metrics export that is already in the log.
    pub(super) fn index_metrics(&self, request: &ExportMetricsServiceRequest, arrival: u64) {
        let retention = self
            .lock()
            .config
            .retention_secs
            .saturating_mul(NANOS_PER_SEC);
        let mut state = self.metric_state();
        state.index.record(request);
        if arrival.saturating_sub(state.last_prune) >= PRUNE_EVERY_NANOS {
            state.index.prune(arrival.saturating_sub(retention));
            state.last_prune = arrival;
        }
    }

    /// Replays every stored metrics export into a fresh index, in log order (so cumulative
    /// series turn into the same deltas as when they arrived).
    pub(super) fn rebuild_metric_index(&self) -> Result<(), StoreError> {
        let exports = self.metrics(0, u64::MAX)?;
        let retention = self
            .lock()
            .config
            .retention_secs
            .saturating_mul(NANOS_PER_SEC);
        let mut state = self.metric_state();
        for (_, request) in &exports {
            state.index.record(request);
        }
        let now = now_nanos();
        state.index.prune(now.saturating_sub(retention));
        state.last_prune = now;
        Ok(())
    }

    /// The series of one metric that match `query`, bucketed by its step: counters with their
    /// increase and rate, histograms with count, rate and p50/p95/p99, gauges with their last
    /// value. Sorted by service, then attributes. Refuses a step that would make more than
    /// [`crate::otlp_metrics::MAX_STEPS`] buckets.
    pub fn metric_series(&self, query: &MetricQuery) -> Result<Vec<MetricSeries>, StoreError> {
        let span = query.end_unix_nanos.saturating_sub(query.start_unix_nanos);
        if query.step_nanos > 0 && span / query.step_nanos > crate::otlp_metrics::MAX_STEPS {
            return Err(StoreError::InvalidQuery(format!(
                "step: makes more than {} buckets of the window",
                crate::otlp_metrics::MAX_STEPS
            )));
        }
        Ok(self.metric_state().index.query(query))
    }

    /// The names of the stored metrics, of one service when given, sorted.
    pub fn metric_names(&self, service: Option<&str>) -> Vec<String> {
        self.metric_state().index.names(service)
    }
}
