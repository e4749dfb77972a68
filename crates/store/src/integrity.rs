//! Trace integrity: whether every trace arrived whole, judged once it has settled.
//!
//! A trace is *settling* until `settle_secs` have passed since its last span arrived. Then it is
//! judged from the spans seen: whole when a root is present and every parent arrived. A judged
//! trace that later gets more spans is judged again from everything stored, so late spans can
//! mend (or break) it without counting it twice.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::api::{IntegrityPoint, IntegrityProblem, SpanId, TraceIntegrity};
use crate::facts::SpanFacts;
use crate::metrics::{bucket_index, bucket_starts, minute_of};

/// The spans of a trace seen since it was last judged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveTrace {
    /// (span id, parent span id or 0)
    pub spans: Vec<(u64, u64)>,
    pub start_unix_nanos: u64,
    pub first_arrival: u64,
    pub last_arrival: u64,
}

/// The judgement of a whole stored trace, from [`judge`].
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub whole: bool,
    pub start_unix_nanos: u64,
    /// When the trace's first stored span arrived.
    pub first_arrival: u64,
}

/// Integrity of (span id, parent id) pairs: the problems found, empty when whole.
pub fn judge(spans: &[(u64, u64)]) -> Vec<IntegrityProblem> {
    let ids: HashSet<u64> = spans.iter().map(|(id, _)| *id).collect();
    let mut problems = Vec::new();
    if !spans.iter().any(|(_, parent)| *parent == 0) {
        problems.push(IntegrityProblem::MissingRoot);
    }
    let mut missing = BTreeSet::new();
    let mut orphans = 0u64;
    for (_, parent) in spans {
        if *parent != 0 && !ids.contains(parent) {
            orphans += 1;
            missing.insert(*parent);
        }
    }
    if orphans > 0 {
        problems.push(IntegrityProblem::OrphanSpans {
            count: orphans,
            missing_parents: missing
                .into_iter()
                .map(|p| SpanId(p.to_be_bytes()))
                .collect(),
        });
    }
    problems
}

/// The integrity of a trace from its spans and whether it is still settling.
pub fn integrity_of(spans: &[(u64, u64)], settling: bool) -> TraceIntegrity {
    if settling {
        return TraceIntegrity::Settling;
    }
    let problems = judge(spans);
    if problems.is_empty() {
        TraceIntegrity::Whole
    } else {
        TraceIntegrity::Incomplete(problems)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IntegrityTracker {
    #[serde(with = "crate::checkpoint::as_vec")]
    live: HashMap<u128, LiveTrace>,
    queue: VecDeque<(u64, u128)>,
    /// Per minute of trace start: [whole, incomplete].
    counts: BTreeMap<u64, [u64; 2]>,
    /// Incomplete traces and their start, for searches of broken traces.
    #[serde(with = "crate::checkpoint::as_vec")]
    incomplete: HashMap<u128, u64>,
    by_start: BTreeSet<(u64, u128)>,
    /// Traces first seen (a late part of a judged trace is not counted again).
    pub traces_seen: u64,
}

impl IntegrityTracker {
    pub fn record(&mut self, f: &SpanFacts, arrival: u64) {
        let live = match self.live.get_mut(&f.trace_id) {
            Some(l) => l,
            None => {
                self.traces_seen += 1;
                self.live.entry(f.trace_id).or_insert_with(|| LiveTrace {
                    start_unix_nanos: f.start_unix_nanos,
                    first_arrival: arrival,
                    ..LiveTrace::default()
                })
            }
        };
        live.spans.push((f.span_id, f.parent_span_id));
        live.start_unix_nanos = live.start_unix_nanos.min(f.start_unix_nanos);
        if live.last_arrival != arrival {
            live.last_arrival = arrival;
            self.queue.push_back((arrival, f.trace_id));
        }
    }

    /// Judges every trace that settled by `now`. `recheck` reads a whole trace back from the
    /// store; it is only called for traces whose new spans alone are not whole.
    pub fn settle(
        &mut self,
        now: u64,
        settle_nanos: u64,
        recheck: &mut dyn FnMut(u128) -> Option<Verdict>,
    ) {
        while let Some(&(arrival, trace)) = self.queue.front() {
            if arrival.saturating_add(settle_nanos) > now {
                break;
            }
            self.queue.pop_front();
            if self
                .live
                .get(&trace)
                .is_none_or(|l| l.last_arrival != arrival)
            {
                continue;
            }
            let Some(live) = self.live.remove(&trace) else {
                continue;
            };
            let was_incomplete = self.incomplete.remove(&trace);
            if let Some(start) = was_incomplete {
                self.by_start.remove(&(start, trace));
                self.count(start, 1, -1);
            }
            if was_incomplete.is_none() && judge(&live.spans).is_empty() {
                self.count(live.start_unix_nanos, 0, 1);
                continue;
            }
            let verdict = recheck(trace).unwrap_or(Verdict {
                whole: false,
                start_unix_nanos: live.start_unix_nanos,
                first_arrival: live.first_arrival,
            });
            let earlier_part_counted_whole =
                was_incomplete.is_none() && verdict.first_arrival < live.first_arrival;
            if verdict.whole {
                if !earlier_part_counted_whole {
                    self.count(verdict.start_unix_nanos, 0, 1);
                }
            } else {
                if earlier_part_counted_whole {
                    self.count(verdict.start_unix_nanos, 0, -1);
                }
                self.count(verdict.start_unix_nanos, 1, 1);
                self.incomplete.insert(trace, verdict.start_unix_nanos);
                self.by_start.insert((verdict.start_unix_nanos, trace));
            }
        }
    }

    fn count(&mut self, start: u64, slot: usize, delta: i64) {
        let c = self.counts.entry(minute_of(start)).or_default();
        c[slot] = c[slot].saturating_add_signed(delta);
    }

    /// Incomplete traces that started in `[start, end]`, newest first.
    pub fn incomplete_newest_first(&self, start: u64, end: u64) -> impl Iterator<Item = u128> + '_ {
        self.by_start
            .range((start, 0)..=(end, u128::MAX))
            .rev()
            .map(|(_, t)| *t)
    }

    pub fn series(&self, start: u64, end: u64, step: u64) -> Vec<IntegrityPoint> {
        let buckets = bucket_starts(start, end, step);
        let mut points: Vec<IntegrityPoint> = buckets
            .iter()
            .map(|b| IntegrityPoint {
                bucket_start_unix_nanos: *b,
                whole: 0,
                incomplete: 0,
                settling: 0,
            })
            .collect();
        for (minute, [whole, incomplete]) in self.counts.range(minute_of(start)..end) {
            if let Some(i) = bucket_index(*minute, start, step, points.len()) {
                points[i].whole += whole;
                points[i].incomplete += incomplete;
            }
        }
        for live in self.live.values() {
            let t = live.start_unix_nanos;
            if t >= start
                && t < end
                && let Some(i) = bucket_index(t, start, step, points.len())
            {
                points[i].settling += 1;
            }
        }
        points
    }

    pub fn prune(&mut self, cutoff: u64) {
        self.counts = self.counts.split_off(&minute_of(cutoff));
        let old: Vec<(u64, u128)> = self.by_start.range(..(cutoff, 0)).copied().collect();
        for key in old {
            self.by_start.remove(&key);
            self.incomplete.remove(&key.1);
        }
    }
}
