//! Everything derived from spans at ingest, kept together so it is checkpointed as one.

use serde::{Deserialize, Serialize};

use crate::facts::SpanFacts;
use crate::findings::{FindingsConfig, FindingsTracker};
use crate::graph::ServiceGraph;
use crate::integrity::{IntegrityTracker, Verdict};
use crate::metrics::SpanMetrics;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Derived {
    pub metrics: SpanMetrics,
    pub graph: ServiceGraph,
    pub integrity: IntegrityTracker,
    pub spans_total: u64,
    /// Checkpoints written before the detector existed have none.
    #[serde(default)]
    pub findings: FindingsTracker,
}

impl Derived {
    /// Takes in the spans of one write that arrived at `arrival`.
    pub fn record(&mut self, facts: &[SpanFacts], arrival: u64) {
        for f in facts {
            self.metrics.record(f);
            self.graph.record(f, arrival);
            self.integrity.record(f, arrival);
            self.findings.record(f, arrival);
        }
        self.spans_total += facts.len() as u64;
    }

    /// Moves time to `now`: expires unpaired halves and judges settled traces.
    pub fn advance(
        &mut self,
        now: u64,
        settle_nanos: u64,
        findings: &FindingsConfig,
        recheck: &mut dyn FnMut(u128) -> Option<Verdict>,
    ) {
        self.graph.expire(now, settle_nanos);
        self.findings.settle(now, settle_nanos, findings);
        self.integrity.settle(now, settle_nanos, recheck);
    }

    /// Forgets time series older than `cutoff`.
    pub fn prune(&mut self, cutoff: u64) {
        self.metrics.prune(cutoff);
        self.graph.prune(cutoff);
        self.integrity.prune(cutoff);
        self.findings.prune(cutoff);
    }
}
