//! Anti-patterns found in a trace's spans when it settles: N+1 database queries (after Sentry's
//! detector and its thresholds), the same HTTP client call repeated under one parent, and a
//! producer sending one message per item where one batch call would do.
//!
//! Only spans that can take part (database, HTTP client and producer spans, each with its
//! *pattern*: the normalized statement, the call or the destination) are kept while a trace
//! settles. Then the children of each parent are walked in start order: spans of one kind with
//! equal patterns form a run; a span of the same kind with another pattern ends it, spans of
//! other kinds do not (a cache lookup between two queries of a loop leaves it a loop). A run is a
//! finding when it has at least [`FindingsConfig::min_repeats`] spans covering at least
//! [`FindingsConfig::min_duration_ms`] of wall time (overlaps counted once), and, for database
//! runs, when the parent is not itself a span of the same statement.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::api::{Finding, FindingKind, FindingQuery, SpanId, TraceId};
use crate::facts::{IdHash, SpanFacts};

/// The detector's thresholds. The defaults are Sentry's N+1 query detector's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FindingsConfig {
    /// Whether ingest looks for patterns at all (off only to measure what it costs).
    pub enabled: bool,
    /// The fewest repeats that make a finding (Sentry: 5).
    pub min_repeats: u32,
    /// The least wall time the repeats must cover together, in milliseconds (Sentry: 50).
    pub min_duration_ms: u64,
}

impl Default for FindingsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            min_repeats: 5,
            min_duration_ms: 50,
        }
    }
}

pub(crate) fn kind_code(kind: FindingKind) -> u8 {
    match kind {
        FindingKind::NPlusOneDb => 0,
        FindingKind::RepeatedHttp => 1,
        FindingKind::UnbatchedSend => 2,
    }
}

fn kind_of(code: u8) -> FindingKind {
    match code {
        1 => FindingKind::RepeatedHttp,
        2 => FindingKind::UnbatchedSend,
        _ => FindingKind::NPlusOneDb,
    }
}

/// What a span can repeat: its kind and the class it falls in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpanPattern {
    pub kind: u8,
    #[serde(with = "crate::checkpoint::arc_str")]
    pub key: Arc<str>,
}

impl SpanPattern {
    #[cfg(test)]
    pub fn new(kind: FindingKind, key: String) -> Self {
        Self::from_arc(kind, Arc::from(key))
    }

    /// Equal patterns; the same class is usually the same allocation (the class cache).
    fn same(&self, other: &SpanPattern) -> bool {
        self.kind == other.kind && (Arc::ptr_eq(&self.key, &other.key) || self.key == other.key)
    }

    pub fn from_arc(kind: FindingKind, key: Arc<str>) -> Self {
        Self {
            kind: kind_code(kind),
            key,
        }
    }
}

/// The detector's view of one span.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatternSpan {
    pub span_id: u64,
    pub parent_span_id: u64,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    #[serde(with = "crate::checkpoint::arc_str")]
    pub service: Arc<str>,
    pub pattern: SpanPattern,
}

/// A finding as kept in the store (ids as integers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFinding {
    pub kind: u8,
    pub trace_id: u128,
    pub parent_span_id: u64,
    pub span_ids: Vec<u64>,
    pub statement: String,
    pub duration_nanos: u64,
    pub service: String,
    pub start_unix_nanos: u64,
}

impl StoredFinding {
    pub fn to_api(&self) -> Finding {
        Finding {
            kind: kind_of(self.kind),
            trace_id: TraceId(self.trace_id.to_be_bytes()),
            parent_span_id: SpanId(self.parent_span_id.to_be_bytes()),
            span_ids: self
                .span_ids
                .iter()
                .map(|s| SpanId(s.to_be_bytes()))
                .collect(),
            statement: self.statement.clone(),
            count: self.span_ids.len() as u64,
            duration_nanos: self.duration_nanos,
            service: self.service.clone(),
            start_unix_nanos: self.start_unix_nanos,
        }
    }
}

/// Wall time covered by `(start, end)` intervals, overlaps counted once.
fn covered_nanos(spans: &[&PatternSpan]) -> u64 {
    let mut intervals: Vec<(u64, u64)> = spans
        .iter()
        .map(|s| (s.start_unix_nanos, s.end_unix_nanos.max(s.start_unix_nanos)))
        .collect();
    intervals.sort_unstable();
    let mut total = 0;
    let mut current: Option<(u64, u64)> = None;
    for (start, end) in intervals {
        current = match current {
            Some((s, e)) if start <= e => Some((s, e.max(end))),
            Some((s, e)) => {
                total += e - s;
                Some((start, end))
            }
            None => Some((start, end)),
        };
    }
    total + current.map_or(0, |(s, e)| e - s)
}

/// The findings among the spans of one trace.
pub fn detect(
    trace_id: u128,
    spans: &[PatternSpan],
    config: &FindingsConfig,
) -> Vec<StoredFinding> {
    let min_repeats = config.min_repeats.max(1) as usize;
    if spans.len() < min_repeats {
        return Vec::new();
    }
    // Siblings side by side in start order, and the spans by id for their parent's own pattern:
    // two sorts, no maps.
    let mut order: Vec<&PatternSpan> = spans.iter().collect();
    order.sort_unstable_by_key(|s| (s.parent_span_id, s.start_unix_nanos, s.span_id));
    let mut by_id: Vec<(u64, &SpanPattern)> =
        spans.iter().map(|s| (s.span_id, &s.pattern)).collect();
    by_id.sort_unstable_by_key(|(id, _)| *id);
    let pattern_of = |id: u64| {
        by_id
            .binary_search_by_key(&id, |(id, _)| *id)
            .ok()
            .map(|i| by_id[i].1)
    };
    let min_duration_nanos = config.min_duration_ms.saturating_mul(1_000_000);
    let mut out = Vec::new();
    for siblings in order.chunk_by(|a, b| a.parent_span_id == b.parent_span_id) {
        if siblings.len() < min_repeats {
            continue;
        }
        let parent = siblings[0].parent_span_id;
        let finish = |run: &mut Vec<&PatternSpan>, out: &mut Vec<StoredFinding>| {
            let taken = std::mem::take(run);
            let Some(first) = taken.first() else {
                return;
            };
            if taken.len() < min_repeats {
                return;
            }
            let db = first.pattern.kind == kind_code(FindingKind::NPlusOneDb);
            let parent_same = pattern_of(parent).is_some_and(|p| *p == first.pattern);
            let duration = covered_nanos(&taken);
            if duration >= min_duration_nanos && !(db && parent_same) {
                out.push(StoredFinding {
                    kind: first.pattern.kind,
                    trace_id,
                    parent_span_id: parent,
                    span_ids: taken.iter().map(|s| s.span_id).collect(),
                    statement: first.pattern.key.to_string(),
                    duration_nanos: duration,
                    service: first.service.to_string(),
                    start_unix_nanos: first.start_unix_nanos,
                });
            }
        };
        // One open run per kind: a span of another kind does not end a run.
        let mut runs: [Vec<&PatternSpan>; 3] = Default::default();
        for s in siblings {
            let run = &mut runs[usize::from(s.pattern.kind.min(2))];
            if run
                .last()
                .is_some_and(|last| !last.pattern.same(&s.pattern))
            {
                finish(run, &mut out);
            }
            run.push(s);
        }
        for run in &mut runs {
            finish(run, &mut out);
        }
    }
    out.sort_by_key(|f| (f.start_unix_nanos, f.kind));
    out
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct LiveSpans {
    spans: Vec<PatternSpan>,
    last_arrival: u64,
}

/// The spans of traces still settling, and the findings of settled ones.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FindingsTracker {
    #[serde(with = "crate::checkpoint::as_vec")]
    live: HashMap<u128, LiveSpans, IdHash>,
    queue: VecDeque<(u64, u128)>,
    /// In the order traces settled, at most [`MAX_FINDINGS`].
    found: VecDeque<StoredFinding>,
}

/// The most findings kept: past it the oldest are forgotten first (a route with an N+1 makes one
/// per request; the pattern is the news, not its millionth instance).
pub const MAX_FINDINGS: usize = 100_000;

impl FindingsTracker {
    pub fn record(&mut self, f: &SpanFacts, arrival: u64) {
        let Some(pattern) = &f.pattern else {
            return;
        };
        let live = self.live.entry(f.trace_id).or_insert_with(|| LiveSpans {
            spans: Vec::with_capacity(4),
            last_arrival: 0,
        });
        live.spans.push(PatternSpan {
            span_id: f.span_id,
            parent_span_id: f.parent_span_id,
            start_unix_nanos: f.start_unix_nanos,
            end_unix_nanos: f.end_unix_nanos,
            service: Arc::clone(&f.service),
            pattern: pattern.clone(),
        });
        if live.last_arrival != arrival {
            live.last_arrival = arrival;
            self.queue.push_back((arrival, f.trace_id));
        }
    }

    /// Looks for patterns in every trace that settled by `now`.
    pub fn settle(&mut self, now: u64, settle_nanos: u64, config: &FindingsConfig) {
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
            if let Some(live) = self.live.remove(&trace) {
                self.found.extend(detect(trace, &live.spans, config));
                while self.found.len() > MAX_FINDINGS {
                    self.found.pop_front();
                }
            }
        }
    }

    /// Forgets findings whose spans started before `cutoff`.
    pub fn prune(&mut self, cutoff: u64) {
        self.found.retain(|f| f.start_unix_nanos >= cutoff);
    }

    /// Matching findings, most recent first.
    pub fn list(&self, query: &FindingQuery) -> Vec<Finding> {
        let mut out: Vec<Finding> = self
            .found
            .iter()
            .filter(|f| {
                f.start_unix_nanos >= query.start_unix_nanos
                    && f.start_unix_nanos <= query.end_unix_nanos
                    && query.kind.is_none_or(|k| kind_code(k) == f.kind)
                    && query.service.as_ref().is_none_or(|s| *s == f.service)
                    && query
                        .trace_id
                        .is_none_or(|t| u128::from_be_bytes(t.0) == f.trace_id)
            })
            .map(StoredFinding::to_api)
            .collect();
        out.sort_by_key(|f| std::cmp::Reverse(f.start_unix_nanos));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const PARENT: u64 = 1;

    fn span(
        id: u64,
        parent: u64,
        kind: FindingKind,
        key: &str,
        start_ms: u64,
        ms: u64,
    ) -> PatternSpan {
        PatternSpan {
            span_id: id,
            parent_span_id: parent,
            start_unix_nanos: start_ms * MS,
            end_unix_nanos: (start_ms + ms) * MS,
            service: Arc::from("api"),
            pattern: SpanPattern::new(kind, key.to_owned()),
        }
    }

    fn query(id: u64, start_ms: u64, ms: u64) -> PatternSpan {
        span(
            id,
            PARENT,
            FindingKind::NPlusOneDb,
            "SELECT * FROM placements WHERE video_id = ?",
            start_ms,
            ms,
        )
    }

    /// `n` queries one after another, each `ms` long, starting at span id 10.
    fn sequential(n: u64, ms: u64) -> Vec<PatternSpan> {
        (0..n).map(|i| query(10 + i, i * ms, ms)).collect()
    }

    fn found(spans: &[PatternSpan]) -> Vec<StoredFinding> {
        detect(7, spans, &FindingsConfig::default())
    }

    #[test]
    fn five_repeats_are_a_finding_and_four_are_not() {
        let five = found(&sequential(5, 10));
        assert_eq!(five.len(), 1);
        let f = &five[0];
        assert_eq!(f.kind, kind_code(FindingKind::NPlusOneDb));
        assert_eq!(f.parent_span_id, PARENT);
        assert_eq!(f.span_ids, [10, 11, 12, 13, 14]);
        assert_eq!(f.duration_nanos, 50 * MS);
        assert_eq!(f.statement, "SELECT * FROM placements WHERE video_id = ?");
        assert!(found(&sequential(4, 20)).is_empty());
    }

    #[test]
    fn fifty_milliseconds_are_a_finding_and_forty_nine_are_not() {
        let mut spans = sequential(5, 10);
        assert_eq!(found(&spans).len(), 1);
        spans[4].end_unix_nanos -= MS;
        assert!(found(&spans).is_empty());
    }

    #[test]
    fn thresholds_are_settable() {
        let config = FindingsConfig {
            min_repeats: 3,
            min_duration_ms: 5,
            ..FindingsConfig::default()
        };
        assert_eq!(detect(7, &sequential(3, 2), &config).len(), 1);
        assert!(detect(7, &sequential(2, 20), &config).is_empty());
    }

    #[test]
    fn other_kinds_between_repeats_leave_the_run_and_another_query_ends_it() {
        let mut spans = sequential(5, 20);
        // A cache call between two queries of the loop does not end the run.
        spans.push(span(
            99,
            PARENT,
            FindingKind::RepeatedHttp,
            "GET cache/?",
            25,
            1,
        ));
        let f = found(&spans);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].count_spans(), 5);
        // Another statement between them does: 2 + 3 are not 5.
        let mut spans = sequential(5, 20);
        spans.push(span(
            98,
            PARENT,
            FindingKind::NPlusOneDb,
            "SELECT * FROM videos",
            39,
            1,
        ));
        assert!(found(&spans).is_empty());
    }

    #[test]
    fn repeats_under_different_parents_are_not_siblings() {
        let mut spans = sequential(5, 20);
        spans[2].parent_span_id = 2;
        assert!(found(&spans).is_empty());
    }

    #[test]
    fn parallel_repeats_count_their_wall_time_once() {
        // Five queries side by side, 30 ms each: 30 ms of wall time, below the threshold.
        let parallel: Vec<PatternSpan> = (0..5).map(|i| query(10 + i, 0, 30)).collect();
        assert!(found(&parallel).is_empty());
        // Side by side for 60 ms: five round trips the user waits 60 ms for.
        let parallel: Vec<PatternSpan> = (0..5).map(|i| query(10 + i, i, 60)).collect();
        let f = found(&parallel);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].duration_nanos, 64 * MS);
    }

    #[test]
    fn a_parent_running_the_same_statement_is_not_an_n_plus_one() {
        let mut spans = sequential(5, 20);
        spans.push(span(
            PARENT,
            0,
            FindingKind::NPlusOneDb,
            "SELECT * FROM placements WHERE video_id = ?",
            0,
            100,
        ));
        assert!(found(&spans).is_empty());
        if let Some(parent) = spans.last_mut() {
            parent.pattern =
                SpanPattern::new(FindingKind::NPlusOneDb, "SELECT * FROM videos".into());
        }
        assert_eq!(found(&spans).len(), 1);
    }

    #[test]
    fn repeated_http_calls_and_unbatched_sends_are_found_alike() {
        let http: Vec<PatternSpan> = (0..6)
            .map(|i| {
                span(
                    10 + i,
                    PARENT,
                    FindingKind::RepeatedHttp,
                    "GET pricing/items/?",
                    i * 10,
                    10,
                )
            })
            .collect();
        let sends: Vec<PatternSpan> = (0..5)
            .map(|i| {
                span(
                    20 + i,
                    PARENT,
                    FindingKind::UnbatchedSend,
                    "send orders",
                    100 + i * 10,
                    10,
                )
            })
            .collect();
        let all: Vec<PatternSpan> = http.into_iter().chain(sends).collect();
        let f = found(&all);
        let kinds: Vec<u8> = f.iter().map(|f| f.kind).collect();
        assert_eq!(
            kinds,
            [
                kind_code(FindingKind::RepeatedHttp),
                kind_code(FindingKind::UnbatchedSend)
            ]
        );
        assert_eq!(f[0].span_ids.len(), 6);
    }

    #[test]
    fn a_trace_is_examined_once_it_has_settled() {
        let mut tracker = FindingsTracker::default();
        let config = FindingsConfig::default();
        let service: Arc<str> = Arc::from("api");
        for (i, s) in sequential(5, 20).into_iter().enumerate() {
            let facts = SpanFacts {
                trace_id: 7,
                span_id: s.span_id,
                parent_span_id: s.parent_span_id,
                service: Arc::clone(&service),
                name: "SELECT".into(),
                kind: crate::api::SpanKind::Client as i32,
                status_code: 0,
                start_unix_nanos: s.start_unix_nanos,
                end_unix_nanos: s.end_unix_nanos,
                links: Vec::new(),
                peer: None,
                pattern: Some(s.pattern.clone()),
            };
            tracker.record(&facts, 1000 + i as u64);
        }
        tracker.settle(1500, 1000, &config);
        let all = FindingQuery {
            end_unix_nanos: u64::MAX,
            ..FindingQuery::default()
        };
        assert!(tracker.list(&all).is_empty(), "still settling");
        tracker.settle(2004, 1000, &config);
        let list = tracker.list(&all);
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].count, 5);
        assert_eq!(list[0].trace_id, TraceId(7u128.to_be_bytes()));
        tracker.prune(u64::MAX);
        assert!(tracker.list(&all).is_empty());
    }

    impl StoredFinding {
        fn count_spans(&self) -> usize {
            self.span_ids.len()
        }
    }
}
