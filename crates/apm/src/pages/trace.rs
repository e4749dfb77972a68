//! The trace page: a waterfall (service colours, depth, time axis, errors, queue time) and the
//! selected span's detail. Rows are plain HTML with positioned bars so that a 10k-span trace stays
//! one linear pass and light to render; deep subtrees of big traces start collapsed.

use std::collections::HashMap;
use std::fmt::Write as _;

use throughline_store::{SpanId, SpanKind, StoredSpan, TraceId, TraceReader};

use crate::error::PageError;
use crate::html::{self, Esc, Nav};
use crate::pages::span_detail;
use crate::params::Params;

/// Traces with more spans than this start with subtrees below [`COLLAPSE_DEPTH`] collapsed.
pub const COLLAPSE_ABOVE_SPANS: usize = 500;
const COLLAPSE_DEPTH: usize = 2;

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

pub fn page(reader: &dyn TraceReader, id: TraceId, params: &Params) -> Result<String, PageError> {
    let spans = reader.trace(id)?;
    if spans.is_empty() {
        return Err(PageError::TraceNotFound(id));
    }
    let selected = match params.get("span") {
        Some(v) => {
            let sid: SpanId = crate::params::span_id("span", v)?;
            let found = spans
                .iter()
                .position(|s| s.span.span_id.as_slice() == sid.0.as_slice());
            Some(found.ok_or_else(|| PageError::NotFound(format!("span {sid} in trace {id}")))?)
        }
        None => None,
    };
    let tree = TraceTree::new(&spans);
    let palette = html::Palette::new(&reader.services()?);
    let mut body = String::with_capacity(spans.len() * 320 + 8192);
    header(&mut body, &tree, id, &palette);
    body.push_str(
        "<div class=\"trace-layout\"><section class=\"waterfall\" aria-label=\"waterfall\">",
    );
    waterfall(&mut body, &tree, selected, &palette);
    body.push_str("</section>");
    if let Some(i) = selected {
        body.push_str(
            "<aside class=\"detail\" aria-label=\"span detail\" data-testid=\"span-detail\">",
        );
        span_detail::render(&mut body, reader, &tree, i, &palette);
        body.push_str("</aside>");
    }
    body.push_str("</div>");
    Ok(html::page(
        &format!("Trace {}", &id.to_string()[..8]),
        Nav::Trace,
        &body,
    ))
}

fn header(body: &mut String, tree: &TraceTree<'_>, id: TraceId, palette: &html::Palette) {
    let root = tree.order.first().map(|p| &tree.spans[p.index]);
    let mut services: Vec<&str> = Vec::new();
    for p in &tree.order {
        let s = tree.spans[p.index].service_name.as_str();
        if !services.contains(&s) {
            services.push(s);
        }
    }
    let orphans = tree.order.iter().filter(|p| p.orphan).count();
    let errors = tree.spans.iter().filter(|s| is_error(s)).count();
    let _ = write!(
        body,
        "<h1 class=\"trace-title\">{} <span class=\"muted\">{}</span></h1><p class=\"trace-id\">Trace <code data-testid=\"trace-id\">{id}</code></p><dl class=\"facts\">",
        Esc(root.map_or("", |r| r.service_name.as_str())),
        Esc(root.map_or("", |r| r.span.name.as_str())),
    );
    let _ = write!(body, "<div><dt>Services</dt><dd>");
    for s in &services {
        let _ = write!(
            body,
            "<span class=\"svc\" style=\"--c:{}\">{}</span> ",
            palette.colour(s),
            Esc(s)
        );
    }
    let _ = write!(
        body,
        "</dd></div><div><dt>Spans</dt><dd>{}</dd></div><div><dt>Duration</dt><dd>{}</dd></div><div><dt>Started</dt><dd>{} UTC</dd></div><div><dt>Errors</dt><dd>{}</dd></div><div><dt>Integrity</dt><dd>{}</dd></div></dl>",
        tree.spans.len(),
        html::duration(tree.end_unix_nanos - tree.start_unix_nanos),
        html::timestamp(tree.start_unix_nanos),
        if errors == 0 {
            "none".to_owned()
        } else {
            format!("<span class=\"errmark\">{errors}</span>")
        },
        if tree.order.iter().any(|p| p.depth == 0 && !p.orphan) && orphans == 0 {
            "<span class=\"badge whole\">whole</span>".to_owned()
        } else if orphans > 0 {
            format!(
                "<span class=\"badge broken\">incomplete</span> {orphans} span{} whose parent did not arrive",
                if orphans == 1 { "" } else { "s" }
            )
        } else {
            "<span class=\"badge broken\">incomplete</span> missing root span".to_owned()
        }
    );
}

fn waterfall(
    body: &mut String,
    tree: &TraceTree<'_>,
    selected: Option<usize>,
    palette: &html::Palette,
) {
    let total = (tree.end_unix_nanos - tree.start_unix_nanos).max(1) as f64;
    let big = tree.spans.len() > COLLAPSE_ABOVE_SPANS;
    // One class per service keeps each row's markup short.
    let mut service_class: HashMap<&str, usize> = HashMap::new();
    body.push_str("<style>");
    for p in &tree.order {
        let s = tree.spans[p.index].service_name.as_str();
        if !service_class.contains_key(s) {
            let n = service_class.len();
            service_class.insert(s, n);
            let _ = write!(body, ".c{n}{{--c:{}}}", palette.colour(s));
        }
    }
    body.push_str("</style>");
    // The selected span's ancestors stay open even in a big trace.
    let mut open = vec![false; tree.spans.len()];
    let mut cursor = selected;
    while let Some(i) = cursor {
        open[i] = true;
        cursor = tree.parent[i];
    }
    let _ = write!(
        body,
        "<div class=\"wf-tools\"><button type=\"button\" data-action=\"expand-all\">Expand all</button>\
<button type=\"button\" data-action=\"collapse-all\">Collapse all</button>{}</div>\
<div class=\"wf-head\"><span class=\"l\">Service · operation</span><svg class=\"axis\" viewBox=\"0 0 1000 20\" preserveAspectRatio=\"none\" aria-hidden=\"true\">",
        if big {
            format!(
                "<span class=\"muted\">{} spans: subtrees below depth {COLLAPSE_DEPTH} start collapsed</span>",
                tree.spans.len()
            )
        } else {
            String::new()
        }
    );
    for tick in 0..=4 {
        let x = tick as f64 * 250.0;
        let _ = write!(body, "<line x1=\"{x}\" y1=\"12\" x2=\"{x}\" y2=\"20\"/>");
    }
    body.push_str("</svg><span class=\"ticks\">");
    for tick in 0..=4 {
        let _ = write!(
            body,
            "<span>{}</span>",
            html::duration((total * tick as f64 / 4.0) as u64)
        );
    }
    body.push_str("</span></div><div class=\"rows\" role=\"tree\">");
    // hidden_below[d]: rows deeper than d are hidden because the row at depth d is collapsed.
    let mut hidden_from: Option<usize> = None;
    for p in &tree.order {
        let i = p.index;
        let s = &tree.spans[i];
        if hidden_from.is_some_and(|d| p.depth <= d) {
            hidden_from = None;
        }
        let hidden = hidden_from.is_some();
        let collapsed = big && p.child_count > 0 && p.depth >= COLLAPSE_DEPTH && !open[i];
        if collapsed && hidden_from.is_none() {
            hidden_from = Some(p.depth);
        }
        let sid = SpanId::from_slice(&s.span.span_id)
            .map(|x| x.to_string())
            .unwrap_or_default();
        let start = s
            .span
            .start_time_unix_nano
            .saturating_sub(tree.start_unix_nanos) as f64;
        let dur = s
            .span
            .end_time_unix_nano
            .saturating_sub(s.span.start_time_unix_nano);
        let err = is_error(s);
        let _ = write!(
            body,
            "<div class=\"r c{}{}{}{}\" id=\"s-{sid}\" data-d=\"{}\" role=\"treeitem\" aria-level=\"{}\"{}>",
            service_class
                .get(s.service_name.as_str())
                .copied()
                .unwrap_or(0),
            if err { " e" } else { "" },
            if hidden { " h" } else { "" },
            if Some(i) == selected { " sel" } else { "" },
            p.depth,
            p.depth + 1,
            if p.child_count > 0 {
                format!(" aria-expanded=\"{}\"", !collapsed)
            } else {
                String::new()
            },
        );
        let _ = write!(body, "<span class=\"l\" style=\"--d:{}\">", p.depth.min(40));
        if p.child_count > 0 {
            let _ = write!(
                body,
                "<button type=\"button\" class=\"t\" aria-label=\"{} {} child spans\">{}</button>",
                if collapsed { "expand" } else { "collapse" },
                p.child_count,
                if collapsed { "▸" } else { "▾" }
            );
        } else {
            body.push_str("<span class=\"t\"></span>");
        }
        let _ = write!(
            body,
            "<a href=\"?span={sid}#s-{sid}\"><i>{}</i> {}</a>",
            Esc(&s.service_name),
            Esc(&s.span.name)
        );
        if err {
            body.push_str(" <span class=\"errmark\">error</span>");
        }
        if p.orphan {
            body.push_str(" <span class=\"badge broken\" title=\"its parent span did not arrive\">orphan</span>");
        }
        body.push_str("</span><span class=\"b\">");
        // Queue time: a dotted stretch from the producer's end to this consumer's start, with
        // its figure over it (in the bar column, where the eye follows the time).
        if let Some((producer, wait)) = tree.queue_time(i) {
            let pend = tree.spans[producer]
                .span
                .end_time_unix_nano
                .saturating_sub(tree.start_unix_nanos) as f64
                * 100.0
                / total;
            if wait > 0 {
                let _ = write!(
                    body,
                    "<s style=\"left:{pend:.3}%;width:{:.3}%\" title=\"in the queue\"></s>",
                    wait as f64 * 100.0 / total
                );
            }
            let _ = write!(
                body,
                "<span class=\"queue\" style=\"left:{:.3}%\" data-testid=\"queue-time\">queued {}</span>",
                pend.min(60.0),
                Esc(&queue_text(wait))
            );
        }
        let left = start * 100.0 / total;
        let width = (dur as f64 * 100.0 / total).max(0.15);
        // The duration sits right of the bar, or left of it when the bar ends near the edge.
        let label = if left + width > 80.0 {
            format!(
                "<em class=\"before\" style=\"right:{:.3}%\">{}</em>",
                100.0 - left,
                html::duration(dur)
            )
        } else {
            format!(
                "<em style=\"left:{:.3}%\">{}</em>",
                left + width,
                html::duration(dur)
            )
        };
        let _ = write!(
            body,
            "<b style=\"left:{left:.3}%;width:{width:.3}%\"></b>{label}</span></div>"
        );
    }
    body.push_str("</div>");
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
