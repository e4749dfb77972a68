//! The broker's configuration: where it stores data, the identity it answers with, and the
//! queues and rules to have in place at start-up.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The account of queue URLs and ARNs unless told otherwise (LocalStack's and moto's too).
pub const DEFAULT_ACCOUNT_ID: &str = "000000000000";

/// An account id that is not one: AWS's are 12 digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("account id {0:?} is not 12 digits")]
pub struct AccountIdError(pub String);

/// Checks an account id: 12 ASCII digits, as AWS's.
pub fn check_account_id(account_id: &str) -> Result<(), AccountIdError> {
    if account_id.len() == 12 && account_id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(AccountIdError(account_id.to_owned()))
    }
}

/// Validated broker configuration.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Directory holding the broker's SQLite database (created if missing).
    pub data_dir: PathBuf,
    /// Region used in ARNs and event envelopes.
    pub region: String,
    /// Account id used in queue URLs and ARNs (12 digits; [`check_account_id`]): a redrive
    /// policy or an EventBridge target reaches a queue only by an ARN of this account.
    pub account_id: String,
    /// Queues and rules created (or updated) at start-up.
    pub declarations: Declarations,
    /// Also survive power loss: fsync the write-ahead log before answering (SQLite
    /// `synchronous=FULL`). Off by default, where an answered write is in the log file and
    /// survives `kill -9` of the broker, but not a crash of the machine.
    pub sync_writes: bool,
}

impl BrokerConfig {
    /// Defaults: region `us-east-1`, account `000000000000`, nothing declared, no fsync.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            region: "us-east-1".to_owned(),
            account_id: DEFAULT_ACCOUNT_ID.to_owned(),
            declarations: Declarations::default(),
            sync_writes: false,
        }
    }
}

/// Queues and rules declared at start-up, as read from a JSON config file or flags.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Declarations {
    #[serde(default)]
    pub queues: Vec<QueueDeclaration>,
    #[serde(default)]
    pub rules: Vec<RuleDeclaration>,
}

/// A queue to create at start-up.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QueueDeclaration {
    pub name: String,
    /// SQS queue attributes by their AWS names (`VisibilityTimeout`, `DelaySeconds`, …).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// The dead-letter queue (declared too, or existing) and the receives before moving there.
    #[serde(default)]
    pub dead_letter: Option<DeadLetter>,
}

/// A dead-letter queue and `maxReceiveCount`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetter {
    pub queue: String,
    pub max_receive_count: u32,
}

/// An EventBridge rule to create at start-up.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDeclaration {
    pub name: String,
    #[serde(default)]
    pub event_bus: Option<String>,
    /// The event pattern, as JSON.
    pub event_pattern: serde_json::Value,
    /// Target ids and the queue names they deliver to.
    #[serde(default)]
    pub targets: Vec<TargetDeclaration>,
}

/// An SQS target of a declared rule.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TargetDeclaration {
    pub id: String,
    pub queue: String,
}

impl QueueDeclaration {
    /// A queue with default attributes.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_file_declares_queues_and_rules() {
        let text = r#"{
          "queues": [
            {"name": "orders-dlq"},
            {"name": "orders", "attributes": {"VisibilityTimeout": "5"},
             "dead_letter": {"queue": "orders-dlq", "max_receive_count": 3}}
          ],
          "rules": [
            {"name": "placed", "event_pattern": {"detail-type": ["OrderPlaced"]},
             "targets": [{"id": "q", "queue": "orders"}]}
          ]
        }"#;
        let d: Declarations = serde_json::from_str(text).unwrap();
        assert_eq!(d.queues.len(), 2);
        assert_eq!(
            d.queues[1]
                .dead_letter
                .as_ref()
                .map(|x| x.max_receive_count),
            Some(3)
        );
        assert_eq!(d.rules[0].targets[0].queue, "orders");
        assert!(serde_json::from_str::<Declarations>(r#"{"queue": []}"#).is_err());
    }
}
