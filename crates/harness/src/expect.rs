//! The one trace-expectation checker: the hops and span kinds a whole trace must have, judged
//! on top of the store's own integrity verdict (root present, every parent arrived: the store
//! decides that, once a trace has settled; this module never re-derives it).
//!
//! A trace is judged by what it is: one whose root answered an HTTP error (a rejected request,
//! `http.response.status_code` ≥ 400) is whole without the downstream hops, since nothing went
//! downstream. Every other trace must hold every expected [`Hop`].

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use serde_json::Value;
use throughline_jaeger::{IntegrityReport, Span, Trace};

/// A span of a service, optionally of one kind (`onboarding-api/producer`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanPattern {
    pub service: String,
    /// `server`, `client`, `producer`, `consumer` or `internal`; any when `None`.
    pub kind: Option<String>,
}

impl SpanPattern {
    pub fn service(service: impl Into<String>) -> Self {
        Self {
            service: service.into(),
            kind: None,
        }
    }
    pub fn of_kind(service: impl Into<String>, kind: &str) -> Self {
        Self {
            service: service.into(),
            kind: Some(kind.to_owned()),
        }
    }
    fn matches(&self, trace: &Trace, span: &Span) -> bool {
        let kind = match span.kind() {
            "" => "internal",
            kind => kind,
        };
        trace.service_of(span) == self.service && self.kind.as_deref().is_none_or(|k| kind == k)
    }
}

impl fmt::Display for SpanPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Some(kind) => write!(f, "{}/{kind}", self.service),
            None => f.write_str(&self.service),
        }
    }
}

/// A span matching `to` whose parent (or a link) is a span matching `from`. Between two
/// services with no kinds, a hop is any reference from a span of one to a span of the other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    pub from: SpanPattern,
    pub to: SpanPattern,
}

impl Hop {
    pub fn new(from: SpanPattern, to: SpanPattern) -> Self {
        Self { from, to }
    }
}

impl fmt::Display for Hop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {}", self.from, self.to)
    }
}

/// A hop the command line could not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{input:?} is not a hop like onboarding-api:onboarding-lambda (or api/producer:worker/consumer)"
)]
pub struct BadHop {
    pub input: String,
}

impl FromStr for Hop {
    type Err = BadHop;

    /// `from:to`, `from,to` or (quoted) `from->to`; each side `service` or `service/kind`.
    fn from_str(input: &str) -> Result<Self, BadHop> {
        let bad = || BadHop {
            input: input.to_owned(),
        };
        let (from, to) = input
            .split_once("->")
            .or_else(|| input.split_once(':'))
            .or_else(|| input.split_once(','))
            .ok_or_else(bad)?;
        let side = |s: &str| -> Result<SpanPattern, BadHop> {
            let s = s.trim();
            let (service, kind) = match s.split_once('/') {
                Some((service, kind)) => (service.trim(), Some(kind.trim())),
                None => (s, None),
            };
            if service.is_empty() || kind.is_some_and(str::is_empty) {
                return Err(bad());
            }
            if let Some(k) = kind
                && !["server", "client", "producer", "consumer", "internal"].contains(&k)
            {
                return Err(bad());
            }
            Ok(SpanPattern {
                service: service.to_owned(),
                kind: kind.map(str::to_owned),
            })
        };
        Ok(Hop {
            from: side(from)?,
            to: side(to)?,
        })
    }
}

/// What a whole trace of a system must have.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceExpectation {
    /// Services every trace must touch.
    pub services: Vec<String>,
    /// Hops every trace that went downstream must hold. The last one's repeated `to` spans under
    /// one `from` span are counted as redeliveries.
    pub hops: Vec<Hop>,
    /// Hops a trace must hold by the name of its root span (a system whose traces differ by
    /// what started them: the shop's `user_journey.browse` never reaches the checkout). When
    /// not empty, a root named in none of them is a problem. Not counted as redeliveries.
    pub by_root: Vec<(String, Vec<Hop>)>,
}

impl TraceExpectation {
    /// No hop expected: the store's integrity alone.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty() && self.hops.is_empty() && self.by_root.is_empty()
    }

    /// `a → b → c` for the summary; a service with several next services shows them in braces
    /// (`api → {files, checks, mail → partner}`). Hops within one service are left out.
    pub fn path(&self) -> String {
        // A system whose hops all depend on the root (the shop's journeys) shows its longest.
        let longest = self
            .by_root
            .iter()
            .map(|(_, hops)| hops)
            .max_by_key(|hops| hops.len());
        let hops = match longest {
            Some(hops) if self.hops.is_empty() => hops,
            _ => &self.hops,
        };
        let mut next: Vec<(&str, Vec<&str>)> = Vec::new();
        for hop in hops {
            let (from, to) = (hop.from.service.as_str(), hop.to.service.as_str());
            if from == to {
                continue;
            }
            match next.iter_mut().find(|(f, _)| *f == from) {
                Some((_, tos)) if !tos.contains(&to) => tos.push(to),
                Some(_) => {}
                None => next.push((from, vec![to])),
            }
        }
        let reached = |s: &str| next.iter().any(|(_, tos)| tos.contains(&s));
        let mut seen = Vec::new();
        let roots: Vec<&str> = next
            .iter()
            .map(|(f, _)| *f)
            .filter(|f| !reached(f))
            .collect();
        let mut out: Vec<String> = roots
            .iter()
            .map(|r| render_path(r, &next, &mut seen))
            .collect();
        if out.is_empty() {
            // Only hops within one service, or a cycle: name the services in order.
            out = hops
                .iter()
                .flat_map(|h| [h.from.service.clone(), h.to.service.clone()])
                .fold(Vec::new(), |mut names, s| {
                    if !names.contains(&s) {
                        names.push(s);
                    }
                    names
                });
            return out.join(" → ");
        }
        out.join("; ")
    }
}

fn render_path<'a>(
    node: &'a str,
    next: &[(&'a str, Vec<&'a str>)],
    seen: &mut Vec<&'a str>,
) -> String {
    if seen.contains(&node) {
        return node.to_owned();
    }
    seen.push(node);
    let tos = next
        .iter()
        .find(|(f, _)| *f == node)
        .map(|(_, t)| t.clone())
        .unwrap_or_default();
    match tos.as_slice() {
        [] => node.to_owned(),
        [one] => format!("{node} → {}", render_path(one, next, seen)),
        many => {
            let inner: Vec<String> = many.iter().map(|t| render_path(t, next, seen)).collect();
            format!("{node} → {{{}}}", inner.join(", "))
        }
    }
}

/// The verdict on one trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Whole and holding every expected hop (or a rejected request, whole as it is).
    Whole,
    /// The store has not judged it yet: spans may still arrive.
    Settling,
    /// Whole so far, but the last delivery failed: a redelivery may yet come.
    Retrying,
    /// Missing spans or hops.
    Broken,
}

/// A trace's verdict with its reasons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Judgement {
    pub verdict: Verdict,
    pub problems: Vec<String>,
    /// The root answered an HTTP error: no downstream hop was expected.
    pub rejected: bool,
    /// Deliveries beyond the first on the last hop.
    pub redeliveries: u64,
}

impl Judgement {
    fn of(verdict: Verdict, problems: Vec<String>) -> Self {
        Self {
            verdict,
            problems,
            rejected: false,
            redeliveries: 0,
        }
    }
}

/// Judges a trace: the store's verdict first, then (when `trace` is given) the expected hops.
/// `trace` may be `None` when `expected` is empty.
pub fn judge(
    report: &IntegrityReport,
    trace: Option<&Trace>,
    expected: &TraceExpectation,
) -> Judgement {
    match report.integrity.as_str() {
        "whole" => {}
        "settling" => return Judgement::of(Verdict::Settling, Vec::new()),
        other => {
            let mut problems = report.problems.clone();
            if problems.is_empty() {
                problems.push(format!("integrity is {other}"));
            }
            return Judgement::of(Verdict::Broken, problems);
        }
    }
    if expected.is_empty() {
        return Judgement::of(Verdict::Whole, Vec::new());
    }
    let Some(trace) = trace else {
        return Judgement::of(Verdict::Broken, vec!["trace not in the collector".into()]);
    };
    judge_shape(trace, expected)
}

/// The hop half of [`judge`], for a trace the store judged whole.
pub fn judge_shape(trace: &Trace, expected: &TraceExpectation) -> Judgement {
    let root = trace.spans.iter().find(|s| s.parent_span_id().is_none());
    let rejected = root.is_some_and(|r| status_code(r).is_some_and(|c| c >= 400));
    if rejected {
        return Judgement {
            rejected: true,
            ..Judgement::of(Verdict::Whole, Vec::new())
        };
    }
    let mut problems = Vec::new();
    for service in &expected.services {
        if !trace.spans.iter().any(|s| trace.service_of(s) == service) {
            problems.push(format!("expected service {service} is missing"));
        }
    }
    let mut redeliveries = 0;
    let mut retrying = false;
    for (i, hop) in expected.hops.iter().enumerate() {
        let from: Vec<&Span> = trace
            .spans
            .iter()
            .filter(|s| hop.from.matches(trace, s))
            .collect();
        let to: Vec<&Span> = trace
            .spans
            .iter()
            .filter(|s| {
                hop.to.matches(trace, s)
                    && s.references
                        .iter()
                        .any(|r| from.iter().any(|f| f.span_id == r.span_id))
            })
            .collect();
        if to.is_empty() {
            problems.push(format!("expected hop {hop} is missing"));
            continue;
        }
        if i + 1 == expected.hops.len() {
            redeliveries = to.len() as u64 - 1;
            retrying = to.iter().all(|s| is_error(s));
        }
    }
    if !expected.by_root.is_empty() {
        let name = root.map_or("", |r| r.operation_name.as_str());
        match expected.by_root.iter().find(|(n, _)| n == name) {
            None => problems.push(format!("root span {name:?} is none the system starts")),
            Some((_, hops)) => {
                for hop in hops {
                    if !holds(trace, hop) {
                        problems.push(format!("expected hop {hop} is missing"));
                    }
                }
            }
        }
    }
    let verdict = if !problems.is_empty() {
        Verdict::Broken
    } else if retrying {
        Verdict::Retrying
    } else {
        Verdict::Whole
    };
    Judgement {
        verdict,
        problems,
        rejected: false,
        redeliveries,
    }
}

/// Whether some span matching `hop.to` refers to a span matching `hop.from`.
fn holds(trace: &Trace, hop: &Hop) -> bool {
    let from: Vec<&Span> = trace
        .spans
        .iter()
        .filter(|s| hop.from.matches(trace, s))
        .collect();
    trace.spans.iter().any(|s| {
        hop.to.matches(trace, s)
            && s.references
                .iter()
                .any(|r| from.iter().any(|f| f.span_id == r.span_id))
    })
}

/// The span's `error` tag (Jaeger's mark of an error status).
fn is_error(span: &Span) -> bool {
    match span
        .tag(throughline_jaeger::model::ERROR_TAG)
        .map(|t| &t.value)
    {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    }
}

fn status_code(span: &Span) -> Option<i64> {
    match &span.tag("http.response.status_code")?.value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn trace(spans: Value) -> Trace {
        serde_json::from_value(json!({"traceID": "t", "spans": spans,
            "processes": {"p1": {"serviceName": "api"}, "p2": {"serviceName": "worker"}}}))
        .expect("fixture")
    }
    fn span(id: &str, parent: Option<&str>, pid: &str, kind: &str, extra: Value) -> Value {
        let refs: Vec<Value> = parent
            .map(|p| json!({"refType": "CHILD_OF", "traceID": "t", "spanID": p}))
            .into_iter()
            .collect();
        let mut tags = vec![json!({"key": "span.kind", "type": "string", "value": kind})];
        if let Value::Array(more) = extra {
            tags.extend(more);
        }
        json!({"spanID": id, "operationName": id, "processID": pid, "references": refs, "tags": tags})
    }
    fn expected() -> TraceExpectation {
        TraceExpectation {
            services: Vec::new(),
            hops: vec![
                Hop::new(
                    SpanPattern::of_kind("api", "server"),
                    SpanPattern::of_kind("api", "producer"),
                ),
                Hop::new(
                    SpanPattern::of_kind("api", "producer"),
                    SpanPattern::of_kind("worker", "consumer"),
                ),
            ],
            by_root: Vec::new(),
        }
    }

    #[test]
    fn hops_by_root_name_are_required_of_that_root_only() {
        let to_worker = Hop::new(
            SpanPattern::of_kind("api", "client"),
            SpanPattern::of_kind("worker", "server"),
        );
        let expected = TraceExpectation {
            by_root: vec![
                ("browse".to_owned(), Vec::new()),
                ("buy".to_owned(), vec![to_worker]),
            ],
            ..TraceExpectation::default()
        };
        let root = |name: &str| {
            let mut s = span("r", None, "p1", "internal", json!([]));
            s["operationName"] = json!(name);
            s
        };
        let browse = trace(json!([root("browse")]));
        assert_eq!(judge_shape(&browse, &expected).verdict, Verdict::Whole);
        let buy = trace(json!([root("buy")]));
        let j = judge_shape(&buy, &expected);
        assert_eq!(j.verdict, Verdict::Broken);
        assert_eq!(
            j.problems,
            vec!["expected hop api/client -> worker/server is missing"]
        );
        let bought = trace(json!([
            root("buy"),
            span("c", Some("r"), "p1", "client", json!([])),
            span("w", Some("c"), "p2", "server", json!([])),
        ]));
        assert_eq!(judge_shape(&bought, &expected).verdict, Verdict::Whole);
        let other = trace(json!([root("sell")]));
        assert_eq!(
            judge_shape(&other, &expected).problems,
            vec!["root span \"sell\" is none the system starts"]
        );
        assert_eq!(expected.path(), "api → worker");
    }

    #[test]
    fn hops_need_no_shell_quoting() {
        let plain: Hop = "onboarding-api:onboarding-lambda".parse().expect("colon");
        assert_eq!(
            plain,
            "onboarding-api,onboarding-lambda".parse().expect("comma")
        );
        assert_eq!(
            plain,
            "onboarding-api -> onboarding-lambda"
                .parse()
                .expect("arrow")
        );
        assert_eq!(plain.from, SpanPattern::service("onboarding-api"));
        let kinds: Hop = "api/producer:worker/consumer".parse().expect("kinds");
        assert_eq!(kinds.to, SpanPattern::of_kind("worker", "consumer"));
        assert!("api".parse::<Hop>().is_err());
        assert!(":worker".parse::<Hop>().is_err());
        assert!("api/sideways:worker".parse::<Hop>().is_err());
    }

    #[test]
    fn a_whole_trace_holds_every_hop_and_counts_redeliveries() {
        let t = trace(json!([
            span("s", None, "p1", "server", json!([])),
            span("p", Some("s"), "p1", "producer", json!([])),
            span(
                "c1",
                Some("p"),
                "p2",
                "consumer",
                json!([{"key": "error", "value": true}])
            ),
            span("c2", Some("p"), "p2", "consumer", json!([])),
        ]));
        let j = judge_shape(&t, &expected());
        assert_eq!((j.verdict, j.redeliveries), (Verdict::Whole, 1), "{j:?}");
    }

    #[test]
    fn a_failed_last_delivery_is_retrying_and_a_missing_hop_is_named() {
        let failed = trace(json!([
            span("s", None, "p1", "server", json!([])),
            span("p", Some("s"), "p1", "producer", json!([])),
            span(
                "c1",
                Some("p"),
                "p2",
                "consumer",
                json!([{"key": "error", "value": true}])
            ),
        ]));
        assert_eq!(judge_shape(&failed, &expected()).verdict, Verdict::Retrying);
        let no_worker = trace(json!([
            span("s", None, "p1", "server", json!([])),
            span("p", Some("s"), "p1", "producer", json!([])),
        ]));
        let j = judge_shape(&no_worker, &expected());
        assert_eq!(j.verdict, Verdict::Broken);
        assert_eq!(
            j.problems,
            ["expected hop api/producer -> worker/consumer is missing"]
        );
    }

    #[test]
    fn a_rejected_request_is_whole_without_the_downstream_hop() {
        let rejected = trace(json!([span(
            "s",
            None,
            "p1",
            "server",
            json!([{"key": "http.response.status_code", "type": "int64", "value": 400}])
        )]));
        let j = judge_shape(&rejected, &expected());
        assert!(j.rejected && j.verdict == Verdict::Whole, "{j:?}");
        let accepted_alone = trace(json!([span(
            "s",
            None,
            "p1",
            "server",
            json!([{"key": "http.response.status_code", "type": "int64", "value": 200}])
        )]));
        assert_eq!(
            judge_shape(&accepted_alone, &expected()).verdict,
            Verdict::Broken
        );
    }

    #[test]
    fn the_stores_verdict_comes_first() {
        let report = |integrity: &str, problems: Vec<String>| IntegrityReport {
            trace_id: "t".into(),
            integrity: integrity.into(),
            problems,
            root_service: None,
            root_name: None,
            services: Vec::new(),
            span_count: 1,
            start_time: 0,
            duration: 0,
            has_error: false,
        };
        let none = TraceExpectation::default();
        assert_eq!(
            judge(&report("settling", vec![]), None, &none).verdict,
            Verdict::Settling
        );
        let broken = judge(
            &report("incomplete", vec!["missing root span".into()]),
            None,
            &none,
        );
        assert_eq!(
            (broken.verdict, broken.problems),
            (Verdict::Broken, vec!["missing root span".to_owned()])
        );
        assert_eq!(
            judge(&report("whole", vec![]), None, &none).verdict,
            Verdict::Whole
        );
    }

    #[test]
    fn the_path_shows_a_chain_and_a_fan_out() {
        assert_eq!(expected().path(), "api → worker");
        let kind = |s: &str, k: &str| SpanPattern::of_kind(s, k);
        let fan_out = TraceExpectation {
            hops: vec![
                Hop::new(kind("api", "server"), kind("api", "producer")),
                Hop::new(kind("api", "producer"), kind("files", "consumer")),
                Hop::new(kind("api", "producer"), kind("checks", "consumer")),
                Hop::new(kind("api", "producer"), kind("mail", "consumer")),
                Hop::new(kind("mail", "client"), kind("partner", "server")),
            ],
            ..TraceExpectation::default()
        };
        assert_eq!(fan_out.path(), "api → {files, checks, mail → partner}");
    }
}
