//! Evaluation: each rule's value and condition every round of its group, the state machine
//! (inactive → pending → firing → resolved, with `for` and `keep_firing_for`) and flows.
//!
//! A **flow** matches its stages in order: stage *k* counts when it is firing and began firing
//! no earlier than stage *k−1* did (a stage already firing before its predecessor began is out
//! of order and waits for its next firing), all within `within` of the first stage. The first
//! stage counts once per firing. When the match times out it starts over from the next firing
//! of the first stage; with `reset: on_resolve`, a matched stage that stops firing before the
//! flow completes starts it over too. A complete flow's condition holds while any of its stages
//! fires; then it starts over.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;

use crate::rules::{Condition, MetricKind, Rule, RuleSet};
use crate::source::{AlertSource, MetricQuery};

/// A rule's value read this round, or why it could not be read.
type Evaluated = Result<Option<f64>, String>;

/// Transitions kept per rule for the page.
pub const HISTORY: usize = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Inactive,
    Pending,
    Firing,
    /// Was firing; the condition ended (kept until the rule is next pending or firing).
    Resolved,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Inactive => "inactive",
            State::Pending => "pending",
            State::Firing => "firing",
            State::Resolved => "resolved",
        }
    }
}

/// One change of state.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Transition {
    pub at_unix_nanos: u64,
    pub state: State,
    pub value: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct FlowProgress {
    /// When each matched stage began firing.
    matched: Vec<u64>,
    /// The first stage must begin firing after this to start a new match.
    min_start: Option<u64>,
}

/// What the evaluator keeps per rule.
#[derive(Debug, Clone)]
pub struct RuleState {
    pub state: State,
    /// When the current state began.
    pub since: u64,
    /// When the condition began to hold (pending, then firing).
    pub active_at: Option<u64>,
    /// When the current firing began.
    pub firing_since: Option<u64>,
    /// When the condition stopped holding while firing (keep_firing_for counts from there).
    false_since: Option<u64>,
    pub resolved_at: Option<u64>,
    pub value: Option<f64>,
    pub error: Option<String>,
    pub last_evaluation: Option<u64>,
    pub history: VecDeque<Transition>,
    flow: FlowProgress,
}

impl Default for RuleState {
    fn default() -> Self {
        Self {
            state: State::Inactive,
            since: 0,
            active_at: None,
            firing_since: None,
            false_since: None,
            resolved_at: None,
            value: None,
            error: None,
            last_evaluation: None,
            history: VecDeque::new(),
            flow: FlowProgress::default(),
        }
    }
}

impl RuleState {
    fn enter(&mut self, state: State, now: u64) {
        self.state = state;
        self.since = now;
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(Transition {
            at_unix_nanos: now,
            state,
            value: self.value,
        });
    }

    /// Moves the state machine one evaluation; answers a notice when the rule fired or resolved.
    pub fn step(
        &mut self,
        holds: bool,
        for_nanos: u64,
        keep_firing_for_nanos: u64,
        now: u64,
    ) -> Option<NoticeKind> {
        match self.state {
            State::Inactive | State::Resolved if holds => {
                self.active_at = Some(now);
                if for_nanos == 0 {
                    return Some(self.fire(now));
                }
                self.enter(State::Pending, now);
            }
            State::Inactive | State::Resolved => {}
            State::Pending if holds => {
                if now.saturating_sub(self.active_at.unwrap_or(now)) >= for_nanos {
                    return Some(self.fire(now));
                }
            }
            State::Pending => {
                self.active_at = None;
                self.enter(State::Inactive, now);
            }
            State::Firing if holds => self.false_since = None,
            State::Firing => {
                let since = *self.false_since.get_or_insert(now);
                if now.saturating_sub(since) >= keep_firing_for_nanos {
                    self.false_since = None;
                    self.firing_since = None;
                    self.active_at = None;
                    self.resolved_at = Some(now);
                    self.enter(State::Resolved, now);
                    return Some(NoticeKind::Resolved);
                }
            }
        }
        None
    }

    fn fire(&mut self, now: u64) -> NoticeKind {
        self.firing_since = Some(now);
        self.false_since = None;
        self.resolved_at = None;
        self.enter(State::Firing, now);
        NoticeKind::Firing
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    Firing,
    Resolved,
}

/// A rule that fired or resolved in a round.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub rule: usize,
    pub kind: NoticeKind,
}

/// The rules, their states and the data they read.
pub struct Engine {
    rules: RuleSet,
    source: Arc<dyn AlertSource>,
    states: Mutex<Vec<RuleState>>,
    /// Per group: its plain rules, then its flows, each after the flows it names.
    order: Vec<Vec<usize>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("rules", &self.rules.rules.len())
            .finish_non_exhaustive()
    }
}

fn flow_depth(rules: &[Rule], i: usize) -> usize {
    match &rules[i].condition {
        // Cycles were refused when the rules were read.
        Condition::Flow { stages, .. } => {
            1 + stages
                .iter()
                .map(|s| flow_depth(rules, *s))
                .max()
                .unwrap_or(0)
        }
        _ => 0,
    }
}

impl Engine {
    pub fn new(rules: RuleSet, source: Arc<dyn AlertSource>) -> Self {
        let order = rules
            .groups
            .iter()
            .map(|g| {
                let mut o = g.rules.clone();
                o.sort_by_key(|i| flow_depth(&rules.rules, *i));
                o
            })
            .collect();
        let states = Mutex::new(vec![RuleState::default(); rules.rules.len()]);
        Self {
            rules,
            source,
            states,
            order,
        }
    }

    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    pub fn source(&self) -> &Arc<dyn AlertSource> {
        &self.source
    }

    fn lock(&self) -> MutexGuard<'_, Vec<RuleState>> {
        self.states.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of every rule's state, in rule order.
    pub fn states(&self) -> Vec<RuleState> {
        self.lock().clone()
    }

    /// One round of group `group` at `now`: the rules that fired or resolved.
    pub fn evaluate_group(&self, group: usize, now: u64) -> Vec<Notice> {
        let Some(order) = self.order.get(group) else {
            return Vec::new();
        };
        // Values first, without the lock (they read the store).
        let values: Vec<(usize, Option<Evaluated>)> = order
            .iter()
            .map(|&i| {
                let v = match &self.rules.rules[i].condition {
                    Condition::Flow { .. } => None,
                    _ => Some(self.value(i, now)),
                };
                (i, v)
            })
            .collect();
        let mut notices = Vec::new();
        let mut states = self.lock();
        for (i, value) in values {
            let rule = &self.rules.rules[i];
            let holds = match value {
                Some(Err(e)) => {
                    // The state stays as it was: a failed read is no evidence either way.
                    states[i].error = Some(e);
                    states[i].last_evaluation = Some(now);
                    continue;
                }
                Some(Ok(v)) => {
                    states[i].value = v;
                    v.zip(rule.threshold).is_some_and(|(v, t)| t.holds(v))
                }
                None => flow_step(rule, i, &mut states, now),
            };
            let st = &mut states[i];
            st.error = None;
            st.last_evaluation = Some(now);
            if let Some(kind) = st.step(holds, rule.for_nanos, rule.keep_firing_for_nanos, now) {
                notices.push(Notice { rule: i, kind });
            }
        }
        notices
    }

    /// Every group once (tests and benchmarks; the server runs groups on their own intervals).
    pub fn evaluate_all(&self, now: u64) -> Vec<Notice> {
        (0..self.rules.groups.len())
            .flat_map(|g| self.evaluate_group(g, now))
            .collect()
    }

    /// Rule `i`'s value at `now`.
    pub fn value(&self, i: usize, now: u64) -> Result<Option<f64>, String> {
        let rule = &self.rules.rules[i];
        match &rule.condition {
            Condition::Spans { window_nanos, .. } => Ok(Some(self.source.span_count(
                i,
                now.saturating_sub(*window_nanos),
                now,
            ) as f64)),
            Condition::Metric {
                metric,
                service,
                operation,
                window_nanos,
            } => {
                let start = now.saturating_sub(*window_nanos);
                let red = || {
                    self.source.red(
                        service.as_deref().unwrap_or_default(),
                        operation.as_deref(),
                        start,
                        now,
                    )
                };
                Ok(match metric {
                    MetricKind::ErrorRate => {
                        let r = red()?;
                        (r.calls > 0).then(|| r.errors as f64 / r.calls as f64)
                    }
                    MetricKind::RequestRate => {
                        let r = red()?;
                        Some(r.calls as f64 / (*window_nanos as f64 / 1e9))
                    }
                    MetricKind::Quantile(q) => red()?.latency.quantile_ms(*q),
                    MetricKind::WholeTraceShare => {
                        let (whole, incomplete) = self.source.integrity(start, now)?;
                        (whole + incomplete > 0).then(|| whole as f64 / (whole + incomplete) as f64)
                    }
                    MetricKind::Otlp {
                        name,
                        attributes,
                        aggregation,
                    } => self.source.otlp_metric(&MetricQuery {
                        name,
                        service: service.as_deref(),
                        attributes,
                        aggregation: *aggregation,
                        start_unix_nanos: start,
                        end_unix_nanos: now,
                    })?,
                })
            }
            Condition::Flow { .. } => Ok(self.lock()[i].value),
        }
    }

    /// The labels of rule `i` (its own, with `alertname`).
    pub fn labels(&self, i: usize) -> &BTreeMap<String, String> {
        &self.rules.rules[i].labels
    }

    /// Rule `i`'s annotations rendered with its value now.
    pub fn annotations(&self, i: usize, value: Option<f64>) -> BTreeMap<String, String> {
        let rule = &self.rules.rules[i];
        rule.annotations
            .iter()
            .map(|(k, t)| (k.clone(), t.render(value, &rule.labels)))
            .collect()
    }
}

/// Advances flow `i` and answers whether its condition holds now.
fn flow_step(rule: &Rule, i: usize, states: &mut [RuleState], now: u64) -> bool {
    let Condition::Flow {
        stages,
        within_nanos,
        reset_on_resolve,
    } = &rule.condition
    else {
        return false;
    };
    let mut p = std::mem::take(&mut states[i].flow);
    let n = stages.len();
    let restart = |p: &mut FlowProgress| {
        p.min_start = p.matched.first().copied().or(p.min_start);
        p.matched.clear();
    };
    if *reset_on_resolve
        && p.matched.len() < n
        && p.matched
            .iter()
            .zip(stages)
            .any(|(t, s)| states[*s].firing_since != Some(*t))
    {
        restart(&mut p);
    }
    if !p.matched.is_empty()
        && p.matched.len() < n
        && now.saturating_sub(p.matched[0]) > *within_nanos
    {
        restart(&mut p);
    }
    while p.matched.len() < n {
        let Some(t) = states[stages[p.matched.len()]].firing_since else {
            break;
        };
        let in_order = match p.matched.last() {
            None => p.min_start.is_none_or(|m| t > m),
            Some(prev) => t >= *prev,
        };
        let in_time = p
            .matched
            .first()
            .is_none_or(|first| t.saturating_sub(*first) <= *within_nanos);
        if !(in_order && in_time) {
            break;
        }
        p.matched.push(t);
    }
    let mut holds = false;
    if p.matched.len() == n {
        holds = stages.iter().any(|s| states[*s].state == State::Firing);
        if !holds {
            restart(&mut p);
        }
    }
    states[i].value = Some(p.matched.len().max(if holds { n } else { 0 }) as f64);
    states[i].flow = p;
    holds
}
