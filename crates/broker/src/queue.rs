//! One queue in memory: its settings, its messages ordered by when they may next be received, and
//! the SQS delivery rules (visibility timeout, delay, retention). No I/O; time is passed in.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use tokio::sync::Notify;

use crate::error::ApiError;
use crate::message::Message;

/// Largest message (body plus attributes) AWS accepts, and the default `MaximumMessageSize`.
pub const MAX_MESSAGE_BYTES: u32 = 262_144;

/// A queue's redrive policy: after `max_receive_count` receives, the next receive moves the
/// message to `dead_letter_queue` instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redrive {
    pub dead_letter_arn: String,
    pub dead_letter_queue: String,
    pub max_receive_count: u32,
}

/// The typed queue attributes that drive delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub visibility_timeout_secs: u32,
    pub delay_secs: u32,
    pub retention_secs: u32,
    pub max_message_bytes: u32,
    pub receive_wait_secs: u32,
    pub redrive: Option<Redrive>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            visibility_timeout_secs: 30,
            delay_secs: 0,
            retention_secs: 345_600,
            max_message_bytes: MAX_MESSAGE_BYTES,
            receive_wait_secs: 0,
            redrive: None,
        }
    }
}

/// Attributes a client may set, besides the typed ones, stored and returned as given.
const PASSTHROUGH: &[&str] = &[
    "Policy",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "SqsManagedSseEnabled",
    "RedriveAllowPolicy",
];

fn ranged(name: &str, value: &str, min: u32, max: u32) -> Result<u32, ApiError> {
    value
        .parse::<u32>()
        .ok()
        .filter(|v| (min..=max).contains(v))
        .ok_or_else(|| {
            ApiError::invalid_attribute_value(format!(
                "Invalid value for the parameter {name}: {value:?} is not an integer from {min} to {max}."
            ))
        })
}

/// The queue name in an SQS ARN (`arn:aws:sqs:region:account:name`), whatever its region and
/// account: for telling a queue ARN from another kind; [`Owner::local_queue`] says whether it
/// names one of this broker's queues.
pub fn queue_name_from_arn(arn: &str) -> Option<&str> {
    sqs_arn(arn).map(|(_, _, name)| name)
}

/// The region, account and queue name of an SQS ARN.
fn sqs_arn(arn: &str) -> Option<(&str, &str, &str)> {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(_), Some("sqs"), Some(region), Some(account), Some(name)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    valid_queue_name(name).then_some((region, account, name))
}

/// The region and account the broker's queues are in: what their ARNs and URLs name, and what
/// an ARN must name to reach one of them (a redrive policy's dead-letter queue, an EventBridge
/// target).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub region: String,
    pub account_id: String,
}

impl Default for Owner {
    /// `us-east-1`, `000000000000`: the broker's defaults.
    fn default() -> Self {
        Self {
            region: "us-east-1".to_owned(),
            account_id: crate::config::DEFAULT_ACCOUNT_ID.to_owned(),
        }
    }
}

impl Owner {
    /// `arn:aws:sqs:REGION:ACCOUNT:NAME`.
    pub fn queue_arn(&self, name: &str) -> String {
        format!("arn:aws:sqs:{}:{}:{name}", self.region, self.account_id)
    }

    /// The name of the queue `arn` names when it is in this region and account; `None` for an
    /// ARN that is not an SQS queue's or names another region's or account's queue.
    pub fn local_queue<'a>(&self, arn: &'a str) -> Option<&'a str> {
        let (region, account, name) = sqs_arn(arn)?;
        (region == self.region && account == self.account_id).then_some(name)
    }
}

/// Whether `name` is a valid standard queue name: 1 to 80 of `[A-Za-z0-9_-]`.
pub fn valid_queue_name(name: &str) -> bool {
    (1..=80).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Applies `changes` (AWS attribute names to string values) on top of `settings`, validating each.
pub fn apply_attributes(
    settings: &mut Settings,
    stored: &mut BTreeMap<String, String>,
    changes: &BTreeMap<String, String>,
) -> Result<(), ApiError> {
    for (name, value) in changes {
        match name.as_str() {
            "VisibilityTimeout" => {
                settings.visibility_timeout_secs = ranged(name, value, 0, 43_200)?
            }
            "DelaySeconds" => settings.delay_secs = ranged(name, value, 0, 900)?,
            "MessageRetentionPeriod" => {
                settings.retention_secs = ranged(name, value, 60, 1_209_600)?
            }
            "MaximumMessageSize" => {
                settings.max_message_bytes = ranged(name, value, 1024, MAX_MESSAGE_BYTES)?
            }
            "ReceiveMessageWaitTimeSeconds" => {
                settings.receive_wait_secs = ranged(name, value, 0, 20)?
            }
            "RedrivePolicy" if value.is_empty() => settings.redrive = None,
            "RedrivePolicy" => settings.redrive = Some(parse_redrive(value)?),
            "FifoQueue"
            | "ContentBasedDeduplication"
            | "DeduplicationScope"
            | "FifoThroughputLimit" => {
                return Err(ApiError::invalid_attribute_name(format!(
                    "{name}: fifo queues are not supported by this broker"
                )));
            }
            other if PASSTHROUGH.contains(&other) => {}
            other => {
                return Err(ApiError::invalid_attribute_name(format!(
                    "Unknown Attribute {other}."
                )));
            }
        }
        stored.insert(name.clone(), value.clone());
    }
    Ok(())
}

fn parse_redrive(value: &str) -> Result<Redrive, ApiError> {
    let invalid = |why: &str| {
        ApiError::invalid_attribute_value(format!(
            "Value {value} for parameter RedrivePolicy is invalid. Reason: {why}"
        ))
    };
    let json: serde_json::Value = serde_json::from_str(value)
        .map_err(|_| invalid("Redrive policy is not a valid JSON map."))?;
    let arn = json
        .get("deadLetterTargetArn")
        .and_then(|v| v.as_str())
        .ok_or_else(|| {
            invalid("Redrive policy does not contain mandatory attribute: deadLetterTargetArn.")
        })?;
    let name = queue_name_from_arn(arn)
        .ok_or_else(|| invalid("Invalid value for deadLetterTargetArn."))?;
    let count = match json.get("maxReceiveCount") {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        _ => None,
    }
    .filter(|c| (1..=1000).contains(c))
    .ok_or_else(|| {
        invalid("Invalid value for maxReceiveCount: must be an integer from 1 to 1000.")
    })?;
    Ok(Redrive {
        dead_letter_arn: arn.to_owned(),
        dead_letter_queue: name.to_owned(),
        max_receive_count: count as u32,
    })
}

/// Counters a user watches; kept in memory, they restart at zero with the broker.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counters {
    pub sent: u64,
    pub received: u64,
    pub deleted: u64,
    pub moved_to_dead_letter: u64,
}

/// Depth figures at one instant.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Depth {
    pub visible: u64,
    pub in_flight: u64,
    pub delayed: u64,
    pub oldest_age_secs: u64,
}

/// A queue and its messages.
#[derive(Debug)]
pub struct Queue {
    pub name: String,
    /// The attributes as set (AWS names), for `GetQueueAttributes` and storage.
    pub attributes: BTreeMap<String, String>,
    pub settings: Settings,
    pub created_secs: u64,
    pub modified_secs: u64,
    messages: HashMap<u64, Message>,
    /// (available_at_ms, seq) of every message: receive takes from the front.
    schedule: BTreeSet<(u64, u64)>,
    pub notify: Arc<Notify>,
    /// `ReceiveMessage` calls waiting (long polling) on this queue right now.
    pub waiting: Arc<std::sync::atomic::AtomicU64>,
    pub counters: Counters,
}

impl Queue {
    pub fn new(name: String, created_secs: u64) -> Self {
        Self {
            name,
            attributes: BTreeMap::new(),
            settings: Settings::default(),
            created_secs,
            modified_secs: created_secs,
            messages: HashMap::new(),
            schedule: BTreeSet::new(),
            notify: Arc::new(Notify::new()),
            waiting: Arc::default(),
            counters: Counters::default(),
        }
    }

    /// Adds a message (new, moved here, or loaded from disk) and wakes long pollers.
    pub fn insert(&mut self, message: Message) {
        self.schedule.insert((message.available_at_ms, message.seq));
        self.messages.insert(message.seq, message);
        self.notify.notify_waiters();
    }

    pub fn get(&self, seq: u64) -> Option<&Message> {
        self.messages.get(&seq)
    }

    pub fn remove(&mut self, seq: u64) -> Option<Message> {
        let message = self.messages.remove(&seq)?;
        self.schedule.remove(&(message.available_at_ms, seq));
        Some(message)
    }

    /// Removes every message; returns how many there were.
    pub fn purge(&mut self) -> usize {
        let count = self.messages.len();
        self.messages.clear();
        self.schedule.clear();
        count
    }

    /// Takes the next message that may be received at `now_ms`, out of the schedule.
    /// The caller either reschedules it ([`Queue::reschedule`]) or removes it.
    pub fn pop_available(&mut self, now_ms: u64) -> Option<u64> {
        let &(at, seq) = self.schedule.first()?;
        if at > now_ms {
            return None;
        }
        self.schedule.pop_first();
        Some(seq)
    }

    /// Puts a message taken by [`Queue::pop_available`] back in the schedule at `available_at_ms`
    /// (its `available_at_ms` field must already say so).
    pub fn schedule_again(&mut self, seq: u64, available_at_ms: u64) {
        self.schedule.insert((available_at_ms, seq));
    }

    /// Gives a message a new time at which it becomes receivable.
    pub fn reschedule(&mut self, seq: u64, available_at_ms: u64) -> Option<&Message> {
        let message = self.messages.get_mut(&seq)?;
        self.schedule.remove(&(message.available_at_ms, seq));
        message.available_at_ms = available_at_ms;
        self.schedule.insert((available_at_ms, seq));
        Some(message)
    }

    pub fn message_mut(&mut self, seq: u64) -> Option<&mut Message> {
        self.messages.get_mut(&seq)
    }

    /// When the next not-yet-receivable message becomes receivable, if any.
    pub fn next_due_ms(&self) -> Option<u64> {
        self.schedule.first().map(|&(at, _)| at)
    }

    pub fn depth(&self, now_ms: u64) -> Depth {
        let mut depth = Depth::default();
        let mut oldest = u64::MAX;
        for m in self.messages.values() {
            oldest = oldest.min(m.sent_ms);
            if m.is_delayed(now_ms) {
                depth.delayed += 1;
            } else if m.is_in_flight(now_ms) {
                depth.in_flight += 1;
            } else {
                depth.visible += 1;
            }
        }
        if oldest != u64::MAX {
            depth.oldest_age_secs = now_ms.saturating_sub(oldest) / 1000;
        }
        depth
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(seq: u64, available_at_ms: u64) -> Message {
        Message {
            seq,
            id: format!("m{seq}"),
            body: "b".to_owned(),
            attributes: Default::default(),
            system_attributes: Default::default(),
            group_id: None,
            sent_ms: 1000,
            available_at_ms,
            receive_count: 0,
            first_receive_ms: None,
        }
    }

    #[test]
    fn messages_come_out_in_availability_order_and_only_when_due() {
        let mut q = Queue::new("q".into(), 0);
        q.insert(message(2, 1000));
        q.insert(message(1, 5000));
        q.insert(message(3, 1000));
        assert_eq!(q.pop_available(2000), Some(2));
        assert_eq!(q.pop_available(2000), Some(3));
        assert_eq!(q.pop_available(2000), None);
        assert_eq!(q.next_due_ms(), Some(5000));
        assert_eq!(q.pop_available(5000), Some(1));
    }

    #[test]
    fn depth_separates_visible_in_flight_and_delayed() {
        let mut q = Queue::new("q".into(), 0);
        q.insert(message(1, 1000));
        q.insert(message(2, 9000)); // delayed: never received
        let mut received = message(3, 9000);
        received.receive_count = 1;
        q.insert(received);
        let depth = q.depth(4000);
        assert_eq!(
            depth,
            Depth {
                visible: 1,
                in_flight: 1,
                delayed: 1,
                oldest_age_secs: 3
            }
        );
    }

    #[test]
    fn attributes_are_validated_with_their_ranges() {
        let mut settings = Settings::default();
        let mut stored = BTreeMap::new();
        let set = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
        assert!(
            apply_attributes(
                &mut settings,
                &mut stored,
                &set("VisibilityTimeout", "43201")
            )
            .is_err()
        );
        assert!(apply_attributes(&mut settings, &mut stored, &set("DelaySeconds", "-1")).is_err());
        assert!(apply_attributes(&mut settings, &mut stored, &set("Bogus", "1")).is_err());
        apply_attributes(&mut settings, &mut stored, &set("VisibilityTimeout", "5")).unwrap();
        assert_eq!(settings.visibility_timeout_secs, 5);
        let policy = r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:dlq","maxReceiveCount":"3"}"#;
        apply_attributes(&mut settings, &mut stored, &set("RedrivePolicy", policy)).unwrap();
        assert_eq!(
            settings
                .redrive
                .as_ref()
                .map(|r| (r.dead_letter_queue.as_str(), r.max_receive_count)),
            Some(("dlq", 3))
        );
        let bad = r#"{"deadLetterTargetArn":"nope","maxReceiveCount":3}"#;
        let err =
            apply_attributes(&mut settings, &mut stored, &set("RedrivePolicy", bad)).unwrap_err();
        assert_eq!(err.code, "InvalidAttributeValue");
    }

    #[test]
    fn queue_names_follow_aws_rules() {
        assert!(valid_queue_name("orders-dlq_1"));
        assert!(!valid_queue_name(""));
        assert!(!valid_queue_name("has space"));
        assert!(!valid_queue_name(&"a".repeat(81)));
        assert_eq!(
            queue_name_from_arn("arn:aws:sqs:us-east-1:1:orders"),
            Some("orders")
        );
        assert_eq!(queue_name_from_arn("arn:aws:sns:us-east-1:1:orders"), None);
    }

    #[test]
    fn only_the_owners_arns_name_its_queues() {
        let owner = Owner {
            region: "eu-west-1".into(),
            account_id: "123456789012".into(),
        };
        let arn = owner.queue_arn("orders");
        assert_eq!(arn, "arn:aws:sqs:eu-west-1:123456789012:orders");
        assert_eq!(owner.local_queue(&arn), Some("orders"));
        for other in [
            "arn:aws:sqs:eu-west-1:000000000000:orders",
            "arn:aws:sqs:us-east-1:123456789012:orders",
            "arn:aws:sns:eu-west-1:123456789012:orders",
            "arn:aws:sqs:eu-west-1:123456789012:bad name",
        ] {
            assert_eq!(owner.local_queue(other), None, "{other}");
        }
    }
}
