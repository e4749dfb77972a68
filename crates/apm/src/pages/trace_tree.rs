//! The trace as a tree, shared by the waterfall and the span detail: spans in depth-first order
//! with their parents, orphans and the queue time between a PRODUCER span and its CONSUMER.

use std::collections::HashMap;

use throughline_store::{SpanKind, StoredSpan};

use crate::html;

/// A span placed in the waterfall.
#[derive(Debug)]
pub struct Placed {
    pub index: usize,
    pub depth: usize,
    pub child_count: usize,
    /// The parent id is set but that span is not in the trace.
    pub orphan: bool,
}

/// The trace as a tree: spans in depth-first order, children by start time.
#[derive(Debug)]
pub struct TraceTree<'a> {
    pub spans: &'a [StoredSpan],
    pub order: Vec<Placed>,
    pub by_id: HashMap<[u8; 8], usize>,
    pub parent: Vec<Option<usize>>,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
}

impl<'a> TraceTree<'a> {
    pub fn new(spans: &'a [StoredSpan]) -> Self {
        let mut by_id = HashMap::with_capacity(spans.len());
        for (i, s) in spans.iter().enumerate() {
            if let Ok(id) = <[u8; 8]>::try_from(s.span.span_id.as_slice()) {
                by_id.entry(id).or_insert(i);
            }
        }
        let mut parent = vec![None; spans.len()];
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
        let mut roots = Vec::new();
        let mut orphan = vec![false; spans.len()];
        for (i, s) in spans.iter().enumerate() {
            let p = <[u8; 8]>::try_from(s.span.parent_span_id.as_slice())
                .ok()
                .filter(|p| *p != [0; 8]);
            match p.and_then(|p| by_id.get(&p).copied()) {
                Some(pi) if pi != i => {
                    parent[i] = Some(pi);
                    children[pi].push(i);
                }
                _ => {
                    orphan[i] = p.is_some();
                    roots.push(i);
                }
            }
        }
        let start_of = |i: &usize| spans[*i].span.start_time_unix_nano;
        roots.sort_by_key(start_of);
        for c in &mut children {
            c.sort_by_key(start_of);
        }
        // Iterative depth-first walk; `seen` guards against parent cycles in bad data.
        let mut order = Vec::with_capacity(spans.len());
        let mut seen = vec![false; spans.len()];
        let mut stack: Vec<(usize, usize)> = roots.iter().rev().map(|&r| (r, 0)).collect();
        while let Some((i, depth)) = stack.pop() {
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            order.push(Placed {
                index: i,
                depth,
                child_count: children[i].len(),
                orphan: orphan[i],
            });
            stack.extend(children[i].iter().rev().map(|&c| (c, depth + 1)));
        }
        // Spans caught in a parent cycle are never reached from a root: list them at the top level.
        for (i, _) in seen.iter().enumerate().filter(|(_, seen)| !**seen) {
            {
                order.push(Placed {
                    index: i,
                    depth: 0,
                    child_count: 0,
                    orphan: true,
                });
            }
        }
        let start_unix_nanos = spans
            .iter()
            .map(|s| s.span.start_time_unix_nano)
            .min()
            .unwrap_or(0);
        let end_unix_nanos = spans
            .iter()
            .map(|s| s.span.end_time_unix_nano.max(s.span.start_time_unix_nano))
            .max()
            .unwrap_or(0);
        TraceTree {
            spans,
            order,
            by_id,
            parent,
            start_unix_nanos,
            end_unix_nanos,
        }
    }

    /// The span with this id, if it is in the trace.
    pub fn find(&self, id: &[u8]) -> Option<usize> {
        self.by_id.get(<&[u8; 8]>::try_from(id).ok()?).copied()
    }

    /// Time a message waited in a queue before the CONSUMER span `i` started: from the end of
    /// its PRODUCER parent, or else of the first PRODUCER span it links to in this trace.
    /// Returns the producer's index and the wait (negative when the consumer began before the
    /// producer's span ended).
    pub fn queue_time(&self, i: usize) -> Option<(usize, i128)> {
        let s = &self.spans[i].span;
        if s.kind != SpanKind::Consumer as i32 {
            return None;
        }
        let is_producer = |p: usize| self.spans[p].span.kind == SpanKind::Producer as i32;
        let producer = self.parent[i].filter(|&p| is_producer(p)).or_else(|| {
            s.links.iter().find_map(|l| {
                (l.trace_id == s.trace_id)
                    .then(|| self.find(&l.span_id))
                    .flatten()
                    .filter(|&p| is_producer(p))
            })
        })?;
        let wait = i128::from(s.start_time_unix_nano)
            - i128::from(self.spans[producer].span.end_time_unix_nano);
        Some((producer, wait))
    }
}

/// A queue wait in words.
pub fn queue_text(wait: i128) -> String {
    if wait < 0 {
        format!(
            "consumer started {} before the send ended",
            html::duration(wait.unsigned_abs() as u64)
        )
    } else {
        html::duration(wait as u64)
    }
}

pub fn is_error(span: &StoredSpan) -> bool {
    span.span.status.as_ref().is_some_and(|s| s.code == 2)
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::trace::v1::span::Link;
    use throughline_store::{Resource, Span};

    use super::*;

    pub(crate) fn stored(
        service: &str,
        id: u8,
        parent: Option<u8>,
        kind: SpanKind,
        start: u64,
        end: u64,
    ) -> StoredSpan {
        StoredSpan {
            service_name: service.to_owned(),
            resource: Resource::default(),
            scope: None,
            span: Span {
                trace_id: vec![1; 16],
                span_id: vec![0, 0, 0, 0, 0, 0, 0, id],
                parent_span_id: parent
                    .map(|p| vec![0, 0, 0, 0, 0, 0, 0, p])
                    .unwrap_or_default(),
                kind: kind as i32,
                start_time_unix_nano: start,
                end_time_unix_nano: end,
                ..Default::default()
            },
        }
    }

    #[test]
    fn orders_depth_first_by_start_and_marks_orphans() {
        let spans = vec![
            stored("b", 3, Some(1), SpanKind::Internal, 30, 40),
            stored("a", 1, None, SpanKind::Server, 0, 100),
            stored("a", 2, Some(1), SpanKind::Internal, 10, 20),
            stored("c", 4, Some(9), SpanKind::Internal, 50, 60),
        ];
        let tree = TraceTree::new(&spans);
        let order: Vec<(u8, usize, bool)> = tree
            .order
            .iter()
            .map(|p| (spans[p.index].span.span_id[7], p.depth, p.orphan))
            .collect();
        assert_eq!(
            order,
            vec![(1, 0, false), (2, 1, false), (3, 1, false), (4, 0, true)]
        );
        assert_eq!((tree.start_unix_nanos, tree.end_unix_nanos), (0, 100));
    }

    #[test]
    fn parent_cycles_do_not_hang_or_drop_spans() {
        let spans = vec![
            stored("a", 1, Some(2), SpanKind::Internal, 0, 1),
            stored("a", 2, Some(1), SpanKind::Internal, 0, 1),
        ];
        assert_eq!(TraceTree::new(&spans).order.len(), 2);
    }

    #[test]
    fn queue_time_runs_from_producer_end_to_consumer_start() {
        let spans = vec![
            stored("api", 1, None, SpanKind::Server, 0, 100),
            stored("api", 2, Some(1), SpanKind::Producer, 10, 30),
            stored("worker", 3, Some(2), SpanKind::Consumer, 1_030, 1_100),
        ];
        let tree = TraceTree::new(&spans);
        assert_eq!(tree.queue_time(2), Some((1, 1_000)));
        assert_eq!(tree.queue_time(1), None, "a producer has no queue time");
    }

    #[test]
    fn queue_time_follows_a_link_when_the_consumer_is_not_a_child() {
        let mut consumer = stored("worker", 3, None, SpanKind::Consumer, 500, 600);
        consumer.span.links.push(Link {
            trace_id: vec![1; 16],
            span_id: vec![0, 0, 0, 0, 0, 0, 0, 2],
            ..Default::default()
        });
        let spans = vec![
            stored("api", 1, None, SpanKind::Server, 0, 100),
            stored("api", 2, Some(1), SpanKind::Producer, 10, 40),
            consumer,
        ];
        assert_eq!(TraceTree::new(&spans).queue_time(2), Some((1, 460)));
    }

    #[test]
    fn a_consumer_that_starts_early_says_so() {
        assert_eq!(
            queue_text(-2_000_000),
            "consumer started 2.00 ms before the send ended"
        );
        assert_eq!(queue_text(1_250_000_000), "1.25 s");
    }
}
