//! Trace integrity: whether every trace arrived whole, judged once it has settled.
//!
//! A trace is *settling* until `settle_secs` have passed since its last span arrived. Then it is
//! judged from the spans seen: whole when a root is present and every parent arrived. A judged
//! trace that later gets more spans is judged again from everything stored, so late spans can
//! mend (or break) it without counting it twice.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::api::{IntegrityPoint, IntegrityProblem, SpanId, TraceIntegrity};
use crate::facts::{IdHash, SpanFacts};
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

/// Whether (span id, parent id) pairs form a whole trace; no allocation for small traces.
pub fn is_whole(spans: &[(u64, u64)]) -> bool {
    if spans.len() > 32 {
        return judge(spans).is_empty();
    }
    spans.iter().any(|(_, parent)| *parent == 0)
        && spans
            .iter()
            .all(|(_, parent)| *parent == 0 || spans.iter().any(|(id, _)| id == parent))
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
    live: HashMap<u128, LiveTrace, IdHash>,
    queue: VecDeque<(u64, u128)>,
    /// Per minute of trace start: [whole, incomplete].
    counts: BTreeMap<u64, [u64; 2]>,
    /// Incomplete traces and their start, for searches of broken traces.
    #[serde(with = "crate::checkpoint::as_vec")]
    incomplete: HashMap<u128, u64, IdHash>,
    by_start: BTreeSet<(u64, u128)>,
    /// Traces first seen (a late part of a judged trace is not counted again).
    pub traces_seen: u64,
}

impl IntegrityTracker {
    pub fn record(&mut self, f: &SpanFacts, arrival: u64) {
        let (live, new) = match self.live.get_mut(&f.trace_id) {
            Some(l) => (l, false),
            None => {
                self.traces_seen += 1;
                let live = self.live.entry(f.trace_id).or_insert_with(|| LiveTrace {
                    spans: Vec::with_capacity(4),
                    start_unix_nanos: f.start_unix_nanos,
                    first_arrival: arrival,
                    last_arrival: arrival,
                });
                (live, true)
            }
        };
        live.spans.push((f.span_id, f.parent_span_id));
        live.start_unix_nanos = live.start_unix_nanos.min(f.start_unix_nanos);
        if new || live.last_arrival != arrival {
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
            if was_incomplete.is_none() && is_whole(&live.spans) {
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn facts(trace: u128, id: u64, parent: u64) -> SpanFacts {
        SpanFacts {
            trace_id: trace,
            span_id: id,
            parent_span_id: parent,
            service: Arc::from("svc"),
            name: "op".into(),
            kind: 1,
            status_code: 0,
            start_unix_nanos: 10,
            end_unix_nanos: 20,
            links: Vec::new(),
            peer: None,
            pattern: None,
        }
    }

    #[test]
    fn judge_finds_missing_root_and_orphans() {
        assert!(judge(&[(1, 0), (2, 1), (3, 2)]).is_empty());
        assert!(is_whole(&[(1, 0), (2, 1), (3, 2)]));
        assert!(!is_whole(&[(2, 1)]));
        assert!(!is_whole(&[(1, 0), (3, 2)]));
        let big: Vec<(u64, u64)> = (1..100).map(|i| (i, i - 1)).collect();
        assert!(is_whole(&big));
        assert!(!is_whole(&big[1..]));
        assert_eq!(
            judge(&[(2, 1)]),
            vec![
                IntegrityProblem::MissingRoot,
                IntegrityProblem::OrphanSpans {
                    count: 1,
                    missing_parents: vec![SpanId(1u64.to_be_bytes())]
                },
            ]
        );
        assert_eq!(
            judge(&[(1, 0), (3, 2), (4, 2)]),
            vec![IntegrityProblem::OrphanSpans {
                count: 2,
                missing_parents: vec![SpanId(2u64.to_be_bytes())]
            }]
        );
        assert_eq!(integrity_of(&[(2, 1)], true), TraceIntegrity::Settling);
        assert_eq!(integrity_of(&[(1, 0)], false), TraceIntegrity::Whole);
    }

    fn counts(t: &IntegrityTracker) -> (u64, u64, u64) {
        let p = &t.series(0, 60_000_000_000, 60_000_000_000)[0];
        (p.whole, p.incomplete, p.settling)
    }

    #[test]
    fn traces_settle_after_their_last_span() {
        let mut t = IntegrityTracker::default();
        t.record(&facts(1, 1, 0), 100);
        t.record(&facts(2, 5, 4), 100);
        let mut no_store = |_| None;
        t.settle(105, 10, &mut no_store);
        assert_eq!(counts(&t), (0, 0, 2));
        t.record(&facts(1, 2, 1), 108);
        t.settle(110, 10, &mut no_store);
        assert_eq!(
            counts(&t),
            (0, 1, 1),
            "trace 2 judged, trace 1 still settling"
        );
        t.settle(118, 10, &mut no_store);
        assert_eq!(counts(&t), (1, 1, 0));
        assert_eq!(
            t.incomplete_newest_first(0, u64::MAX).collect::<Vec<_>>(),
            vec![2]
        );
        assert_eq!(t.traces_seen, 2);
    }

    #[test]
    fn a_late_part_is_judged_with_what_was_stored_and_counted_once() {
        let mut t = IntegrityTracker::default();
        // The child arrives first and is judged broken.
        t.record(&facts(1, 2, 1), 0);
        t.settle(10, 10, &mut |_| {
            Some(Verdict {
                whole: false,
                start_unix_nanos: 10,
                first_arrival: 0,
            })
        });
        assert_eq!(counts(&t), (0, 1, 0));
        // Its root arrives late; the store now holds the whole trace.
        t.record(&facts(1, 1, 0), 20);
        t.settle(30, 10, &mut |_| {
            Some(Verdict {
                whole: true,
                start_unix_nanos: 10,
                first_arrival: 0,
            })
        });
        assert_eq!(counts(&t), (1, 0, 0));
        assert_eq!(t.incomplete_newest_first(0, u64::MAX).count(), 0);
        // A late orphan breaks a trace that had been counted whole.
        t.record(&facts(1, 9, 8), 40);
        t.settle(50, 10, &mut |_| {
            Some(Verdict {
                whole: false,
                start_unix_nanos: 10,
                first_arrival: 0,
            })
        });
        assert_eq!(counts(&t), (0, 1, 0));
    }
}
