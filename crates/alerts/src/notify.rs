//! Delivery: the Alertmanager webhook payload (version 4) to webhooks, and alerts to a real
//! Alertmanager's `POST /api/v2/alerts`. Each target has its own queue and worker; a failed
//! POST is retried with exponential backoff, in order, before the next one is sent.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::mpsc;

/// The zero time Alertmanager writes for an alert that has not ended.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// One alert as Alertmanager's webhook payload carries it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAlert {
    pub status: &'static str,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: String,
    pub ends_at: String,
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    pub fingerprint: String,
}

/// Alertmanager's webhook payload, version 4.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookPayload {
    pub version: &'static str,
    pub group_key: String,
    pub truncated_alerts: u64,
    pub status: &'static str,
    pub receiver: String,
    pub group_labels: BTreeMap<String, String>,
    pub common_labels: BTreeMap<String, String>,
    pub common_annotations: BTreeMap<String, String>,
    #[serde(rename = "externalURL")]
    pub external_url: String,
    pub alerts: Vec<WebhookAlert>,
}

/// One alert of Alertmanager's `POST /api/v2/alerts` body.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PostableAlert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: String,
    pub ends_at: String,
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
}

/// RFC 3339 in UTC, as Alertmanager writes times.
pub fn rfc3339(unix_nanos: u64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_nanos))
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| ZERO_TIME.to_owned())
}

/// Alertmanager's fingerprint of a label set: FNV-1a (64 bit) over the labels sorted by name,
/// each name and value followed by the byte 0xff, as 16 hex digits.
pub fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    let mut add = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(PRIME);
        }
    };
    for (k, v) in labels {
        add(k.as_bytes());
        add(&[0xff]);
        add(v.as_bytes());
        add(&[0xff]);
    }
    format!("{h:016x}")
}

/// The webhook payload for alerts of one rule (`alertname` is the group label).
pub fn webhook_payload(
    receiver: &str,
    external_url: &str,
    alerts: Vec<WebhookAlert>,
) -> WebhookPayload {
    let common = |pick: fn(&WebhookAlert) -> &BTreeMap<String, String>| {
        let mut iter = alerts.iter();
        let mut out = iter.next().map(|a| pick(a).clone()).unwrap_or_default();
        for a in iter {
            out.retain(|k, v| pick(a).get(k) == Some(v));
        }
        out
    };
    let common_labels = common(|a| &a.labels);
    let common_annotations = common(|a| &a.annotations);
    let group_labels: BTreeMap<String, String> = common_labels
        .get("alertname")
        .map(|n| [("alertname".to_owned(), n.clone())].into())
        .unwrap_or_default();
    let group_key = format!(
        "{{}}:{{{}}}",
        group_labels
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let status = if alerts.iter().any(|a| a.status == "firing") {
        "firing"
    } else {
        "resolved"
    };
    WebhookPayload {
        version: "4",
        group_key,
        truncated_alerts: 0,
        status,
        receiver: receiver.to_owned(),
        group_labels,
        common_labels,
        common_annotations,
        external_url: external_url.to_owned(),
        alerts,
    }
}

/// Where notifications go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Any receiver of Alertmanager's webhook payload.
    Webhook(String),
    /// An Alertmanager: its base URL (`/api/v2/alerts` is added).
    Alertmanager(String),
}

impl Target {
    pub fn url(&self) -> String {
        match self {
            Target::Webhook(u) => u.clone(),
            Target::Alertmanager(u) => format!("{}/api/v2/alerts", u.trim_end_matches('/')),
        }
    }
}

/// How deliveries are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    pub attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    pub timeout: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            attempts: 6,
            first_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(8),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Figures of one target's deliveries, for the page and `/metrics`.
#[derive(Debug, Default)]
pub struct DeliveryStats {
    pub sent: std::sync::atomic::AtomicU64,
    pub retried: std::sync::atomic::AtomicU64,
    pub failed: std::sync::atomic::AtomicU64,
}

/// A queue and worker per target.
#[derive(Debug, Clone)]
pub struct Notifier {
    queues: Vec<(Target, mpsc::Sender<Vec<u8>>, std::sync::Arc<DeliveryStats>)>,
}

/// Deliveries a target may have queued before new ones are dropped (and logged).
const QUEUE: usize = 1024;

impl Notifier {
    /// Starts a worker per target on the current runtime.
    pub fn start(targets: Vec<Target>, retry: Retry) -> Self {
        let client = reqwest::Client::builder()
            .timeout(retry.timeout)
            .build()
            .unwrap_or_default();
        let queues = targets
            .into_iter()
            .map(|target| {
                let (tx, rx) = mpsc::channel(QUEUE);
                let stats = std::sync::Arc::new(DeliveryStats::default());
                tokio::spawn(worker(
                    client.clone(),
                    target.url(),
                    rx,
                    retry,
                    stats.clone(),
                ));
                (target, tx, stats)
            })
            .collect();
        Self { queues }
    }

    pub fn targets(&self) -> impl Iterator<Item = (&Target, &DeliveryStats)> {
        self.queues.iter().map(|(t, _, s)| (t, s.as_ref()))
    }

    pub fn has_webhooks(&self) -> bool {
        self.queues
            .iter()
            .any(|(t, _, _)| matches!(t, Target::Webhook(_)))
    }

    pub fn has_alertmanagers(&self) -> bool {
        self.queues
            .iter()
            .any(|(t, _, _)| matches!(t, Target::Alertmanager(_)))
    }

    /// Queues a webhook payload to every webhook.
    pub fn send_webhook(&self, payload: &WebhookPayload) {
        self.send(|t| matches!(t, Target::Webhook(_)), payload);
    }

    /// Queues alerts to every Alertmanager.
    pub fn send_alertmanager(&self, alerts: &[PostableAlert]) {
        if !alerts.is_empty() {
            self.send(|t| matches!(t, Target::Alertmanager(_)), &alerts);
        }
    }

    fn send<T: Serialize>(&self, pick: fn(&Target) -> bool, body: &T) {
        let Ok(bytes) = serde_json::to_vec(body) else {
            return;
        };
        for (target, tx, stats) in &self.queues {
            if pick(target) && tx.try_send(bytes.clone()).is_err() {
                stats
                    .failed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(url = %target.url(), "alert delivery queue full: notification dropped");
            }
        }
    }
}

async fn worker(
    client: reqwest::Client,
    url: String,
    mut rx: mpsc::Receiver<Vec<u8>>,
    retry: Retry,
    stats: std::sync::Arc<DeliveryStats>,
) {
    use std::sync::atomic::Ordering::Relaxed;
    while let Some(body) = rx.recv().await {
        let mut backoff = retry.first_backoff;
        for attempt in 1..=retry.attempts.max(1) {
            let sent = client
                .post(&url)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await;
            let why = match sent {
                Ok(r) if r.status().is_success() => {
                    stats.sent.fetch_add(1, Relaxed);
                    break;
                }
                Ok(r) => format!("answered {}", r.status()),
                Err(e) => format!("{e}"),
            };
            if attempt == retry.attempts.max(1) {
                stats.failed.fetch_add(1, Relaxed);
                tracing::warn!(%url, attempts = attempt, error = %why, "alert delivery failed");
                break;
            }
            stats.retried.fetch_add(1, Relaxed);
            tracing::debug!(%url, attempt, error = %why, "alert delivery failed; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(retry.max_backoff);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_alertmanagers() {
        // Alertmanager's `model.LabelSet{"alertname": "TestAlert", "severity": "critical"}`
        // fingerprint, computed the same way (FNV-1a over sorted name, 0xff, value, 0xff).
        let empty = BTreeMap::new();
        assert_eq!(fingerprint(&empty), "cbf29ce484222325");
        let labels: BTreeMap<String, String> = [("a".to_owned(), "b".to_owned())].into();
        // FNV-1a of "a\xffb\xff".
        let mut h: u64 = 0xcbf29ce484222325;
        for b in b"a\xffb\xff" {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x100000001b3);
        }
        assert_eq!(fingerprint(&labels), format!("{h:016x}"));
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(1_700_000_000_000_000_000), "2023-11-14T22:13:20Z");
    }
}
