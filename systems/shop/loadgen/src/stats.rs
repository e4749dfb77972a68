//! What the load generator has done: requests, errors and latency percentiles by journey, by
//! step and by demo phase (with a uniform sample of each phase's trace ids, to read back), for
//! `GET /api/stats`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;
use rand::Rng;
use serde_json::{Value, json};
use shop_db::Phase;

/// Trace ids kept per phase at most (a uniform sample of its journeys).
pub const TRACE_SAMPLE: usize = 100;

/// The phases in the demo's order.
const PHASES: [Phase; 5] = [
    Phase::Ramp,
    Phase::Peak,
    Phase::Degradation,
    Phase::Critical,
    Phase::Normal,
];

#[derive(Debug)]
struct Entry {
    count: u64,
    errors: u64,
    latency: Histogram<u64>,
}

impl Entry {
    fn new() -> Self {
        Self {
            count: 0,
            errors: 0,
            // 1 µs to 10 min, 3 significant digits: constant bounds, always valid.
            latency: Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds"),
        }
    }

    fn record(&mut self, ok: bool, took: Duration) {
        self.count += 1;
        if !ok {
            self.errors += 1;
        }
        let _ = self.latency.record(took.as_micros().max(1) as u64);
    }

    fn json(&self) -> Value {
        let ms = |q: f64| self.latency.value_at_quantile(q) as f64 / 1000.0;
        json!({
            "requests": self.count,
            "errors": self.errors,
            "latency_ms": {"p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99), "max": self.latency.max() as f64 / 1000.0},
        })
    }
}

/// One phase's journeys.
#[derive(Debug)]
struct PhaseEntry {
    all: Entry,
    /// Failures the demo causes on purpose: a checkout refused (503, the pool exhausted) in the
    /// critical phase, counted under the phase its journey began in.
    expected_errors: u64,
    journeys: BTreeMap<&'static str, Entry>,
    trace_ids: Vec<String>,
}

#[derive(Debug, Default)]
struct Tables {
    journeys: BTreeMap<&'static str, Entry>,
    steps: BTreeMap<&'static str, Entry>,
    phases: BTreeMap<&'static str, PhaseEntry>,
    skipped: u64,
}

/// One finished journey, as the stats count it.
#[derive(Debug, Clone, Copy)]
pub struct JourneyRecord<'a> {
    pub journey: &'static str,
    /// The demo's phase when the journey started.
    pub phase: Phase,
    pub ok: bool,
    /// A failure the phase causes on purpose (see [`PhaseEntry`]).
    pub expected_failure: bool,
    pub took: Duration,
    pub trace_id: &'a str,
}

/// The counters (the lock is never held across an await).
#[derive(Debug, Default)]
pub struct Stats {
    tables: Mutex<Tables>,
}

impl Stats {
    fn with<R>(&self, f: impl FnOnce(&mut Tables) -> R) -> R {
        f(&mut self.tables.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn record_journey(&self, r: JourneyRecord<'_>) {
        let slot = rand::rng().random::<u64>();
        self.with(|t| {
            t.journeys
                .entry(r.journey)
                .or_insert_with(Entry::new)
                .record(r.ok, r.took);
            let phase = t
                .phases
                .entry(r.phase.as_str())
                .or_insert_with(|| PhaseEntry {
                    all: Entry::new(),
                    expected_errors: 0,
                    journeys: BTreeMap::new(),
                    trace_ids: Vec::new(),
                });
            phase.all.record(r.ok, r.took);
            phase
                .journeys
                .entry(r.journey)
                .or_insert_with(Entry::new)
                .record(r.ok, r.took);
            if !r.ok && r.expected_failure {
                phase.expected_errors += 1;
            }
            // Reservoir sampling: each of the phase's journeys kept with equal chance.
            let seen = phase.all.count;
            if phase.trace_ids.len() < TRACE_SAMPLE {
                phase.trace_ids.push(r.trace_id.to_owned());
            } else if let Ok(i) = usize::try_from(slot % seen)
                && i < TRACE_SAMPLE
            {
                phase.trace_ids[i] = r.trace_id.to_owned();
            }
        });
    }

    pub fn record_step(&self, step: &'static str, ok: bool, took: Duration) {
        self.with(|t| {
            t.steps
                .entry(step)
                .or_insert_with(Entry::new)
                .record(ok, took)
        });
    }

    /// A journey the traffic did not start because too many were in flight.
    pub fn record_skipped(&self) {
        self.with(|t| t.skipped += 1);
    }

    /// Every counter back to zero.
    pub fn reset(&self) {
        self.with(|t| *t = Tables::default());
    }

    /// The whole table as JSON.
    pub fn snapshot(&self) -> Value {
        self.with(|t| {
            let requests: u64 = t.steps.values().map(|e| e.count).sum();
            let errors: u64 = t.steps.values().map(|e| e.errors).sum();
            let journeys: serde_json::Map<String, Value> = t
                .journeys
                .iter()
                .map(|(k, e)| ((*k).to_owned(), e.json()))
                .collect();
            let steps: serde_json::Map<String, Value> = t
                .steps
                .iter()
                .map(|(k, e)| ((*k).to_owned(), e.json()))
                .collect();
            let mut unexpected_errors = 0;
            let phases: Vec<Value> = PHASES
                .iter()
                .filter_map(|p| Some((p.as_str(), t.phases.get(p.as_str())?)))
                .map(|(name, e)| {
                    unexpected_errors += e.all.errors - e.expected_errors;
                    let mut row = e.all.json();
                    row["phase"] = json!(name);
                    row["expected_errors"] = json!(e.expected_errors);
                    row["journeys"] = e
                        .journeys
                        .iter()
                        .map(|(k, e)| ((*k).to_owned(), e.json()))
                        .collect::<serde_json::Map<_, _>>()
                        .into();
                    row["trace_ids"] = json!(e.trace_ids);
                    row
                })
                .collect();
            json!({
                "requests": requests,
                "errors": errors,
                "skipped_journeys": t.skipped,
                "journeys": journeys,
                "steps": steps,
                "phases": phases,
                "unexpected_errors": unexpected_errors,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(stats: &Stats, phase: Phase, ok: bool, expected_failure: bool, id: &str) {
        stats.record_journey(JourneyRecord {
            journey: "purchase",
            phase,
            ok,
            expected_failure,
            took: Duration::from_millis(3),
            trace_id: id,
        });
    }

    #[test]
    fn phases_come_in_the_demo_order_with_their_errors_told_apart() {
        let stats = Stats::default();
        record(&stats, Phase::Critical, false, true, "c1");
        record(&stats, Phase::Critical, false, false, "c2");
        record(&stats, Phase::Ramp, true, false, "r1");
        for n in 0..(TRACE_SAMPLE * 3) {
            record(&stats, Phase::Peak, true, false, &format!("p{n}"));
        }
        let snap = stats.snapshot();
        let phases = snap["phases"].as_array().unwrap();
        let names: Vec<&str> = phases
            .iter()
            .map(|p| p["phase"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["ramp", "peak", "critical"]);
        assert_eq!(phases[2]["errors"], 2);
        assert_eq!(phases[2]["expected_errors"], 1);
        assert_eq!(
            snap["unexpected_errors"], 1,
            "the failure not caused by the phase"
        );
        let peak_ids = phases[1]["trace_ids"].as_array().unwrap();
        assert_eq!(peak_ids.len(), TRACE_SAMPLE);
        assert!(
            peak_ids
                .iter()
                .any(|id| id.as_str().unwrap()[1..].parse::<usize>().unwrap() >= TRACE_SAMPLE),
            "the sample reaches past the first journeys"
        );
        assert_eq!(
            phases[1]["journeys"]["purchase"]["requests"],
            TRACE_SAMPLE * 3
        );
    }
}
