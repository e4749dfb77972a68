//! The EventBridge JSON protocol: rules with event patterns, SQS targets, and `PutEvents`
//! delivering the event envelope AWS delivers to every matching target queue.
//!
//! Any event bus name is accepted (no `CreateEventBus` needed); rules belong to the bus they were
//! put on, `default` when none is named.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::ApiError;
use crate::pattern::Pattern;
use crate::queue::{Owner, queue_name_from_arn};
use crate::rule::{Rule, Target, rule_key};
use crate::sqs::event_message;
use crate::state::{Shared, State, now_ms};
use crate::store::WriteOp;

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::events(
            "ValidationException",
            format!("the request body is not a valid request: {e}"),
        )
    })
}

fn validation(message: impl Into<String>) -> ApiError {
    ApiError::events("ValidationException", message)
}

fn not_found(rule: &str, bus: &str) -> ApiError {
    ApiError::events(
        "ResourceNotFoundException",
        format!("Rule {rule} does not exist on EventBus {bus}."),
    )
}

/// The bus a request names (a name or an ARN), `default` when absent.
fn bus_name(bus: Option<&str>) -> String {
    match bus {
        None | Some("") => "default".into(),
        Some(b) => b.rsplit("event-bus/").next().unwrap_or(b).to_owned(),
    }
}

fn required(value: Option<String>, name: &str) -> Result<String, ApiError> {
    value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| validation(format!("1 validation error detected: Value null at '{name}' failed to satisfy constraint: Member must not be null")))
}

fn valid_rule_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// Handles one EventBridge operation.
pub async fn handle(shared: &Shared, operation: &str, body: &[u8]) -> Result<Value, ApiError> {
    match operation {
        "PutRule" => put_rule(shared, parse(body)?).await,
        "DescribeRule" => {
            let req: RuleRequest = parse(body)?;
            let bus = bus_name(req.event_bus_name.as_deref());
            let name = required(req.name, "name")?;
            let state = shared.lock();
            let rule = state
                .rules
                .get(&rule_key(&bus, &name))
                .ok_or_else(|| not_found(&name, &bus))?;
            Ok(describe(shared, rule))
        }
        "DeleteRule" => {
            let req: RuleRequest = parse(body)?;
            let bus = bus_name(req.event_bus_name.as_deref());
            let name = required(req.name, "name")?;
            let key = rule_key(&bus, &name);
            shared
                .change(|s| {
                    let Some(rule) = s.rules.get(&key) else {
                        // AWS answers success for a rule that is not there.
                        return Ok(((), vec![]));
                    };
                    if !rule.targets.is_empty() && !req.force.unwrap_or(false) {
                        return Err(validation("Rule can't be deleted since it has targets."));
                    }
                    s.rules.remove(&key);
                    Ok(((), vec![WriteOp::DeleteRule { name: key.clone() }]))
                })
                .await?;
            Ok(json!({}))
        }
        "ListRules" => list_rules(shared, parse(body)?),
        "PutTargets" => put_targets(shared, parse(body)?).await,
        "RemoveTargets" => remove_targets(shared, parse(body)?).await,
        "ListTargetsByRule" => {
            let req: RuleRequest = parse(body)?;
            let bus = bus_name(req.event_bus_name.as_deref());
            let name = required(req.rule.or(req.name), "rule")?;
            let state = shared.lock();
            let rule = state
                .rules
                .get(&rule_key(&bus, &name))
                .ok_or_else(|| not_found(&name, &bus))?;
            let targets: Vec<Value> = rule.targets.values().map(render_target).collect();
            Ok(json!({ "Targets": targets }))
        }
        "PutEvents" => put_events(shared, parse(body)?).await,
        other => Err(ApiError::events(
            "UnknownOperationException",
            format!("the operation AWSEvents.{other} is not supported by this broker"),
        )),
    }
}

fn rule_arn(shared: &Shared, rule: &Rule) -> String {
    let path = if rule.event_bus == "default" {
        rule.name.clone()
    } else {
        format!("{}/{}", rule.event_bus, rule.name)
    };
    format!(
        "arn:aws:events:{}:{}:rule/{path}",
        shared.owner.region, shared.owner.account_id
    )
}

fn describe(shared: &Shared, rule: &Rule) -> Value {
    let mut out = json!({
        "Name": rule.name,
        "Arn": rule_arn(shared, rule),
        "EventPattern": rule.event_pattern,
        "State": if rule.enabled { "ENABLED" } else { "DISABLED" },
        "EventBusName": rule.event_bus,
    });
    if let (Some(d), Some(obj)) = (&rule.description, out.as_object_mut()) {
        obj.insert("Description".into(), json!(d));
    }
    out
}

fn render_target(t: &Target) -> Value {
    let mut out = json!({ "Id": t.id, "Arn": t.arn });
    if let Some(obj) = out.as_object_mut() {
        if let Some(input) = &t.input {
            obj.insert("Input".into(), json!(input));
        }
        if let Some(path) = &t.input_path {
            obj.insert("InputPath".into(), json!(path));
        }
    }
    out
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RuleRequest {
    name: Option<String>,
    rule: Option<String>,
    event_bus_name: Option<String>,
    force: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutRuleRequest {
    name: Option<String>,
    event_pattern: Option<String>,
    schedule_expression: Option<String>,
    state: Option<String>,
    description: Option<String>,
    event_bus_name: Option<String>,
}

/// Validates and stores a rule (also used for rules declared at start-up).
pub fn put_rule_in(state: &mut State, rule: Rule) -> Result<WriteOp, ApiError> {
    let key = rule_key(&rule.event_bus, &rule.name);
    let mut rule = rule;
    if let Some(existing) = state.rules.get(&key) {
        // PutRule updates the rule and keeps its targets.
        if rule.targets.is_empty() {
            rule.targets = existing.targets.clone();
        }
    }
    let json = serde_json::to_string(&rule).unwrap_or_default();
    state.rules.insert(key.clone(), rule);
    Ok(WriteOp::PutRule { name: key, json })
}

/// Checks a rule's name and pattern.
pub fn check_rule(name: &str, pattern: &str) -> Result<(), ApiError> {
    if !valid_rule_name(name) {
        return Err(validation(format!(
            "1 validation error detected: Value '{name}' at 'name' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\.\\-_A-Za-z0-9]+ and be at most 64 long"
        )));
    }
    Pattern::parse(pattern)
        .map_err(|e| ApiError::events("InvalidEventPatternException", e.to_string()))?;
    Ok(())
}

async fn put_rule(shared: &Shared, req: PutRuleRequest) -> Result<Value, ApiError> {
    let name = required(req.name, "name")?;
    if req.schedule_expression.is_some() {
        return Err(validation(
            "ScheduleExpression: scheduled rules are not supported by this broker",
        ));
    }
    let pattern = req
        .event_pattern
        .ok_or_else(|| validation("Parameter(s) EventPattern must be specified."))?;
    check_rule(&name, &pattern)?;
    let enabled = match req.state.as_deref() {
        None | Some("ENABLED") => true,
        Some("DISABLED") => false,
        Some(other) => {
            return Err(validation(format!(
                "State {other:?}: must be ENABLED or DISABLED"
            )));
        }
    };
    let rule = Rule {
        name,
        event_bus: bus_name(req.event_bus_name.as_deref()),
        event_pattern: pattern,
        enabled,
        description: req.description,
        targets: BTreeMap::new(),
    };
    let arn = rule_arn(shared, &rule);
    shared
        .change(|s| Ok(((), vec![put_rule_in(s, rule)?])))
        .await?;
    Ok(json!({ "RuleArn": arn }))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListRulesRequest {
    name_prefix: Option<String>,
    event_bus_name: Option<String>,
    limit: Option<i64>,
    next_token: Option<String>,
}

fn list_rules(shared: &Shared, req: ListRulesRequest) -> Result<Value, ApiError> {
    let bus = bus_name(req.event_bus_name.as_deref());
    let limit = match req.limit {
        None => 100,
        Some(n @ 1..=100) => n as usize,
        Some(n) => return Err(validation(format!("Limit {n}: must be between 1 and 100"))),
    };
    let prefix = req.name_prefix.unwrap_or_default();
    let after = req.next_token.unwrap_or_default();
    let state = shared.lock();
    let mut rules: Vec<&Rule> = state
        .rules
        .values()
        .filter(|r| {
            r.event_bus == bus && r.name.starts_with(&prefix) && r.name.as_str() > after.as_str()
        })
        .collect();
    let mut out = serde_json::Map::new();
    if rules.len() > limit {
        rules.truncate(limit);
        if let Some(last) = rules.last() {
            out.insert("NextToken".into(), json!(last.name));
        }
    }
    out.insert(
        "Rules".into(),
        json!(
            rules
                .iter()
                .map(|r| describe(shared, r))
                .collect::<Vec<_>>()
        ),
    );
    Ok(Value::Object(out))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TargetEntry {
    id: Option<String>,
    arn: Option<String>,
    input: Option<String>,
    input_path: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutTargetsRequest {
    rule: Option<String>,
    event_bus_name: Option<String>,
    #[serde(default)]
    targets: Vec<TargetEntry>,
}

/// Checks one target: SQS queue ARNs only, of the broker's own region and account (the only
/// queues it could deliver to).
pub fn check_target(owner: &Owner, id: &str, arn: &str) -> Result<(), (String, String)> {
    if !(1..=64).contains(&id.len())
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    {
        return Err((
            "ValidationException".into(),
            format!("target id {id:?} is invalid"),
        ));
    }
    if queue_name_from_arn(arn).is_none() {
        return Err((
            "ValidationException".into(),
            format!("target arn {arn:?}: only SQS queue targets are supported"),
        ));
    }
    if owner.local_queue(arn).is_none() {
        return Err((
            "ValidationException".into(),
            format!(
                "target arn {arn:?}: not a queue of this broker, whose queues are arn:aws:sqs:{}:{}:NAME",
                owner.region, owner.account_id
            ),
        ));
    }
    Ok(())
}

async fn put_targets(shared: &Shared, req: PutTargetsRequest) -> Result<Value, ApiError> {
    let rule_name = required(req.rule, "rule")?;
    let bus = bus_name(req.event_bus_name.as_deref());
    if req.targets.is_empty() || req.targets.len() > 10 {
        return Err(validation(
            "Targets: between 1 and 10 targets must be given",
        ));
    }
    let key = rule_key(&bus, &rule_name);
    shared
        .change(|s| {
            let rule = s
                .rules
                .get_mut(&key)
                .ok_or_else(|| not_found(&rule_name, &bus))?;
            let mut failed = Vec::new();
            for t in req.targets {
                let id = t.id.unwrap_or_default();
                let arn = t.arn.unwrap_or_default();
                if let Err((code, message)) = check_target(&shared.owner, &id, &arn) {
                    failed.push(
                        json!({ "TargetId": id, "ErrorCode": code, "ErrorMessage": message }),
                    );
                    continue;
                }
                rule.targets.insert(
                    id.clone(),
                    Target {
                        id,
                        arn,
                        input: t.input,
                        input_path: t.input_path,
                    },
                );
            }
            let json = serde_json::to_string(&*rule).unwrap_or_default();
            let response = json!({ "FailedEntryCount": failed.len(), "FailedEntries": failed });
            Ok((
                response,
                vec![WriteOp::PutRule {
                    name: key.clone(),
                    json,
                }],
            ))
        })
        .await
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RemoveTargetsRequest {
    rule: Option<String>,
    event_bus_name: Option<String>,
    #[serde(default)]
    ids: Vec<String>,
}

async fn remove_targets(shared: &Shared, req: RemoveTargetsRequest) -> Result<Value, ApiError> {
    let rule_name = required(req.rule, "rule")?;
    let bus = bus_name(req.event_bus_name.as_deref());
    let key = rule_key(&bus, &rule_name);
    shared
        .change(|s| {
            let rule = s
                .rules
                .get_mut(&key)
                .ok_or_else(|| not_found(&rule_name, &bus))?;
            for id in &req.ids {
                rule.targets.remove(id);
            }
            let json = serde_json::to_string(&*rule).unwrap_or_default();
            Ok((
                json!({ "FailedEntryCount": 0, "FailedEntries": [] }),
                vec![WriteOp::PutRule {
                    name: key.clone(),
                    json,
                }],
            ))
        })
        .await
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EventEntry {
    source: Option<String>,
    detail_type: Option<String>,
    detail: Option<String>,
    #[serde(default)]
    resources: Vec<String>,
    time: Option<Value>,
    event_bus_name: Option<String>,
    trace_header: Option<String>,
}

/// AWS's limit on the entries of one `PutEvents` request (256 KB), counted as [`EventEntry::size`].
const MAX_PUT_EVENTS_BYTES: usize = 256 * 1024;

impl EventEntry {
    /// The entry's size as AWS counts it ("Calculating PutEvents event entry size"): 14 bytes for a
    /// `Time`, then the UTF-8 bytes of `Source`, `DetailType`, `Detail` and each of `Resources`.
    fn size(&self) -> usize {
        let time = if self.time.is_some() { 14 } else { 0 };
        let text = |s: &Option<String>| s.as_deref().map_or(0, str::len);
        time + text(&self.source)
            + text(&self.detail_type)
            + text(&self.detail)
            + self.resources.iter().map(String::len).sum::<usize>()
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutEventsRequest {
    #[serde(default)]
    entries: Vec<EventEntry>,
}

fn event_time(time: Option<&Value>, now_ms: u64) -> String {
    // The SDKs send `Time` as epoch seconds (a number); anything else falls back to now.
    let secs = time
        .and_then(Value::as_f64)
        .map_or(now_ms / 1000, |t| t.max(0.0) as u64);
    OffsetDateTime::from_unix_timestamp(secs as i64)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// Builds the envelope for `entry`, or the entry's error code and message.
fn envelope(
    shared: &Shared,
    entry: &EventEntry,
    now: u64,
) -> Result<Value, (&'static str, String)> {
    let source = entry.source.as_deref().filter(|s| !s.is_empty()).ok_or((
        "InvalidArgument",
        "Parameter Source is not valid. Reason: Source is a required argument.".to_owned(),
    ))?;
    let detail_type = entry
        .detail_type
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or((
            "InvalidArgument",
            "Parameter DetailType is not valid. Reason: DetailType is a required argument."
                .to_owned(),
        ))?;
    let detail_text = entry.detail.as_deref().ok_or((
        "InvalidArgument",
        "Parameter Detail is not valid. Reason: Detail is a required argument.".to_owned(),
    ))?;
    let detail: Value = serde_json::from_str(detail_text)
        .map_err(|_| ("MalformedDetail", "Detail is malformed.".to_owned()))?;
    if !detail.is_object() {
        return Err(("MalformedDetail", "Detail is malformed.".to_owned()));
    }
    Ok(json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": detail_type,
        "source": source,
        "account": shared.owner.account_id,
        "time": event_time(entry.time.as_ref(), now),
        "region": shared.owner.region,
        "resources": entry.resources,
        "detail": detail,
    }))
}

/// What a target receives: the whole event, a constant, or the part an `InputPath` selects.
fn target_body(target: &Target, event: &Value) -> String {
    if let Some(input) = &target.input {
        return input.clone();
    }
    if let Some(path) = &target.input_path {
        let mut node = Some(event);
        for key in path
            .trim_start_matches('$')
            .split('.')
            .filter(|k| !k.is_empty())
        {
            node = node.and_then(|n| n.get(key));
        }
        return node.map_or_else(|| "null".to_owned(), Value::to_string);
    }
    event.to_string()
}

async fn put_events(shared: &Shared, req: PutEventsRequest) -> Result<Value, ApiError> {
    if req.entries.is_empty() || req.entries.len() > 10 {
        return Err(validation(format!(
            "1 validation error detected: Value at 'entries' failed to satisfy constraint: Member must have length between 1 and 10 (got {})",
            req.entries.len()
        )));
    }
    let size: usize = req.entries.iter().map(EventEntry::size).sum();
    if size > MAX_PUT_EVENTS_BYTES {
        return Err(validation(
            "Total size of the entries in the request is over the limit.",
        ));
    }
    let now = now_ms();
    shared
        .change(|s| {
            let mut results = Vec::new();
            let mut failed = 0;
            let mut ops = Vec::new();
            for entry in &req.entries {
                let event = match envelope(shared, entry, now) {
                    Ok(event) => event,
                    Err((code, message)) => {
                        failed += 1;
                        results.push(json!({ "ErrorCode": code, "ErrorMessage": message }));
                        continue;
                    }
                };
                let bus = bus_name(entry.event_bus_name.as_deref());
                let mut deliveries = Vec::new();
                for rule in s.rules.values().filter(|r| r.enabled && r.event_bus == bus) {
                    // Stored patterns were validated when put.
                    let Ok(pattern) = Pattern::parse(&rule.event_pattern) else { continue };
                    if !pattern.matches(&event) {
                        continue;
                    }
                    for target in rule.targets.values() {
                        // Targets were checked against the broker's account when put.
                        if let Some(queue) = s.owner.local_queue(&target.arn) {
                            deliveries.push((queue.to_owned(), target_body(target, &event)));
                        }
                    }
                }
                for (queue, body) in deliveries {
                    if s.queues.contains_key(&queue) {
                        let message = event_message(s, body, entry.trace_header.clone(), now);
                        ops.push(s.enqueue(&queue, message)?);
                    } else {
                        tracing::warn!(queue = %queue, "eventbridge target queue does not exist; event dropped for it");
                    }
                }
                results.push(json!({ "EventId": event["id"] }));
            }
            Ok((json!({ "FailedEntryCount": failed, "Entries": results }), ops))
        })
        .await
}
