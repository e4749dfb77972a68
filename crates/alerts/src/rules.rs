//! The rules file: YAML groups of rules, as Prometheus's rule files, read into checked
//! [`RuleSet`]s. Every mistake is one [`RuleError`] that names the group, the rule and the field.
//!
//! ```yaml
//! groups:
//!   - name: shop
//!     interval: 5s            # how often the group is evaluated (default 10s)
//!     rules:
//!       - alert: CheckoutFailures
//!         spans: {service: checkout, where: 'checkout.failed = true'}
//!         window: 1m
//!         above: 5
//!       - alert: OnboardingErrorRate
//!         metric: error_rate  # request_rate, p50, p95, p99, whole_trace_share, otlp (+ name)
//!         service: onboarding-api
//!         window: 5m
//!         above: 0.05
//!       - alert: BlackFridayCascade
//!         flow: [SlowQueries, PoolExhausted, CheckoutFailures]
//!         within: 10m
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde_json::Value;

/// Nanoseconds in a second.
pub const SECOND_NANOS: u64 = 1_000_000_000;
/// A group's interval when it names none.
pub const DEFAULT_INTERVAL_NANOS: u64 = 10 * SECOND_NANOS;
/// The shortest interval accepted.
pub const MIN_INTERVAL_NANOS: u64 = 100_000_000;

/// Why a rules file cannot be used: where (group, rule, field) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}{message}")]
pub struct RuleError {
    pub group: Option<String>,
    pub rule: Option<String>,
    pub field: Option<String>,
    pub message: String,
    location: String,
}

impl RuleError {
    fn new(group: Option<&str>, rule: Option<&str>, field: Option<&str>, message: String) -> Self {
        let mut location = String::new();
        if let Some(g) = group {
            location.push_str(&format!("group {g:?}: "));
        }
        if let Some(r) = rule {
            location.push_str(&format!("rule {r:?}: "));
        }
        if let Some(f) = field {
            location.push_str(&format!("`{f}`: "));
        }
        Self {
            group: group.map(str::to_owned),
            rule: rule.map(str::to_owned),
            field: field.map(str::to_owned),
            message,
            location,
        }
    }
}

/// Every problem of a file (checking goes on after the first, so one run lists them all).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RuleErrors(pub Vec<RuleError>);

impl fmt::Display for RuleErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Checked rules of one or more files.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleSet {
    pub groups: Vec<Group>,
    /// Every rule, in file order; [`Condition::Flow`] stages index into it.
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub name: String,
    pub interval_nanos: u64,
    /// Indexes into [`RuleSet::rules`].
    pub rules: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub group: String,
    pub name: String,
    pub condition: Condition,
    pub threshold: Option<Threshold>,
    pub for_nanos: u64,
    pub keep_firing_for_nanos: u64,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, Template>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// The count of spans matching `filter` that ended in the last `window_nanos`.
    Spans {
        filter: SpanFilter,
        window_nanos: u64,
    },
    /// A figure of the span metrics, the traces or a stored OTLP metric over a window.
    Metric {
        metric: MetricKind,
        service: Option<String>,
        operation: Option<String>,
        window_nanos: u64,
    },
    /// Other rules that must begin firing in this order within `within_nanos`.
    Flow {
        stages: Vec<usize>,
        within_nanos: u64,
        /// A matched stage that resolves before the flow completes starts it over.
        reset_on_resolve: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    Above(f64),
    Below(f64),
}

impl Threshold {
    pub fn holds(self, value: f64) -> bool {
        match self {
            Threshold::Above(t) => value > t,
            Threshold::Below(t) => value < t,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum MetricKind {
    /// Error spans over all spans of the service's entry spans (or of one operation).
    ErrorRate,
    /// Spans a second.
    RequestRate,
    /// A latency quantile in milliseconds (`p50` is 0.5).
    Quantile(f64),
    /// Whole traces over every judged trace (whole or incomplete).
    WholeTraceShare,
    /// A stored OTLP metric by name, its data points filtered by attributes.
    Otlp {
        name: String,
        attributes: BTreeMap<String, String>,
        aggregation: Aggregation,
    },
}

impl MetricKind {
    pub fn label(&self) -> String {
        match self {
            MetricKind::ErrorRate => "error_rate".into(),
            MetricKind::RequestRate => "request_rate".into(),
            MetricKind::Quantile(q) => format!("p{}", (q * 100.0).round()),
            MetricKind::WholeTraceShare => "whole_trace_share".into(),
            MetricKind::Otlp { name, .. } => format!("otlp {name}"),
        }
    }
}

/// How the data points of an OTLP metric in the window become one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregation {
    Last,
    Max,
    Min,
    Sum,
    Avg,
}

const METRICS: &str = "error_rate, request_rate, p50, p95, p99, whole_trace_share, otlp";

/// Which spans a span rule counts; every `Some` and every predicate must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpanFilter {
    pub service: Option<String>,
    pub operation: Option<String>,
    /// OTLP `SpanKind` number.
    pub kind: Option<i32>,
    /// OTLP status code number (0 unset, 1 ok, 2 error).
    pub status: Option<i32>,
    pub predicates: Vec<Predicate>,
}

/// `key op value` on a span's (or its resource's) attribute.
#[derive(Debug, Clone, PartialEq)]
pub struct Predicate {
    pub key: String,
    pub op: Op,
    pub value: Literal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Bool(bool),
    Number(f64),
    Str(String),
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Number(n) => write!(f, "{n}"),
            Literal::Str(s) => f.write_str(s),
        }
    }
}

/// An annotation with `{{ $value }}` and `{{ $labels.name }}` in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Template(pub Vec<Piece>);

#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Text(String),
    Value,
    Label(String),
}

impl Template {
    pub fn parse(input: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut rest = input;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| format!("{{{{ without }}}} in {input:?}"))?;
            let expr = after[..close].trim();
            if expr == "$value" {
                pieces.push(Piece::Value);
            } else if let Some(label) = expr.strip_prefix("$labels.") {
                if label.is_empty() {
                    return Err("{{ $labels. }} names no label".into());
                }
                pieces.push(Piece::Label(label.to_owned()));
            } else {
                return Err(format!(
                    "{{{{ {expr} }}}} is not {{{{ $value }}}} or {{{{ $labels.NAME }}}}"
                ));
            }
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        Ok(Self(pieces))
    }

    pub fn render(&self, value: Option<f64>, labels: &BTreeMap<String, String>) -> String {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Value => out.push_str(&format_value(value)),
                Piece::Label(l) => out.push_str(labels.get(l).map_or("", String::as_str)),
            }
        }
        out
    }
}

/// A value as annotations and pages show it: integers without decimals, others to 4 places.
pub fn format_value(value: Option<f64>) -> String {
    match value {
        None => "no data".into(),
        Some(v) if v.fract() == 0.0 && v.abs() < 1e15 => format!("{v:.0}"),
        Some(v) => {
            let s = format!("{v:.4}");
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        }
    }
}

/// A Prometheus-style duration (`0s`, `5s`, `1m`, `1h30m`, `2d`), or a bare `0`.
pub fn parse_duration(input: &str) -> Result<u64, String> {
    throughline_jaeger::params::go_duration_nanos("duration", input)
        .map_err(|_| format!("{input:?} is not a duration like 5s, 1m or 1h30m"))
}

/// Parses a `where` expression: `key op value` clauses joined by `and`.
pub fn parse_where(input: &str) -> Result<Vec<Predicate>, String> {
    let mut out = Vec::new();
    let mut clauses = Vec::new();
    let mut start = 0;
    // Split on the word `and` between spaces (any case); quoted values may not contain it.
    // Compared as bytes: a space is a char boundary, so the slices below are on boundaries.
    let bytes = input.as_bytes();
    let mut i = 0;
    while i + 5 <= bytes.len() {
        if bytes[i..i + 5].eq_ignore_ascii_case(b" and ") {
            clauses.push(&input[start..i]);
            start = i + 5;
            i += 5;
        } else {
            i += 1;
        }
    }
    clauses.push(&input[start..]);
    for clause in clauses {
        out.push(parse_clause(clause.trim())?);
    }
    Ok(out)
}

fn is_op_char(c: char) -> bool {
    matches!(c, '=' | '!' | '<' | '>' | '~')
}

fn parse_clause(clause: &str) -> Result<Predicate, String> {
    let op_at = clause
        .find(is_op_char)
        .ok_or_else(|| format!("{clause:?} is not `attribute op value` (op: = != > >= < <=)"))?;
    let key = clause[..op_at].trim();
    let after = &clause[op_at..];
    let op_len = after.find(|c: char| !is_op_char(c)).unwrap_or(after.len());
    let op_text = &after[..op_len];
    let value_text = after[op_len..].trim();
    if key.is_empty() || key.contains(char::is_whitespace) {
        return Err(format!("{clause:?}: {key:?} is not an attribute name"));
    }
    let op = match op_text {
        "=" | "==" => Op::Eq,
        "!=" => Op::Ne,
        ">" => Op::Gt,
        ">=" => Op::Ge,
        "<" => Op::Lt,
        "<=" => Op::Le,
        other => {
            return Err(format!(
                "{clause:?}: unknown operator {other:?} (known: = != > >= < <=)"
            ));
        }
    };
    if value_text.is_empty() {
        return Err(format!("{clause:?} has no value after {op_text}"));
    }
    let quoted =
        |q: char| value_text.len() >= 2 && value_text.starts_with(q) && value_text.ends_with(q);
    let value = if quoted('\'') || quoted('"') {
        Literal::Str(value_text[1..value_text.len() - 1].to_owned())
    } else if value_text == "true" {
        Literal::Bool(true)
    } else if value_text == "false" {
        Literal::Bool(false)
    } else if let Ok(n) = value_text.parse::<f64>() {
        Literal::Number(n)
    } else {
        Literal::Str(value_text.to_owned())
    };
    if matches!(op, Op::Gt | Op::Ge | Op::Lt | Op::Le) && !matches!(value, Literal::Number(_)) {
        return Err(format!(
            "{clause:?}: {op_text} compares numbers, {value_text:?} is not one"
        ));
    }
    Ok(Predicate {
        key: key.to_owned(),
        op,
        value,
    })
}

fn span_kind(input: &str) -> Option<i32> {
    Some(match input.to_ascii_lowercase().as_str() {
        "internal" => 1,
        "server" => 2,
        "client" => 3,
        "producer" => 4,
        "consumer" => 5,
        _ => return None,
    })
}

fn status_code(input: &str) -> Option<i32> {
    Some(match input.to_ascii_lowercase().as_str() {
        "unset" => 0,
        "ok" => 1,
        "error" => 2,
        _ => return None,
    })
}

/// Reads one rules file's text (YAML, or JSON which is YAML too).
pub fn parse(text: &str) -> Result<RuleSet, RuleErrors> {
    parse_files(&[("rules", text)])
}

/// Reads several files into one set: alert names are looked up across all of them by flows.
pub fn parse_files(files: &[(&str, &str)]) -> Result<RuleSet, RuleErrors> {
    let mut errors = Vec::new();
    let mut raw_groups = Vec::new();
    for (file, text) in files {
        let value: Value = match serde_saphyr::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                errors.push(RuleError::new(
                    None,
                    None,
                    None,
                    format!("{file}: not YAML: {e}"),
                ));
                continue;
            }
        };
        let Some(top) = value.as_object() else {
            errors.push(RuleError::new(
                None,
                None,
                None,
                format!("{file}: the file is not a mapping with `groups`"),
            ));
            continue;
        };
        for key in top.keys().filter(|k| *k != "groups") {
            errors.push(RuleError::new(
                None,
                None,
                Some(key),
                format!("{file}: unknown top-level key (only `groups`)"),
            ));
        }
        match top.get("groups").and_then(Value::as_array) {
            Some(groups) => raw_groups.extend(groups.iter().cloned()),
            None => errors.push(RuleError::new(
                None,
                None,
                Some("groups"),
                format!("{file}: missing, or not a list"),
            )),
        }
    }
    let mut set = RuleSet::default();
    // Flows are resolved once every rule is known: (rule index, names, group).
    let mut flows: Vec<(usize, Vec<String>)> = Vec::new();
    let mut group_names = HashMap::new();
    // Names of rules that did not check out: a flow naming one is not a second mistake.
    let mut broken_names = std::collections::HashSet::new();
    for (gi, g) in raw_groups.iter().enumerate() {
        let Some(g) = g.as_object() else {
            errors.push(RuleError::new(
                None,
                None,
                None,
                format!("groups[{gi}] is not a mapping"),
            ));
            continue;
        };
        let name = match g.get("name").and_then(Value::as_str) {
            Some(n) if !n.trim().is_empty() => n.to_owned(),
            _ => {
                errors.push(RuleError::new(
                    None,
                    None,
                    Some("name"),
                    format!("groups[{gi}] has no name"),
                ));
                format!("groups[{gi}]")
            }
        };
        if group_names.insert(name.clone(), gi).is_some() {
            errors.push(RuleError::new(
                Some(&name),
                None,
                Some("name"),
                "two groups have this name".into(),
            ));
        }
        let gerr =
            |field: &str, message: String| RuleError::new(Some(&name), None, Some(field), message);
        for key in g.keys() {
            if !matches!(key.as_str(), "name" | "interval" | "rules") {
                errors.push(gerr(
                    key,
                    "unknown group field (name, interval, rules)".into(),
                ));
            }
        }
        let interval_nanos = match g.get("interval") {
            None => DEFAULT_INTERVAL_NANOS,
            Some(v) => match duration_value(v) {
                Ok(d) if d >= MIN_INTERVAL_NANOS => d,
                Ok(_) => {
                    errors.push(gerr("interval", "shorter than 100ms".into()));
                    DEFAULT_INTERVAL_NANOS
                }
                Err(e) => {
                    errors.push(gerr("interval", e));
                    DEFAULT_INTERVAL_NANOS
                }
            },
        };
        let mut group = Group {
            name: name.clone(),
            interval_nanos,
            rules: Vec::new(),
        };
        let Some(rules) = g.get("rules").and_then(Value::as_array) else {
            errors.push(gerr("rules", "missing, or not a list".into()));
            continue;
        };
        for (ri, r) in rules.iter().enumerate() {
            match rule(&name, ri, r) {
                Ok((rule, flow_names)) => {
                    let index = set.rules.len();
                    if let Some(names) = flow_names {
                        flows.push((index, names));
                    }
                    group.rules.push(index);
                    set.rules.push(rule);
                }
                Err(mut e) => {
                    if let Some(n) = r.get("alert").and_then(Value::as_str) {
                        broken_names.insert(n.to_owned());
                    }
                    errors.append(&mut e);
                }
            }
        }
        set.groups.push(group);
    }
    // Alert names, for flows: a name in the flow's own group first, then one unique elsewhere.
    for (index, names) in &flows {
        let (group, rule_name) = (
            set.rules[*index].group.clone(),
            set.rules[*index].name.clone(),
        );
        let mut stages = Vec::new();
        for stage in names {
            let same: Vec<usize> = (0..set.rules.len())
                .filter(|i| set.rules[*i].name == *stage && set.rules[*i].group == group)
                .collect();
            let any: Vec<usize> = (0..set.rules.len())
                .filter(|i| set.rules[*i].name == *stage)
                .collect();
            let found = match (same.as_slice(), any.as_slice()) {
                ([one], _) | ([], [one]) => Some(*one),
                ([], []) if broken_names.contains(stage) => None,
                ([], []) => {
                    errors.push(RuleError::new(
                        Some(&group),
                        Some(&rule_name),
                        Some("flow"),
                        format!("names {stage:?}, which is no rule"),
                    ));
                    None
                }
                _ => {
                    errors.push(RuleError::new(
                        Some(&group),
                        Some(&rule_name),
                        Some("flow"),
                        format!("names {stage:?}, which more than one rule is called"),
                    ));
                    None
                }
            };
            if found == Some(*index) {
                errors.push(RuleError::new(
                    Some(&group),
                    Some(&rule_name),
                    Some("flow"),
                    "names itself".into(),
                ));
            } else if let Some(f) = found {
                stages.push(f);
            }
        }
        if let Condition::Flow { stages: s, .. } = &mut set.rules[*index].condition {
            *s = stages;
        }
    }
    if let Some(cycle) = find_cycle(&set.rules) {
        let first = &set.rules[cycle[0]];
        let names: Vec<&str> = cycle.iter().map(|i| set.rules[*i].name.as_str()).collect();
        errors.push(RuleError::new(
            Some(&first.group),
            Some(&first.name),
            Some("flow"),
            format!("a cycle of flows: {}", names.join(" → ")),
        ));
    }
    if errors.is_empty() {
        Ok(set)
    } else {
        Err(RuleErrors(errors))
    }
}

/// The flows in an order where every flow comes after the flows it names; `None` with a cycle.
pub fn find_cycle(rules: &[Rule]) -> Option<Vec<usize>> {
    // 0 unvisited, 1 on the path, 2 done.
    fn visit(i: usize, rules: &[Rule], mark: &mut [u8], path: &mut Vec<usize>) -> bool {
        mark[i] = 1;
        path.push(i);
        if let Condition::Flow { stages, .. } = &rules[i].condition {
            for &s in stages {
                if mark[s] == 1 {
                    let from = path.iter().position(|p| *p == s).unwrap_or(0);
                    path.drain(..from);
                    path.push(s);
                    return true;
                }
                if mark[s] == 0 && visit(s, rules, mark, path) {
                    return true;
                }
            }
        }
        path.pop();
        mark[i] = 2;
        false
    }
    let mut mark = vec![0u8; rules.len()];
    for i in 0..rules.len() {
        let mut path = Vec::new();
        if mark[i] == 0 && visit(i, rules, &mut mark, &mut path) {
            return Some(path);
        }
    }
    None
}

fn duration_value(v: &Value) -> Result<u64, String> {
    match v {
        Value::String(s) => parse_duration(s),
        Value::Number(n) if n.as_u64() == Some(0) => Ok(0),
        other => Err(format!("{other} is not a duration like 5s, 1m or 1h30m")),
    }
}

fn string_map(v: &Value) -> Result<BTreeMap<String, String>, String> {
    let Some(m) = v.as_object() else {
        return Err("not a mapping of names to values".into());
    };
    let mut out = BTreeMap::new();
    for (k, v) in m {
        let s = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => return Err(format!("{k}: not a string")),
        };
        out.insert(k.clone(), s);
    }
    Ok(out)
}

const RULE_FIELDS: &[&str] = &[
    "alert",
    "spans",
    "metric",
    "flow",
    "service",
    "operation",
    "name",
    "attributes",
    "aggregation",
    "window",
    "above",
    "below",
    "for",
    "keep_firing_for",
    "within",
    "reset",
    "labels",
    "annotations",
];

fn rule(
    group: &str,
    index: usize,
    raw: &Value,
) -> Result<(Rule, Option<Vec<String>>), Vec<RuleError>> {
    let Some(m) = raw.as_object() else {
        return Err(vec![RuleError::new(
            Some(group),
            None,
            None,
            format!("rules[{index}] is not a mapping"),
        )]);
    };
    let name = m.get("alert").and_then(Value::as_str).map(str::to_owned);
    let display = name.clone().unwrap_or_else(|| format!("rules[{index}]"));
    let mut errors = Vec::new();
    let mut err = |field: &str, message: String| {
        errors.push(RuleError::new(
            Some(group),
            Some(&display),
            Some(field),
            message,
        ));
    };
    match &name {
        None => err("alert", "missing: every rule needs its alert name".into()),
        Some(n)
            if n.is_empty()
                || !n
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')) =>
        {
            err(
                "alert",
                "must be letters, digits and _ - . : (it becomes the alertname label)".into(),
            )
        }
        _ => {}
    }
    for key in m.keys() {
        if !RULE_FIELDS.contains(&key.as_str()) {
            err(
                key,
                format!("unknown field (known: {})", RULE_FIELDS.join(", ")),
            );
        }
    }
    let kinds: Vec<&str> = ["spans", "metric", "flow"]
        .into_iter()
        .filter(|k| m.contains_key(*k))
        .collect();
    if kinds.len() != 1 {
        err(
            "spans",
            format!(
                "a rule has exactly one of spans, metric, flow (this one has {})",
                if kinds.is_empty() {
                    "none".to_owned()
                } else {
                    kinds.join(" and ")
                }
            ),
        );
    }
    let kind = kinds.first().copied().unwrap_or("spans");
    let allowed: &[&str] = match kind {
        "spans" => &["window", "above", "below"],
        "metric" => &[
            "service",
            "operation",
            "name",
            "attributes",
            "aggregation",
            "window",
            "above",
            "below",
        ],
        _ => &["within", "reset"],
    };
    for key in [
        "service",
        "operation",
        "name",
        "attributes",
        "aggregation",
        "window",
        "above",
        "below",
        "within",
        "reset",
    ] {
        if m.contains_key(key) && !allowed.contains(&key) {
            err(key, format!("does not apply to a {kind} rule"));
        }
    }
    let mut dur = |field: &str, required: bool| -> u64 {
        match m.get(field) {
            None if required => {
                err(field, "missing".into());
                0
            }
            None => 0,
            Some(v) => duration_value(v).unwrap_or_else(|e| {
                err(field, e);
                0
            }),
        }
    };
    let for_nanos = dur("for", false);
    let keep_firing_for_nanos = dur("keep_firing_for", false);
    let window_nanos = if kind == "flow" {
        0
    } else {
        dur("window", true)
    };
    let within_nanos = if kind == "flow" {
        dur("within", true)
    } else {
        0
    };
    let zero = |field: &str| m.get(field).and_then(|v| duration_value(v).ok()) == Some(0);
    if kind != "flow" && zero("window") {
        err("window", "must be longer than 0s".into());
    }
    let number = |field: &str| -> Result<Option<f64>, String> {
        match m.get(field) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_f64()
                .filter(|f| f.is_finite())
                .map(Some)
                .ok_or_else(|| "not a finite number".into()),
            Some(other) => Err(format!("{other} is not a number")),
        }
    };
    let mut threshold = None;
    if kind != "flow" {
        match (number("above"), number("below")) {
            (Ok(Some(a)), Ok(None)) => threshold = Some(Threshold::Above(a)),
            (Ok(None), Ok(Some(b))) => threshold = Some(Threshold::Below(b)),
            (Ok(Some(_)), Ok(Some(_))) => err("below", "give `above` or `below`, not both".into()),
            (Ok(None), Ok(None)) => err("above", "missing: give `above` or `below`".into()),
            (Err(e), _) => err("above", e),
            (_, Err(e)) => err("below", e),
        }
    }
    let opt_str = |field: &str| -> Result<Option<String>, String> {
        match m.get(field) {
            None => Ok(None),
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_owned())),
            Some(other) => Err(format!("{other} is not a non-empty string")),
        }
    };
    let mut flow_names = None;
    let condition = match kind {
        "spans" => {
            let mut filter = SpanFilter::default();
            match m.get("spans") {
                Some(Value::Object(s)) => {
                    for (k, v) in s {
                        let text = match v {
                            Value::String(t) => t.trim().to_owned(),
                            _ => {
                                err(&format!("spans.{k}"), format!("{v} is not a string"));
                                continue;
                            }
                        };
                        match k.as_str() {
                            "service" => filter.service = Some(text),
                            "operation" => filter.operation = Some(text),
                            "kind" => match span_kind(&text) {
                                Some(k) => filter.kind = Some(k),
                                None => err(
                                    "spans.kind",
                                    format!(
                                        "{text:?} is not internal, server, client, producer or consumer"
                                    ),
                                ),
                            },
                            "status" => match status_code(&text) {
                                Some(c) => filter.status = Some(c),
                                None => err(
                                    "spans.status",
                                    format!("{text:?} is not ok, error or unset"),
                                ),
                            },
                            "where" => match parse_where(&text) {
                                Ok(p) => filter.predicates = p,
                                Err(e) => err("spans.where", e),
                            },
                            other => err(
                                &format!("spans.{other}"),
                                "unknown filter (service, operation, kind, status, where)".into(),
                            ),
                        }
                    }
                }
                _ => err(
                    "spans",
                    "not a mapping of service, operation, kind, status, where".into(),
                ),
            }
            Condition::Spans {
                filter,
                window_nanos,
            }
        }
        "metric" => {
            let metric_name = m.get("metric").and_then(Value::as_str).unwrap_or_default();
            let service = opt_str("service").unwrap_or_else(|e| {
                err("service", e);
                None
            });
            let operation = opt_str("operation").unwrap_or_else(|e| {
                err("operation", e);
                None
            });
            let metric = match metric_name {
                "error_rate" => MetricKind::ErrorRate,
                "request_rate" => MetricKind::RequestRate,
                "p50" => MetricKind::Quantile(0.5),
                "p90" => MetricKind::Quantile(0.9),
                "p95" => MetricKind::Quantile(0.95),
                "p99" => MetricKind::Quantile(0.99),
                "whole_trace_share" => MetricKind::WholeTraceShare,
                "otlp" => {
                    let name = opt_str("name").ok().flatten().unwrap_or_else(|| {
                        err("name", "missing: the OTLP metric's name".into());
                        String::new()
                    });
                    let attributes = match m.get("attributes") {
                        None => BTreeMap::new(),
                        Some(v) => string_map(v).unwrap_or_else(|e| {
                            err("attributes", e);
                            BTreeMap::new()
                        }),
                    };
                    let aggregation = match m.get("aggregation").and_then(Value::as_str) {
                        None | Some("last") => Aggregation::Last,
                        Some("max") => Aggregation::Max,
                        Some("min") => Aggregation::Min,
                        Some("sum") => Aggregation::Sum,
                        Some("avg") => Aggregation::Avg,
                        Some(other) => {
                            err(
                                "aggregation",
                                format!("{other:?} is not last, max, min, sum or avg"),
                            );
                            Aggregation::Last
                        }
                    };
                    MetricKind::Otlp {
                        name,
                        attributes,
                        aggregation,
                    }
                }
                other => {
                    err(
                        "metric",
                        format!("{other:?} is not a known metric (known: {METRICS})"),
                    );
                    MetricKind::ErrorRate
                }
            };
            if metric_name != "otlp" {
                for key in ["name", "attributes", "aggregation"] {
                    if m.contains_key(key) {
                        err(key, "only applies to `metric: otlp`".into());
                    }
                }
            }
            let per_service = matches!(
                metric,
                MetricKind::ErrorRate | MetricKind::RequestRate | MetricKind::Quantile(_)
            );
            if per_service && service.is_none() {
                err("service", format!("missing: {metric_name} is per service"));
            }
            if !per_service && metric_name != "otlp" && (service.is_some() || operation.is_some()) {
                err(
                    "service",
                    format!("{metric_name} is over every trace: drop service and operation"),
                );
            }
            Condition::Metric {
                metric,
                service,
                operation,
                window_nanos,
            }
        }
        _ => {
            match m.get("flow") {
                Some(Value::Array(stages)) if stages.len() >= 2 => {
                    let names: Vec<String> = stages
                        .iter()
                        .filter_map(|s| s.as_str().map(str::to_owned))
                        .collect();
                    if names.len() != stages.len() {
                        err("flow", "every stage is an alert name".into());
                    }
                    flow_names = Some(names);
                }
                _ => err("flow", "a list of at least two alert names".into()),
            }
            let reset_on_resolve = match m.get("reset").and_then(Value::as_str) {
                None | Some("never") => false,
                Some("on_resolve") => true,
                Some(other) => {
                    err("reset", format!("{other:?} is not never or on_resolve"));
                    false
                }
            };
            if zero("within") {
                err("within", "must be longer than 0s".into());
            }
            Condition::Flow {
                stages: Vec::new(),
                within_nanos,
                reset_on_resolve,
            }
        }
    };
    let mut labels = match m.get("labels") {
        None => BTreeMap::new(),
        Some(v) => string_map(v).unwrap_or_else(|e| {
            err("labels", e);
            BTreeMap::new()
        }),
    };
    if labels.contains_key("alertname") {
        err("labels", "alertname is the rule's `alert`".into());
    }
    let mut annotations = BTreeMap::new();
    if let Some(v) = m.get("annotations") {
        match string_map(v) {
            Ok(a) => {
                for (k, text) in a {
                    match Template::parse(&text) {
                        Ok(t) => {
                            annotations.insert(k, t);
                        }
                        Err(e) => err(&format!("annotations.{k}"), e),
                    }
                }
            }
            Err(e) => err("annotations", e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let name = name.unwrap_or_default();
    labels.insert("alertname".into(), name.clone());
    Ok((
        Rule {
            group: group.to_owned(),
            name,
            condition,
            threshold,
            for_nanos,
            keep_firing_for_nanos,
            labels,
            annotations,
        },
        flow_names,
    ))
}
