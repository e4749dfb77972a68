//! Evaluation: span counts in their windows (through the ingest tap), `for`, `keep_firing_for`,
//! metric values from RED figures, and flows in and out of order, with and without reset.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

mod common;

use common::{b, export, kv, span};
use opentelemetry_proto::tonic::common::v1::any_value;
use throughline_alerts::source::MetricQuery;
use throughline_alerts::{
    AlertSource, Delivery, Engine, NoticeKind, RedWindow, SpanTap, State, parse,
};
use throughline_store::{EncodedTraces, LATENCY_BUCKETS_MS, LatencyHistogram, TraceId};

const S: u64 = 1_000_000_000;
/// A fixed "now" for the tests, in whole seconds.
const T0: u64 = 1_800_000_000 * S;

/// Span counts from the tap; RED figures and integrity set by the test.
#[derive(Default)]
struct Fake {
    tap: Option<Arc<SpanTap>>,
    counts: Mutex<HashMap<usize, u64>>,
    red: Mutex<RedWindow>,
}

impl AlertSource for Fake {
    fn span_count(&self, rule: usize, start: u64, end: u64) -> u64 {
        match &self.tap {
            Some(t) => t.count(rule, start, end),
            None => self.counts.lock().unwrap().get(&rule).copied().unwrap_or(0),
        }
    }
    fn recent_traces(&self, rule: usize) -> Vec<(TraceId, u64)> {
        self.tap.as_ref().map_or(Vec::new(), |t| t.recent(rule))
    }
    fn red(&self, _: &str, _: Option<&str>, _: u64, _: u64) -> Result<RedWindow, String> {
        Ok(self.red.lock().unwrap().clone())
    }
    fn integrity(&self, _: u64, _: u64) -> Result<(u64, u64), String> {
        Ok((9, 1))
    }
    fn otlp_metric(&self, _: &MetricQuery<'_>) -> Result<Option<f64>, String> {
        Err("no metrics".into())
    }
}

fn state(engine: &Engine, rule: usize) -> State {
    engine.states()[rule].state
}

#[test]
fn span_rules_count_matching_spans_inside_their_window() {
    let rules = parse(
        "groups: [{name: g, interval: 1s, rules: [
          {alert: Failed, spans: {service: checkout, where: 'checkout.failed = true'}, window: 10s, above: 2},
          {alert: Waited, spans: {service: checkout, where: 'db.connection.pool.wait_time_ms > 1000 and deployment.environment = prod'}, window: 10s, above: 0},
          {alert: Errors, spans: {status: error, operation: 'POST /orders'}, window: 10s, above: 0}]}]",
    )
    .unwrap();
    let tap = Arc::new(SpanTap::new(&rules));
    let engine = Engine::new(
        rules,
        Arc::new(Fake {
            tap: Some(tap.clone()),
            ..Fake::default()
        }),
    );
    let failed = |end| {
        span(
            "POST /orders",
            end,
            vec![kv("checkout.failed", b(true))],
            true,
        )
    };
    let request = export(
        "checkout",
        vec![
            failed(T0 - 15 * S), // outside the window at T0
            failed(T0 - 5 * S),
            failed(T0 - 3 * S),
            span(
                "POST /orders",
                T0 - 2 * S,
                vec![kv("checkout.failed", b(false))],
                false,
            ),
            span(
                "POST /orders",
                T0 - 2 * S,
                vec![kv(
                    "db.connection.pool.wait_time_ms",
                    any_value::Value::IntValue(1500),
                )],
                false,
            ),
            span(
                "POST /orders",
                T0 - 2 * S,
                vec![kv(
                    "db.connection.pool.wait_time_ms",
                    any_value::Value::IntValue(900),
                )],
                false,
            ),
        ],
    );
    let hits = tap.observe(&request);
    // Another service's failed checkouts do not count for `service: checkout`.
    let other = tap.observe(&export("catalog", vec![failed(T0 - S)]));
    tap.commit(hits, T0);
    tap.commit(other, T0);
    assert_eq!(
        engine.value(0, T0),
        Ok(Some(2.0)),
        "two failed checkouts in 10 s"
    );
    assert_eq!(engine.value(1, T0), Ok(Some(1.0)), "one wait over 1000 ms");
    // Error spans of any service in the window (the one 15 s old was dropped at once).
    assert_eq!(engine.value(2, T0), Ok(Some(3.0)));
    // Two is not above two; a third inside the window fires it, and it resolves once the
    // window has moved past them.
    assert!(engine.evaluate_all(T0).iter().all(|n| n.rule != 0));
    tap.commit(tap.observe(&export("checkout", vec![failed(T0)])), T0 + S);
    let fired = engine.evaluate_all(T0 + S);
    assert!(
        fired
            .iter()
            .any(|n| n.rule == 0 && n.kind == NoticeKind::Firing),
        "{fired:?}"
    );
    // At +6 s the one 5 s old has left the window: two again, not above two.
    assert_eq!(engine.value(0, T0 + 6 * S), Ok(Some(2.0)));
    let resolved = engine.evaluate_all(T0 + 6 * S);
    assert!(
        resolved
            .iter()
            .any(|n| n.rule == 0 && n.kind == NoticeKind::Resolved)
    );
    assert_eq!(state(&engine, 0), State::Resolved);
    assert_eq!(tap.recent(0)[0].0, TraceId([7; 16]));
}

#[test]
fn a_span_rule_matches_an_export_read_in_place_as_its_decoded_form() {
    use prost::Message;
    let rules = parse(
        "groups: [{name: g, interval: 1s, rules: [
          {alert: Failed, spans: {service: checkout, where: 'checkout.failed = true'}, window: 10s, above: 2},
          {alert: Waited, spans: {where: 'db.connection.pool.wait_time_ms > 1000 and deployment.environment = prod'}, window: 10s, above: 0},
          {alert: Missing, spans: {where: 'checkout.reason != full'}, window: 10s, above: 0},
          {alert: Errors, spans: {status: error, operation: 'POST /orders'}, window: 10s, above: 0}]}]",
    )
    .unwrap();
    let tap = SpanTap::new(&rules);
    let wait = |ms| {
        kv(
            "db.connection.pool.wait_time_ms",
            any_value::Value::IntValue(ms),
        )
    };
    let request = export(
        "checkout",
        vec![
            span(
                "POST /orders",
                T0,
                vec![kv("checkout.failed", b(true))],
                true,
            ),
            span(
                "POST /orders",
                T0,
                vec![kv("checkout.failed", b(false))],
                false,
            ),
            span("GET /orders", T0, vec![wait(1500)], false),
            span("GET /orders", T0, vec![wait(900)], true),
            span(
                "GET /orders",
                T0,
                vec![kv(
                    "checkout.reason",
                    any_value::Value::StringValue("full".into()),
                )],
                false,
            ),
        ],
    );
    let decoded = tap.observe(&request);
    let bytes = request.encode_to_vec();
    let in_place = tap.observe_encoded(&EncodedTraces::decode(bytes.into()).expect("valid"));
    // Failed 1, Waited 1 (its environment from the resource), Missing 4, Errors 1.
    assert_eq!(decoded.len(), 1 + 1 + 4 + 1, "{decoded:?}");
    assert_eq!(in_place, decoded);
}

#[test]
fn for_keeps_a_rule_pending_and_a_flapping_condition_never_fires() {
    let rules = parse(
        "groups: [{name: g, rules: [{alert: A, spans: {}, window: 1m, above: 0, for: 30s}]}]",
    )
    .unwrap();
    let fake = Arc::new(Fake::default());
    let engine = Engine::new(rules, fake.clone());
    let set = |n| {
        fake.counts.lock().unwrap().insert(0, n);
    };
    // Flapping every 10 s for two minutes: pending, inactive, pending… never firing.
    for step in 0..12u64 {
        set(step % 2);
        let notices = engine.evaluate_all(T0 + step * 10 * S);
        assert!(notices.is_empty(), "{step}: {notices:?}");
        let want = if step % 2 == 1 {
            State::Pending
        } else {
            State::Inactive
        };
        assert_eq!(state(&engine, 0), want, "{step}");
    }
    // Held for 30 s: fires at the evaluation 30 s after it began.
    set(0);
    engine.evaluate_all(T0 + 190 * S);
    set(1);
    let start = T0 + 200 * S;
    for (offset, want) in [
        (0, State::Pending),
        (20, State::Pending),
        (30, State::Firing),
    ] {
        engine.evaluate_all(start + offset * S);
        assert_eq!(state(&engine, 0), want, "+{offset}s");
    }
    let st = &engine.states()[0];
    assert_eq!(st.active_at, Some(start));
    assert_eq!(st.firing_since, Some(start + 30 * S));
    let kinds: Vec<State> = st.history.iter().map(|t| t.state).collect();
    assert_eq!(kinds.last(), Some(&State::Firing));
}

#[test]
fn keep_firing_for_rides_out_a_short_gap() {
    let rules = parse(
        "groups: [{name: g, rules: [{alert: A, spans: {}, window: 1m, above: 0, keep_firing_for: 20s}]}]",
    )
    .unwrap();
    let fake = Arc::new(Fake::default());
    let engine = Engine::new(rules, fake.clone());
    let set = |n| {
        fake.counts.lock().unwrap().insert(0, n);
    };
    set(3);
    assert_eq!(engine.evaluate_all(T0).len(), 1);
    set(0);
    for offset in [10, 19] {
        assert!(engine.evaluate_all(T0 + offset * S).is_empty());
        assert_eq!(state(&engine, 0), State::Firing, "+{offset}s");
    }
    // Back before the 20 s ran out: still the same firing, no new notification.
    set(1);
    assert!(engine.evaluate_all(T0 + 25 * S).is_empty());
    set(0);
    assert!(engine.evaluate_all(T0 + 30 * S).is_empty());
    let resolved = engine.evaluate_all(T0 + 50 * S);
    assert_eq!(resolved[0].kind, NoticeKind::Resolved);
    assert_eq!(engine.states()[0].resolved_at, Some(T0 + 50 * S));
}

fn hist(ms: &[f64]) -> LatencyHistogram {
    let mut h = LatencyHistogram {
        bucket_counts: vec![0; LATENCY_BUCKETS_MS.len() + 1],
        count: 0,
        sum_ms: 0.0,
    };
    for v in ms {
        let i = LATENCY_BUCKETS_MS.partition_point(|b| b < v);
        h.bucket_counts[i] += 1;
        h.count += 1;
        h.sum_ms += v;
    }
    h
}

#[test]
fn metric_rules_read_the_span_metrics() {
    let rules = parse(
        "groups: [{name: g, rules: [
          {alert: Err, metric: error_rate, service: api, window: 5m, above: 0.05},
          {alert: Rate, metric: request_rate, service: api, window: 100s, above: 1},
          {alert: Slow, metric: p95, service: api, operation: 'GET /', window: 5m, above: 500},
          {alert: Whole, metric: whole_trace_share, window: 5m, below: 0.95},
          {alert: Age, metric: otlp, name: queue.age, aggregation: max, window: 5m, above: 300}]}]",
    )
    .unwrap();
    let fake = Arc::new(Fake::default());
    let engine = Engine::new(rules, fake.clone());
    // No calls: no error rate (not zero), nothing fires.
    assert_eq!(engine.value(0, T0), Ok(None));
    let mut latencies = vec![20.0; 90];
    latencies.extend([900.0; 10]);
    *fake.red.lock().unwrap() = RedWindow {
        calls: 200,
        errors: 20,
        latency: hist(&latencies),
    };
    assert_eq!(engine.value(0, T0), Ok(Some(0.1)));
    assert_eq!(engine.value(1, T0), Ok(Some(2.0)));
    let p95 = engine.value(2, T0).unwrap().unwrap();
    assert!((800.0..=1000.0).contains(&p95), "{p95}");
    assert_eq!(engine.value(3, T0), Ok(Some(0.9)));
    let fired: Vec<usize> = engine.evaluate_all(T0).iter().map(|n| n.rule).collect();
    assert_eq!(fired, vec![0, 1, 2, 3]);
    // The metric the store cannot answer yet: an error on the rule, its state left alone.
    let st = &engine.states()[4];
    assert_eq!(st.state, State::Inactive);
    assert!(
        st.error
            .as_deref()
            .is_some_and(|e| e.contains("no metrics"))
    );
}

const FLOW: &str = "groups: [{name: g, rules: [
  {alert: Slow, spans: {}, window: 1m, above: 0},
  {alert: Pool, spans: {}, window: 1m, above: 0},
  {alert: Failed, spans: {}, window: 1m, above: 0},
  {alert: Cascade, flow: [Slow, Pool, Failed], within: 10m RESET}]}]";

struct Flow {
    fake: Arc<Fake>,
    engine: Engine,
}

impl Flow {
    fn new(reset: bool) -> Self {
        let text = FLOW.replace("RESET", if reset { ", reset: on_resolve" } else { "" });
        let fake = Arc::new(Fake::default());
        let engine = Engine::new(parse(&text).unwrap(), fake.clone());
        Self { fake, engine }
    }
    /// Sets which stages hold (by rule index) and evaluates at `secs` after T0.
    fn at(&self, secs: u64, holding: &[usize]) -> State {
        for i in 0..3 {
            self.fake
                .counts
                .lock()
                .unwrap()
                .insert(i, u64::from(holding.contains(&i)));
        }
        self.engine.evaluate_all(T0 + secs * S);
        state(&self.engine, 3)
    }
}

#[test]
fn a_flow_fires_when_its_stages_fire_in_order() {
    let f = Flow::new(false);
    assert_eq!(f.at(0, &[0]), State::Inactive);
    assert_eq!(f.at(60, &[0, 1]), State::Inactive);
    assert_eq!(f.engine.states()[3].value, Some(2.0), "two of three stages");
    assert_eq!(f.at(120, &[0, 1, 2]), State::Firing);
    // It holds while a stage fires, and resolves when none does.
    assert_eq!(f.at(180, &[2]), State::Firing);
    assert_eq!(f.at(240, &[]), State::Resolved);
}

#[test]
fn stages_out_of_order_do_not_fire_a_flow() {
    let f = Flow::new(false);
    // Failed first, then Pool, then Slow: every stage fires, in the wrong order.
    assert_eq!(f.at(0, &[2]), State::Inactive);
    assert_eq!(f.at(10, &[2, 1]), State::Inactive);
    assert_eq!(f.at(20, &[2, 1, 0]), State::Inactive);
    assert_eq!(f.at(30, &[2, 1, 0]), State::Inactive);
    // Pool and Failed firing again after Slow began: now in order.
    assert_eq!(f.at(40, &[0]), State::Inactive);
    assert_eq!(f.at(50, &[0, 1]), State::Inactive);
    assert_eq!(f.at(60, &[0, 1, 2]), State::Firing);
}

#[test]
fn a_stage_that_resolves_resets_the_flow_only_when_the_rule_says_so() {
    // Slow fires and resolves before Pool fires.
    let steps: [(u64, &[usize]); 4] = [(0, &[0]), (10, &[]), (20, &[1]), (30, &[1, 2])];
    let keep = Flow::new(false);
    let reset = Flow::new(true);
    for (t, holding) in steps {
        keep.at(t, holding);
        reset.at(t, holding);
    }
    assert_eq!(
        state(&keep.engine, 3),
        State::Firing,
        "without reset the match stands"
    );
    assert_eq!(
        state(&reset.engine, 3),
        State::Inactive,
        "reset: on_resolve starts over"
    );
}

#[test]
fn a_flow_not_completed_within_its_time_starts_over() {
    let f = Flow::new(false);
    f.at(0, &[0]);
    f.at(60, &[0, 1]);
    // Failed comes 11 minutes after Slow began: too late for this match, and Slow has been
    // firing since before, so no new match begins until Slow fires again.
    assert_eq!(f.at(660, &[0, 1, 2]), State::Inactive);
    assert_eq!(f.at(720, &[1, 2]), State::Inactive);
    assert_eq!(f.at(780, &[0]), State::Inactive);
    assert_eq!(f.at(790, &[0, 1]), State::Inactive);
    assert_eq!(f.at(800, &[0, 1, 2]), State::Firing);
}

#[test]
fn a_status_names_its_state_value_and_annotations() {
    let rules = parse(
        "groups: [{name: g, rules: [{alert: A, spans: {service: checkout, where: 'checkout.failed = true'}, window: 1m, above: 1,
          labels: {severity: page}, annotations: {summary: '{{ $value }} failures ({{ $labels.severity }})'}}]}]",
    )
    .unwrap();
    let fake = Arc::new(Fake::default());
    fake.counts.lock().unwrap().insert(0, 3);
    let alerts = throughline_alerts::Alerts::with_source(
        rules,
        fake,
        Delivery {
            external_url: "http://apm".into(),
            ..Delivery::default()
        },
    );
    alerts.evaluate_all(T0);
    let s = &alerts.statuses()[0];
    assert_eq!(s.state, State::Firing);
    assert_eq!(s.value, Some(3.0));
    assert_eq!(s.annotations["summary"], "3 failures (page)");
    assert!(
        s.generator_url.starts_with("http://apm/search?start="),
        "{}",
        s.generator_url
    );
    assert!(
        s.generator_url.contains("&service=checkout"),
        "{}",
        s.generator_url
    );
    assert!(
        s.generator_url.contains("&tags=checkout.failed%3Dtrue"),
        "{}",
        s.generator_url
    );
    assert_eq!(s.firing_since.as_deref(), Some("2027-01-15T08:00:00Z"));
}
