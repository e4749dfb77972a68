//! What the load generator has done: requests, errors and latency percentiles by journey and by
//! step, for `GET /api/stats`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

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

#[derive(Debug, Default)]
struct Tables {
    journeys: BTreeMap<&'static str, Entry>,
    steps: BTreeMap<&'static str, Entry>,
    skipped: u64,
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

    pub fn record_journey(&self, journey: &'static str, ok: bool, took: Duration) {
        self.with(|t| {
            t.journeys
                .entry(journey)
                .or_insert_with(Entry::new)
                .record(ok, took)
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
            json!({
                "requests": requests,
                "errors": errors,
                "skipped_journeys": t.skipped,
                "journeys": journeys,
                "steps": steps,
            })
        })
    }
}
