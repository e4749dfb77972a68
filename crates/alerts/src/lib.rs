//! Alert rules evaluated over what the collector stores, with states a person can read,
//! delivered as Alertmanager speaks.
//!
//! - [`rules`]: the YAML rules file (groups with an interval; span, metric and flow rules)
//!   read into a checked [`RuleSet`]; every error names its group, rule and field.
//! - [`tap`]: span rules are counted at ingest ([`TappedSink`] in front of the store).
//! - [`source`]: what the evaluator reads ([`AlertSource`]; [`StoreSource`] is the store's).
//! - [`engine`]: values, the state machine (`for`, `keep_firing_for`) and flows.
//! - [`notify`]: Alertmanager's webhook payload (v4) and its `POST /api/v2/alerts`, retried.
//! - [`Alerts`]: all of it running: one task per group on its interval, notifications on every
//!   change, firing alerts re-sent to Alertmanager; [`Alerts::statuses`] for the page and
//!   `GET /api/throughline/alerts` ([`api_router`]).
//! - [`builtin`]: the reference systems' rules.

pub mod builtin;
pub mod engine;
pub mod notify;
pub mod rules;
pub mod source;
pub mod tap;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State as AxumState;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use throughline_store::{SpanSink, TraceReader};

pub use engine::{Engine, Notice, NoticeKind, RuleState, State, Transition};
pub use notify::{Notifier, Retry, Target};
pub use rules::{RuleError, RuleErrors, RuleSet, parse, parse_files};
pub use source::{AlertSource, RedWindow, StoreSource};
pub use tap::{SpanTap, TappedSink};

use crate::rules::{Condition, Threshold};

/// How often firing alerts are sent to Alertmanager again (it forgets alerts whose `endsAt`
/// passed, as it does Prometheus's).
pub const RESEND_INTERVAL: Duration = Duration::from_secs(30);

/// Where and how notifications go.
#[derive(Debug, Clone, Default)]
pub struct Delivery {
    pub targets: Vec<Target>,
    pub retry: Retry,
    /// The APM's base URL (`http://host:port`), for `generatorURL` and `externalURL`.
    pub external_url: String,
}

/// The rules running over a store.
pub struct Alerts {
    engine: Engine,
    tap: Arc<SpanTap>,
    delivery: Delivery,
    external_url: std::sync::RwLock<String>,
    notifier: std::sync::OnceLock<Notifier>,
}

impl std::fmt::Debug for Alerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerts")
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}

fn now_unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A rule as the page and the JSON API show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertStatus {
    pub group: String,
    pub alert: String,
    /// `spans`, `metric` or `flow`.
    pub kind: &'static str,
    /// What the rule watches, in words (`spans of checkout where checkout.failed = true in 1m`).
    pub condition: String,
    pub state: State,
    pub since: Option<String>,
    pub active_at: Option<String>,
    pub firing_since: Option<String>,
    pub resolved_at: Option<String>,
    pub value: Option<f64>,
    pub value_text: String,
    pub error: Option<String>,
    pub last_evaluation: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    /// Traces with a matching span (span rules), newest first.
    pub recent_traces: Vec<String>,
    /// Flow stages by alert name.
    pub stages: Vec<String>,
    pub history: Vec<HistoryEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub at: String,
    pub state: State,
    pub value: Option<f64>,
}

fn dur_text(nanos: u64) -> String {
    let s = nanos / 1_000_000_000;
    if !nanos.is_multiple_of(1_000_000_000) {
        format!("{}ms", nanos / 1_000_000)
    } else if s.is_multiple_of(3600) && s > 0 {
        format!("{}h", s / 3600)
    } else if s.is_multiple_of(60) && s > 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// Percent-encodes a URL query value.
fn url_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

impl Alerts {
    /// `rules` over `reader`; call [`sink`](Self::sink) for the collector's sink and
    /// [`spawn`](Self::spawn) inside a runtime.
    pub fn over_store(rules: RuleSet, reader: Arc<dyn TraceReader>, delivery: Delivery) -> Self {
        let tap = Arc::new(SpanTap::new(&rules));
        let source = Arc::new(StoreSource::new(reader, tap.clone()));
        Self {
            engine: Engine::new(rules, source),
            tap,
            external_url: std::sync::RwLock::new(delivery.external_url.clone()),
            delivery,
            notifier: std::sync::OnceLock::new(),
        }
    }

    /// `rules` over any source (tests, benchmarks).
    pub fn with_source(rules: RuleSet, source: Arc<dyn AlertSource>, delivery: Delivery) -> Self {
        let tap = Arc::new(SpanTap::new(&rules));
        Self {
            engine: Engine::new(rules, source),
            tap,
            external_url: std::sync::RwLock::new(delivery.external_url.clone()),
            delivery,
            notifier: std::sync::OnceLock::new(),
        }
    }

    /// The APM's base URL, once the query listener's address is known.
    pub fn set_external_url(&self, url: String) {
        *self.external_url.write().unwrap_or_else(|e| e.into_inner()) = url;
    }

    fn external_url(&self) -> String {
        self.external_url
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn tap(&self) -> &Arc<SpanTap> {
        &self.tap
    }

    /// `inner` with this rule set's span tap in front.
    pub fn sink(&self, inner: Arc<dyn SpanSink>) -> Arc<dyn SpanSink> {
        Arc::new(TappedSink::new(inner, self.tap.clone()))
    }

    fn notifier(&self) -> &Notifier {
        self.notifier
            .get_or_init(|| Notifier::start(self.delivery.targets.clone(), self.delivery.retry))
    }

    /// One round of every group at `now`, with notifications (tests; [`spawn`](Self::spawn)
    /// runs each group on its own interval).
    pub fn evaluate_all(&self, now: u64) -> Vec<Notice> {
        let notices = self.engine.evaluate_all(now);
        self.deliver(&notices, now);
        notices
    }

    /// Runs every group on its interval and re-sends firing alerts to Alertmanager, until the
    /// tasks are aborted (the handles).
    pub fn spawn(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        let _ = self.notifier();
        let mut tasks = Vec::new();
        for (g, group) in self.engine.rules().groups.iter().enumerate() {
            let me = Arc::clone(self);
            let period = Duration::from_nanos(group.interval_nanos);
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(period);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let me2 = Arc::clone(&me);
                    let now = now_unix_nanos();
                    let notices =
                        tokio::task::spawn_blocking(move || me2.engine.evaluate_group(g, now))
                            .await
                            .unwrap_or_default();
                    me.deliver(&notices, now);
                }
            }));
        }
        if self.notifier().has_alertmanagers() {
            let me = Arc::clone(self);
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(RESEND_INTERVAL);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    me.resend_firing(now_unix_nanos());
                }
            }));
        }
        tasks
    }

    /// Sends every firing alert to Alertmanager again.
    pub fn resend_firing(&self, now: u64) {
        let states = self.engine.states();
        let alerts: Vec<_> = (0..states.len())
            .filter(|i| states[*i].state == State::Firing)
            .map(|i| self.postable(i, &states[i], now))
            .collect();
        self.notifier().send_alertmanager(&alerts);
    }

    fn ends_at_firing(&self, i: usize, now: u64) -> u64 {
        let rule = &self.engine.rules().rules[i];
        let interval = self
            .engine
            .rules()
            .groups
            .iter()
            .find(|g| g.name == rule.group)
            .map_or(0, |g| g.interval_nanos);
        now + 4 * interval.max(RESEND_INTERVAL.as_nanos() as u64)
    }

    fn postable(&self, i: usize, st: &RuleState, now: u64) -> notify::PostableAlert {
        let firing = st.state == State::Firing;
        notify::PostableAlert {
            labels: self.engine.labels(i).clone(),
            annotations: self.engine.annotations(i, st.value),
            starts_at: notify::rfc3339(
                st.firing_since
                    .or(st
                        .history
                        .iter()
                        .rev()
                        .find(|t| t.state == State::Firing)
                        .map(|t| t.at_unix_nanos))
                    .unwrap_or(now),
            ),
            ends_at: notify::rfc3339(if firing {
                self.ends_at_firing(i, now)
            } else {
                st.resolved_at.unwrap_or(now)
            }),
            generator_url: self.generator_url(i, st, now),
        }
    }

    fn deliver(&self, notices: &[Notice], now: u64) {
        if notices.is_empty() || self.delivery.targets.is_empty() {
            return;
        }
        let states = self.engine.states();
        let notifier = self.notifier();
        let mut posted = Vec::new();
        for n in notices {
            let st = &states[n.rule];
            let p = self.postable(n.rule, st, now);
            if notifier.has_webhooks() {
                let alert = notify::WebhookAlert {
                    status: match n.kind {
                        NoticeKind::Firing => "firing",
                        NoticeKind::Resolved => "resolved",
                    },
                    fingerprint: notify::fingerprint(&p.labels),
                    labels: p.labels.clone(),
                    annotations: p.annotations.clone(),
                    starts_at: p.starts_at.clone(),
                    ends_at: match n.kind {
                        NoticeKind::Firing => notify::ZERO_TIME.to_owned(),
                        NoticeKind::Resolved => p.ends_at.clone(),
                    },
                    generator_url: p.generator_url.clone(),
                };
                notifier.send_webhook(&notify::webhook_payload(
                    "throughline",
                    &self.external_url(),
                    vec![alert],
                ));
            }
            posted.push(p);
        }
        notifier.send_alertmanager(&posted);
    }

    /// The APM page that shows what rule `i` counts: matching traces for span rules, the
    /// service for metric rules, the Alerts page for flows.
    pub fn generator_url(&self, i: usize, st: &RuleState, now: u64) -> String {
        let external = self.external_url();
        let base = external.trim_end_matches('/');
        let rule = &self.engine.rules().rules[i];
        match &rule.condition {
            Condition::Spans {
                filter,
                window_nanos,
            } => {
                let from = st.active_at.unwrap_or(now).saturating_sub(*window_nanos);
                let to = st
                    .resolved_at
                    .filter(|_| st.state == State::Resolved)
                    .unwrap_or(now);
                let mut url = format!(
                    "{base}/search?start={}&end={}&limit=100",
                    from / 1000,
                    to / 1000 + 1_000_000
                );
                if let Some(s) = &filter.service {
                    let _ = write!(url, "&service={}", url_value(s));
                }
                if let Some(o) = &filter.operation {
                    let _ = write!(url, "&operation={}", url_value(o));
                }
                let mut tags: Vec<String> = filter
                    .predicates
                    .iter()
                    .filter(|p| p.op == rules::Op::Eq)
                    .map(|p| format!("{}={}", p.key, p.value))
                    .collect();
                if filter.status == Some(2) {
                    tags.push("error=true".into());
                }
                if !tags.is_empty() {
                    let _ = write!(url, "&tags={}", url_value(&tags.join(" ")));
                }
                url
            }
            Condition::Metric {
                service: Some(s), ..
            } => format!("{base}/services/{}", url_value(s)),
            _ => format!("{base}/alerts#{}", url_value(&rule.name)),
        }
    }

    /// Every rule with its state now, in file order.
    pub fn statuses(&self) -> Vec<AlertStatus> {
        let now = now_unix_nanos();
        let states = self.engine.states();
        let rules = &self.engine.rules().rules;
        let t = |n: Option<u64>| n.filter(|n| *n > 0).map(notify::rfc3339);
        states
            .iter()
            .enumerate()
            .map(|(i, st)| {
                let rule = &rules[i];
                let threshold = match rule.threshold {
                    Some(Threshold::Above(x)) => format!(" above {x}"),
                    Some(Threshold::Below(x)) => format!(" below {x}"),
                    None => String::new(),
                };
                let (kind, condition, stages) = match &rule.condition {
                    Condition::Spans {
                        filter,
                        window_nanos,
                    } => {
                        let mut parts = Vec::new();
                        if let Some(s) = &filter.service {
                            parts.push(format!("service {s}"));
                        }
                        if let Some(o) = &filter.operation {
                            parts.push(format!("operation {o}"));
                        }
                        for p in &filter.predicates {
                            parts.push(format!("{} {} {}", p.key, p.op.as_str(), p.value));
                        }
                        (
                            "spans",
                            format!(
                                "spans ({}) in {}{threshold}",
                                parts.join(", "),
                                dur_text(*window_nanos)
                            ),
                            Vec::new(),
                        )
                    }
                    Condition::Metric {
                        metric,
                        service,
                        operation,
                        window_nanos,
                    } => (
                        "metric",
                        format!(
                            "{}{}{} over {}{threshold}",
                            metric.label(),
                            service
                                .as_ref()
                                .map_or(String::new(), |s| format!(" of {s}")),
                            operation
                                .as_ref()
                                .map_or(String::new(), |o| format!(" {o}")),
                            dur_text(*window_nanos)
                        ),
                        Vec::new(),
                    ),
                    Condition::Flow {
                        stages,
                        within_nanos,
                        ..
                    } => {
                        let names: Vec<String> =
                            stages.iter().map(|s| rules[*s].name.clone()).collect();
                        (
                            "flow",
                            format!(
                                "{} in this order within {}",
                                names.join(" → "),
                                dur_text(*within_nanos)
                            ),
                            names,
                        )
                    }
                };
                let value_text = match &rule.condition {
                    Condition::Flow { stages, .. } => {
                        format!("{} of {} stages", st.value.unwrap_or(0.0), stages.len())
                    }
                    _ => rules::format_value(st.value),
                };
                AlertStatus {
                    group: rule.group.clone(),
                    alert: rule.name.clone(),
                    kind,
                    condition,
                    state: st.state,
                    since: t(Some(st.since)),
                    active_at: t(st.active_at),
                    firing_since: t(st.firing_since),
                    resolved_at: t(st.resolved_at),
                    value: st.value,
                    value_text,
                    error: st.error.clone(),
                    last_evaluation: t(st.last_evaluation),
                    labels: rule.labels.clone(),
                    annotations: self.engine.annotations(i, st.value),
                    generator_url: self.generator_url(i, st, now),
                    recent_traces: self
                        .engine
                        .source()
                        .recent_traces(i)
                        .into_iter()
                        .map(|(t, _)| t.to_string())
                        .collect(),
                    stages,
                    history: st
                        .history
                        .iter()
                        .rev()
                        .map(|h| HistoryEntry {
                            at: notify::rfc3339(h.at_unix_nanos),
                            state: h.state,
                            value: h.value,
                        })
                        .collect(),
                }
            })
            .collect()
    }
}

/// `GET /api/throughline/alerts`: `{"data": [AlertStatus…]}`, every rule in file order.
pub fn api_router(alerts: Arc<Alerts>) -> Router {
    Router::new()
        .route("/api/throughline/alerts", get(list))
        .with_state(alerts)
}

async fn list(AxumState(alerts): AxumState<Arc<Alerts>>) -> Response {
    let data = tokio::task::spawn_blocking(move || alerts.statuses())
        .await
        .unwrap_or_default();
    axum::Json(serde_json::json!({ "data": data })).into_response()
}
