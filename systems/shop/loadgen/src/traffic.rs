//! Continuous traffic: journeys started at a rate (fixed, or the Black Friday demo's, which
//! rises through the ramp to its peak and stops when the demo is over), in a mix of journey
//! types, at most `max_in_flight` at once (a journey that would exceed it is counted skipped).
//! The driver starts every journey due at each wake-up (a credit of rate × time since the last
//! one), so a timer that wakes once a millisecond does not cap the rate at 1,000 a second; a
//! stall banks at most a tenth of a second's journeys, never a burst.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::Value;
use shop_db::{DemoClock, Phase};
use tokio_util::sync::CancellationToken;

use crate::journey::{JourneyKind, Journeys};

/// Weights of the journey types.
#[derive(Debug, Clone, PartialEq)]
pub struct Mix {
    weights: Vec<(JourneyKind, f64)>,
}

impl Default for Mix {
    /// The seed's shoppers: mostly browsing, a third buying.
    fn default() -> Self {
        Self {
            weights: vec![
                (JourneyKind::Browse, 0.4),
                (JourneyKind::Search, 0.2),
                (JourneyKind::Purchase, 0.3),
                (JourneyKind::Abandon, 0.1),
            ],
        }
    }
}

/// A field of a traffic request that was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct TrafficFieldError {
    pub field: String,
    pub problem: String,
}

impl Mix {
    /// From `{"browse": 1, "purchase": 2, …}` (missing types weigh 0).
    pub fn from_json(value: &Value) -> Result<Self, TrafficFieldError> {
        let bad = |field: String, problem: &str| TrafficFieldError {
            field,
            problem: problem.to_owned(),
        };
        let Value::Object(map) = value else {
            return Err(bad("mix".into(), "must be an object of journey weights"));
        };
        let mut weights = Vec::new();
        for (key, weight) in map {
            let kind: JourneyKind = key.parse().map_err(|_| {
                bad(
                    format!("mix.{key}"),
                    "is not a journey (browse, search, purchase, abandon)",
                )
            })?;
            let w = weight
                .as_f64()
                .filter(|w| w.is_finite() && *w >= 0.0)
                .ok_or_else(|| bad(format!("mix.{key}"), "must be a number of at least 0"))?;
            weights.push((kind, w));
        }
        if weights.iter().all(|(_, w)| *w == 0.0) {
            return Err(bad("mix".into(), "needs a journey with a weight above 0"));
        }
        Ok(Self { weights })
    }

    /// A journey type drawn by weight.
    pub fn pick(&self, rng: &mut impl Rng) -> JourneyKind {
        let total: f64 = self.weights.iter().map(|(_, w)| w).sum();
        let mut roll = rng.random::<f64>() * total;
        for (kind, w) in &self.weights {
            if roll < *w {
                return *kind;
            }
            roll -= w;
        }
        self.weights
            .iter()
            .rev()
            .find(|(_, w)| *w > 0.0)
            .map_or(JourneyKind::Browse, |(k, _)| *k)
    }

    pub fn as_map(&self) -> BTreeMap<&'static str, f64> {
        self.weights.iter().map(|(k, w)| (k.as_str(), *w)).collect()
    }
}

/// How fast journeys start.
#[derive(Debug, Clone, PartialEq)]
pub enum Rate {
    /// This many a second for this long (until stopped when `None`).
    Fixed {
        per_sec: f64,
        duration: Option<Duration>,
    },
    /// The demo's: from a fifth of `peak_per_sec` up to it through the ramp, the peak through the
    /// peak phase, then the crowd keeps coming: up to twice the peak through the degradation
    /// (so the full scans, sharing the machine, grow slower as the phase goes on) and twice the
    /// peak in the critical phase; nothing once the demo is over.
    Demo { clock: DemoClock, peak_per_sec: f64 },
}

impl Rate {
    /// Journeys a second now; `None` when the traffic is over.
    fn now(&self, started: Instant) -> Option<f64> {
        match self {
            Self::Fixed { per_sec, duration } => {
                (duration.is_none_or(|d| started.elapsed() < d)).then_some(*per_sec)
            }
            Self::Demo {
                clock,
                peak_per_sec,
            } => match clock.phase() {
                Phase::Ramp => Some(peak_per_sec * (0.2 + 0.8 * clock.phase_progress())),
                Phase::Peak => Some(*peak_per_sec),
                Phase::Degradation => Some(peak_per_sec * (1.0 + clock.phase_progress())),
                Phase::Critical => Some(peak_per_sec * 2.0),
                // Before the demo's start: wait for it; after its end: done.
                Phase::Normal => clock.minute().filter(|m| *m < 0.0).map(|_| 0.0),
            },
        }
    }
}

/// The traffic now running, if any.
#[derive(Debug)]
pub struct Traffic {
    journeys: Journeys,
    max_in_flight: usize,
    /// The traffic's journeys not yet finished (of this and of stopped traffic).
    in_flight: Arc<AtomicUsize>,
    running: Mutex<Option<CancellationToken>>,
}

impl Traffic {
    pub fn new(journeys: Journeys, max_in_flight: usize) -> Arc<Self> {
        Arc::new(Self {
            journeys,
            max_in_flight,
            in_flight: Arc::default(),
            running: Mutex::new(None),
        })
    }

    /// Starts `rate` in `mix`, replacing traffic already running.
    pub fn start(self: &Arc<Self>, rate: Rate, mix: Mix) {
        let token = CancellationToken::new();
        if let Some(old) = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(token.clone())
        {
            old.cancel();
        }
        let this = self.clone();
        tokio::spawn(async move { this.drive(rate, mix, token).await });
    }

    /// Stops the traffic; `true` when some was running.
    pub fn stop(&self) -> bool {
        match self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    /// Journeys started by traffic and not yet finished.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub fn is_running(&self) -> bool {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|t| !t.is_cancelled())
    }

    async fn drive(&self, rate: Rate, mix: Mix, token: CancellationToken) {
        let started = Instant::now();
        let in_flight = &self.in_flight;
        tracing::info!(?rate, mix = ?mix.as_map(), "traffic started");
        let mut credit = Credit::default();
        while !token.is_cancelled() {
            let Some(per_sec) = rate.now(started) else {
                break;
            };
            for _ in 0..credit.due(per_sec, Instant::now()) {
                if in_flight.load(Ordering::Relaxed) >= self.max_in_flight {
                    self.journeys.stats().record_skipped();
                    continue;
                }
                let kind = mix.pick(&mut rand::rng());
                let (journeys, in_flight) = (self.journeys.clone(), in_flight.clone());
                in_flight.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    journeys.run(kind, None).await;
                    in_flight.fetch_sub(1, Ordering::Relaxed);
                });
            }
            tokio::select! {
                () = token.cancelled() => break,
                () = tokio::time::sleep(credit.pause(per_sec)) => {}
            }
        }
        token.cancel();
        tracing::info!(secs = started.elapsed().as_secs_f64(), "traffic stopped");
    }
}

/// Journeys owed at a rate: rate × the time since the last wake-up, the whole ones due now.
#[derive(Debug, Default)]
struct Credit {
    owed: f64,
    last: Option<Instant>,
}

impl Credit {
    /// How many journeys are due at `now` at `per_sec`.
    fn due(&mut self, per_sec: f64, now: Instant) -> u64 {
        let since = self.last.map_or(Duration::ZERO, |l| now - l);
        self.last = Some(now);
        // The first wake-up starts one at once; a stall banks a tenth of a second at most.
        let owed = if since.is_zero() && self.owed == 0.0 {
            1.0_f64.min(per_sec)
        } else {
            self.owed + per_sec * since.as_secs_f64()
        };
        self.owed = owed.min((per_sec / 10.0).max(1.0));
        let due = self.owed.floor();
        self.owed -= due;
        due as u64
    }

    /// How long until the next journey is due (a millisecond at least; 100 ms at rate 0).
    fn pause(&self, per_sec: f64) -> Duration {
        if per_sec <= 0.0 {
            return Duration::from_millis(100);
        }
        Duration::from_secs_f64(((1.0 - self.owed) / per_sec).max(0.001))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_demo_rate_rises_through_the_phases_and_ends_with_the_demo() {
        let at_minute = |m: f64| {
            let now = std::time::SystemTime::now();
            let offset = Duration::from_secs_f64(m.abs() * 60.0);
            let start = if m >= 0.0 { now - offset } else { now + offset };
            Rate::Demo {
                clock: DemoClock::black_friday(start, Duration::from_secs(60)),
                peak_per_sec: 10.0,
            }
            .now(Instant::now())
        };
        let near = |got: Option<f64>, want: f64| got.is_some_and(|r| (r - want).abs() < 0.1);
        assert!(near(at_minute(0.0), 2.0), "{:?}", at_minute(0.0));
        assert!(near(at_minute(10.0), 10.0));
        assert!(near(at_minute(20.0), 15.0), "{:?}", at_minute(20.0));
        assert!(near(at_minute(27.0), 20.0));
        assert_eq!(at_minute(31.0), None, "traffic ends with the demo");
        assert_eq!(at_minute(-1.0), Some(0.0), "waits for the demo's start");
    }

    #[test]
    fn the_driver_starts_every_journey_due_not_one_a_wake_up() {
        let mut credit = Credit::default();
        let t0 = Instant::now();
        let mut started = credit.due(5000.0, t0);
        // Woken once a millisecond for a second, as a tokio timer does.
        for ms in 1..=1000 {
            started += credit.due(5000.0, t0 + Duration::from_millis(ms));
        }
        assert!(
            (4990..=5001).contains(&started),
            "{started} in a second at 5000/s"
        );
        assert_eq!(credit.pause(5000.0), Duration::from_millis(1));
        // A slow rate: one journey every 100 ms, no more.
        let mut slow = Credit::default();
        let t0 = Instant::now();
        let mut n = slow.due(10.0, t0);
        for ms in (10..=1000).step_by(10) {
            n += slow.due(10.0, t0 + Duration::from_millis(ms));
        }
        assert!((10..=11).contains(&n), "{n} at 10/s");
        // A stall of ten seconds banks a tenth of a second, not ten seconds.
        let mut stalled = Credit::default();
        stalled.due(1000.0, t0);
        assert_eq!(stalled.due(1000.0, t0 + Duration::from_secs(10)), 100);
    }

    #[test]
    fn a_mix_names_its_bad_field() {
        let err = Mix::from_json(&json!({"browse": 1, "shoplift": 2})).unwrap_err();
        assert_eq!(err.field, "mix.shoplift");
        let err = Mix::from_json(&json!({"browse": -1})).unwrap_err();
        assert_eq!(err.field, "mix.browse");
        let err = Mix::from_json(&json!({"browse": 0})).unwrap_err();
        assert_eq!(err.field, "mix");
        let only = Mix::from_json(&json!({"purchase": 1, "browse": 0})).unwrap();
        let mut rng = rand::rng();
        assert!((0..50).all(|_| only.pick(&mut rng) == JourneyKind::Purchase));
    }
}
