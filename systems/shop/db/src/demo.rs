//! The Black Friday clock of seed 003: `DEMO_MODE=blackfriday` with `DEMO_START_TIMESTAMP`
//! (Unix seconds) runs a 30-minute demo, each demo minute `SHOP_MINUTE_SECS` seconds long (60
//! unless told); its phase is what every service changes its behaviour by. The clock is shared
//! (clones see the same demo) and can be started on a running service ([`DemoClock::set`],
//! from a [`DemoRequest`]: what `throughline load shop --scenario` asks for).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

pub const DEMO_MODE_ENV: &str = "DEMO_MODE";
pub const DEMO_START_ENV: &str = "DEMO_START_TIMESTAMP";
pub const MINUTE_SECS_ENV: &str = "SHOP_MINUTE_SECS";

/// Demo minutes in all.
pub const DEMO_MINUTES: f64 = 30.0;

/// A phase of the demo (`demo.phase`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Minutes 0–4: traffic rises.
    Ramp,
    /// Minutes 5–14: peak traffic.
    Peak,
    /// Minutes 15–24: the category query loses its index.
    Degradation,
    /// Minutes 25–29: checkouts hold their connections longer than the pool can bear.
    Critical,
    /// No demo, or the demo is over: index back, pool healthy.
    Normal,
}

impl Phase {
    /// The phase of demo minute `minute` (fractional).
    pub fn of_minute(minute: f64) -> Self {
        match minute {
            m if m < 0.0 => Self::Normal,
            m if m < 5.0 => Self::Ramp,
            m if m < 15.0 => Self::Peak,
            m if m < 25.0 => Self::Degradation,
            m if m < DEMO_MINUTES => Self::Critical,
            _ => Self::Normal,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ramp => "ramp",
            Self::Peak => "peak",
            Self::Degradation => "degradation",
            Self::Critical => "critical",
            Self::Normal => "normal",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A demo setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DemoConfigError {
    #[error("{DEMO_MODE_ENV}: {0:?} is not a demo (known: blackfriday, normal)")]
    Mode(String),
    #[error("{DEMO_START_ENV}: {0:?} is not a Unix time in seconds")]
    Start(String),
    #[error("{MINUTE_SECS_ENV}: {0:?} is not a positive number of seconds")]
    MinuteSecs(String),
}

/// When the demo started and how long its minutes are; `None` inside when no demo runs. Clones
/// share one clock: [`DemoClock::set`] on one is seen by all.
#[derive(Debug, Clone)]
pub struct DemoClock {
    demo: Arc<RwLock<Option<(SystemTime, Duration)>>>,
}

impl PartialEq for DemoClock {
    fn eq(&self, other: &Self) -> bool {
        self.demo() == other.demo()
    }
}

impl DemoClock {
    /// No demo: always [`Phase::Normal`].
    pub fn normal() -> Self {
        Self {
            demo: Arc::new(RwLock::new(None)),
        }
    }

    /// A demo started at `start`, each minute `minute` long.
    pub fn black_friday(start: SystemTime, minute: Duration) -> Self {
        Self {
            demo: Arc::new(RwLock::new(Some((start, minute)))),
        }
    }

    /// Starts a demo at `start` (`Some`), or ends any (`None`), for every clone of this clock.
    pub fn set(&self, demo: Option<(SystemTime, Duration)>) {
        *self.demo.write().unwrap_or_else(|p| p.into_inner()) = demo;
    }

    /// The demo's start and minute length, if one is set.
    pub fn demo(&self) -> Option<(SystemTime, Duration)> {
        *self.demo.read().unwrap_or_else(|p| p.into_inner())
    }

    /// From `DEMO_MODE`, `DEMO_START_TIMESTAMP` (now when missing) and `SHOP_MINUTE_SECS`.
    pub fn from_env(env: &HashMap<String, String>) -> Result<Self, DemoConfigError> {
        let mode = env.get(DEMO_MODE_ENV).map(|m| m.trim()).unwrap_or("");
        match mode {
            "" | "normal" => return Ok(Self::normal()),
            "blackfriday" => {}
            other => return Err(DemoConfigError::Mode(other.to_owned())),
        }
        let start = match env.get(DEMO_START_ENV) {
            None => SystemTime::now(),
            Some(text) => {
                let secs: f64 = text
                    .trim()
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s >= 0.0)
                    .ok_or_else(|| DemoConfigError::Start(text.clone()))?;
                UNIX_EPOCH + Duration::from_secs_f64(secs)
            }
        };
        let minute = match env.get(MINUTE_SECS_ENV) {
            None => Duration::from_secs(60),
            Some(text) => text
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s > 0.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| DemoConfigError::MinuteSecs(text.clone()))?,
        };
        Ok(Self::black_friday(start, minute))
    }

    /// Whether a demo was configured (over or not).
    pub fn is_demo(&self) -> bool {
        self.demo().is_some()
    }

    /// The demo minute now (fractional), `None` without a demo.
    pub fn minute(&self) -> Option<f64> {
        self.minute_at(SystemTime::now())
    }

    pub fn minute_at(&self, now: SystemTime) -> Option<f64> {
        let (start, minute) = self.demo()?;
        let elapsed = match now.duration_since(start) {
            Ok(d) => d.as_secs_f64(),
            Err(e) => -e.duration().as_secs_f64(),
        };
        Some(elapsed / minute.as_secs_f64())
    }

    /// The phase now.
    pub fn phase(&self) -> Phase {
        self.phase_at(SystemTime::now())
    }

    pub fn phase_at(&self, now: SystemTime) -> Phase {
        self.minute_at(now).map_or(Phase::Normal, Phase::of_minute)
    }

    /// How far through its phase the demo is, 0 to 1 (0 without a demo).
    pub fn phase_progress(&self) -> f64 {
        let Some(m) = self.minute() else { return 0.0 };
        let (from, to) = match Phase::of_minute(m) {
            Phase::Ramp => (0.0, 5.0),
            Phase::Peak => (5.0, 15.0),
            Phase::Degradation => (15.0, 25.0),
            Phase::Critical => (25.0, DEMO_MINUTES),
            Phase::Normal => return 0.0,
        };
        ((m - from) / (to - from)).clamp(0.0, 1.0)
    }

    /// Time left in the phase now (zero without a demo or after it).
    pub fn left_in_phase(&self) -> Duration {
        let (Some(m), Some(minute)) = (self.minute(), self.minute_length()) else {
            return Duration::ZERO;
        };
        let end = match Phase::of_minute(m) {
            Phase::Ramp => 5.0,
            Phase::Peak => 15.0,
            Phase::Degradation => 25.0,
            Phase::Critical => DEMO_MINUTES,
            Phase::Normal => return Duration::ZERO,
        };
        minute.mul_f64((end - m).max(0.0))
    }

    /// One demo minute.
    pub fn minute_length(&self) -> Option<Duration> {
        self.demo().map(|(_, m)| m)
    }
}

/// How long a whole demo lasts with minutes of `minute`.
pub fn demo_length(minute: Duration) -> Duration {
    minute.mul_f64(DEMO_MINUTES)
}

/// A service's `POST /demo`: the clock set from the body; the answer (`Ok`, the phase now) or
/// the 400's body naming the field (`Err`).
pub fn control(clock: &DemoClock, body: &[u8]) -> Result<Value, Value> {
    let bad = |field: &str, problem: &str| serde_json::json!({"error": format!("{field}: {problem}"), "field": field});
    let body: Value = serde_json::from_slice(body).map_err(|_| bad("body", "malformed JSON"))?;
    let request = DemoRequest::from_json(&body).map_err(|e| bad(e.field, e.problem))?;
    clock.set(request.demo);
    Ok(serde_json::json!({"phase": clock.phase().as_str(), "demo_minute": clock.minute()}))
}

/// A demo to start on a running service: `{"scenario": "blackfriday" | "normal",
/// "minute_secs": N, "start_unix": T}` (`start_unix` now when missing, `minute_secs` 60).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DemoRequest {
    /// `None` for `normal`: no demo (index in place, pool healthy).
    pub demo: Option<(SystemTime, Duration)>,
    /// One demo minute (also for `normal`, whose traffic lasts as long as a demo).
    pub minute: Duration,
}

/// A field of a demo request that was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct DemoFieldError {
    pub field: &'static str,
    pub problem: &'static str,
}

impl DemoRequest {
    pub fn from_json(body: &Value) -> Result<Self, DemoFieldError> {
        let bad = |field, problem| DemoFieldError { field, problem };
        if !body.is_object() {
            return Err(bad("body", "must be a JSON object"));
        }
        let black_friday = match body.get("scenario").and_then(Value::as_str) {
            Some("blackfriday") => true,
            Some("normal") => false,
            _ => return Err(bad("scenario", "must be \"blackfriday\" or \"normal\"")),
        };
        let minute = match body.get("minute_secs") {
            None | Some(Value::Null) => Duration::from_secs(60),
            Some(v) => v
                .as_f64()
                .filter(|s| s.is_finite() && *s > 0.0 && *s <= 3600.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| {
                    bad(
                        "minute_secs",
                        "must be a number of seconds above 0, at most 3600",
                    )
                })?,
        };
        let start = match body.get("start_unix") {
            None | Some(Value::Null) => SystemTime::now(),
            Some(v) => v
                .as_f64()
                .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e11)
                .map(|s| UNIX_EPOCH + Duration::from_secs_f64(s))
                .ok_or_else(|| bad("start_unix", "must be a Unix time in seconds"))?,
        };
        Ok(Self {
            demo: black_friday.then_some((start, minute)),
            minute,
        })
    }

    /// The request as the body the other services are sent (the same start for all).
    pub fn to_json(&self) -> Value {
        match self.demo {
            Some((start, minute)) => serde_json::json!({
                "scenario": "blackfriday",
                "minute_secs": minute.as_secs_f64(),
                "start_unix": start.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64()),
            }),
            None => {
                serde_json::json!({"scenario": "normal", "minute_secs": self.minute.as_secs_f64()})
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_phases_follow_the_seed_minutes() {
        let table = [
            (0.0, Phase::Ramp),
            (4.99, Phase::Ramp),
            (5.0, Phase::Peak),
            (14.9, Phase::Peak),
            (15.0, Phase::Degradation),
            (24.9, Phase::Degradation),
            (25.0, Phase::Critical),
            (29.9, Phase::Critical),
            (30.0, Phase::Normal),
            (-1.0, Phase::Normal),
        ];
        for (minute, phase) in table {
            assert_eq!(Phase::of_minute(minute), phase, "minute {minute}");
        }
    }

    #[test]
    fn a_compressed_clock_reads_its_minutes() {
        let env = env(&[
            ("DEMO_MODE", "blackfriday"),
            ("DEMO_START_TIMESTAMP", "1000"),
            ("SHOP_MINUTE_SECS", "2"),
        ]);
        let clock = DemoClock::from_env(&env).unwrap();
        let at = |secs: u64| UNIX_EPOCH + Duration::from_secs(secs);
        assert_eq!(clock.phase_at(at(1009)), Phase::Ramp);
        assert_eq!(clock.phase_at(at(1010)), Phase::Peak);
        assert_eq!(clock.phase_at(at(1031)), Phase::Degradation);
        assert_eq!(clock.phase_at(at(1051)), Phase::Critical);
        assert_eq!(clock.phase_at(at(1061)), Phase::Normal);
    }

    #[test]
    fn a_demo_started_on_a_running_clock_is_seen_by_its_clones() {
        let clock = DemoClock::normal();
        let seen_by = clock.clone();
        let request = DemoRequest::from_json(
            &serde_json::json!({"scenario": "blackfriday", "minute_secs": 2, "start_unix": 1000}),
        )
        .unwrap();
        clock.set(request.demo);
        let at = |secs: u64| UNIX_EPOCH + Duration::from_secs(secs);
        assert_eq!(seen_by.phase_at(at(1031)), Phase::Degradation);
        // The same start travels to the other services.
        let again = DemoRequest::from_json(&request.to_json()).unwrap();
        assert_eq!(again, request);
        clock.set(
            DemoRequest::from_json(&serde_json::json!({"scenario": "normal"}))
                .unwrap()
                .demo,
        );
        assert!(!seen_by.is_demo());
        for (body, field) in [
            (serde_json::json!({"scenario": "cybermonday"}), "scenario"),
            (
                serde_json::json!({"scenario": "blackfriday", "minute_secs": 0}),
                "minute_secs",
            ),
            (
                serde_json::json!({"scenario": "blackfriday", "start_unix": "soon"}),
                "start_unix",
            ),
            (serde_json::json!([1]), "body"),
        ] {
            assert_eq!(
                DemoRequest::from_json(&body).unwrap_err().field,
                field,
                "{body}"
            );
        }
    }

    #[test]
    fn bad_settings_are_named() {
        let bad = [
            (env(&[("DEMO_MODE", "cybermonday")]), "DEMO_MODE"),
            (
                env(&[
                    ("DEMO_MODE", "blackfriday"),
                    ("DEMO_START_TIMESTAMP", "soon"),
                ]),
                "DEMO_START_TIMESTAMP",
            ),
            (
                env(&[("DEMO_MODE", "blackfriday"), ("SHOP_MINUTE_SECS", "0")]),
                "SHOP_MINUTE_SECS",
            ),
        ];
        for (env, name) in bad {
            let err = DemoClock::from_env(&env).unwrap_err().to_string();
            assert!(err.starts_with(name), "{err}");
        }
        assert_eq!(
            DemoClock::from_env(&HashMap::new()).unwrap().phase(),
            Phase::Normal
        );
    }
}
