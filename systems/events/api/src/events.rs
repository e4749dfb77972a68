//! `placement.created` on the bus: one `PutEvents` entry (source `nedlia.api`), its context in
//! `detail._trace` and, when X-Ray propagation is on, in the entry's `TraceHeader`.

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use throughline_instrument::{SendOperation, SendReceipt};

/// The event's `source`.
pub const SOURCE: &str = "nedlia.api";
/// The event's `detail-type`.
pub const PLACEMENT_CREATED: &str = "placement.created";

/// Why an event did not go out.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("PutEvents failed")]
    Call(#[source] Box<aws_sdk_eventbridge::Error>),
    #[error("PutEvents refused the entry: {code}")]
    Refused { code: String },
}

/// The bus client.
#[derive(Debug, Clone)]
pub struct EventBus {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

impl EventBus {
    /// A client of `bus` at `endpoint` (the local broker, dummy credentials) or AWS.
    pub async fn connect(endpoint: Option<&str>, region: &str, bus: &str) -> Self {
        let region = aws_sdk_eventbridge::config::Region::new(region.to_owned());
        let client = match endpoint {
            Some(endpoint) => {
                let creds = aws_credential_types::Credentials::new(
                    "local",
                    "local",
                    None,
                    None,
                    "throughline",
                );
                let config = aws_sdk_eventbridge::Config::builder()
                    .behavior_version(aws_sdk_eventbridge::config::BehaviorVersion::latest())
                    .endpoint_url(endpoint)
                    .region(region)
                    .credentials_provider(creds)
                    .build();
                aws_sdk_eventbridge::Client::from_conf(config)
            }
            None => {
                let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .region(region)
                    .load()
                    .await;
                aws_sdk_eventbridge::Client::new(&shared)
            }
        };
        Self {
            client,
            bus: bus.to_owned(),
        }
    }

    /// The bus's name.
    pub fn name(&self) -> &str {
        &self.bus
    }

    /// Puts one `placement.created` event with `detail` (already carrying `_trace`).
    pub async fn put(
        &self,
        detail: &serde_json::Value,
        trace_header: Option<String>,
    ) -> Result<SendReceipt, PublishError> {
        let entry = PutEventsRequestEntry::builder()
            .source(SOURCE)
            .detail_type(PLACEMENT_CREATED)
            .detail(detail.to_string())
            .event_bus_name(&self.bus)
            .set_trace_header(trace_header)
            .build();
        let out = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| PublishError::Call(Box::new(e.into())))?;
        let first = out.entries().first();
        if let Some(code) = first.and_then(|e| e.error_code()) {
            return Err(PublishError::Refused {
                code: code.to_owned(),
            });
        }
        let id = first.and_then(|e| e.event_id()).unwrap_or_default();
        Ok(SendReceipt::new(
            id,
            SendOperation::PutEvents { entry_count: 1 },
        ))
    }
}
