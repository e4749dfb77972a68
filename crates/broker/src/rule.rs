//! EventBridge rules and their SQS targets as the state holds and the store keeps them (JSON).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A rule's SQS target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub id: String,
    pub arn: String,
    /// A constant JSON text sent instead of the event (`Input`).
    #[serde(default)]
    pub input: Option<String>,
    /// A JSON path (`$.detail` style) selecting the part of the event to send (`InputPath`).
    #[serde(default)]
    pub input_path: Option<String>,
}

/// A rule as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub name: String,
    pub event_bus: String,
    pub event_pattern: String,
    pub enabled: bool,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub targets: BTreeMap<String, Target>,
}

/// The key a rule is held under: bus and name.
pub fn rule_key(bus: &str, name: &str) -> String {
    format!("{bus}/{name}")
}
