//! Where accepted requests go: an SQS queue (the local broker or AWS), behind a small trait so
//! the HTTP layer can be tested without one.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use aws_sdk_sqs::types::MessageAttributeValue;

/// A message to send: its body and the string attributes (trace context) that travel with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub body: String,
    pub attributes: HashMap<String, String>,
}

/// Why a send or a health probe failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue {queue}: {message}")]
    Send { queue: String, message: String },
    #[error("queue {queue}: no answer within {timeout_ms} ms")]
    Timeout { queue: String, timeout_ms: u64 },
    #[error("queue {queue}: cannot find its url: {message}")]
    Resolve { queue: String, message: String },
}

/// A queue that takes onboarding messages.
pub trait MessageQueue: Send + Sync + 'static {
    /// The queue's name, as spans name it (`messaging.destination.name`).
    fn name(&self) -> &str;
    /// Sends one message; returns the id the queue gave it.
    fn send(
        &self,
        message: OutgoingMessage,
    ) -> impl Future<Output = Result<String, QueueError>> + Send;
    /// Proves the queue answers, for `/health`.
    fn probe(&self) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// An SQS queue reached with the AWS SDK.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    name: String,
    url: String,
    timeout: Duration,
}

impl SqsQueue {
    /// Resolves the queue's url by name (`GetQueueUrl`), retrying until `wait` has passed, so the
    /// API can start alongside the broker.
    pub async fn resolve(
        client: aws_sdk_sqs::Client,
        name: &str,
        wait: Duration,
        timeout: Duration,
    ) -> Result<Self, QueueError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let attempt =
                tokio::time::timeout(timeout, client.get_queue_url().queue_name(name).send()).await;
            let message = match attempt {
                Ok(Ok(out)) => match out.queue_url {
                    Some(url) => {
                        return Ok(Self {
                            client,
                            name: name.to_owned(),
                            url,
                            timeout,
                        });
                    }
                    None => "the answer holds no QueueUrl".to_owned(),
                },
                Ok(Err(e)) => aws_sdk_sqs::error::DisplayErrorContext(e).to_string(),
                Err(_) => format!("no answer within {} ms", timeout.as_millis()),
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(QueueError::Resolve {
                    queue: name.to_owned(),
                    message,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

impl MessageQueue for SqsQueue {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, message: OutgoingMessage) -> Result<String, QueueError> {
        let mut attributes = HashMap::with_capacity(message.attributes.len());
        for (k, v) in message.attributes {
            let value = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(v)
                .build()
                .map_err(|e| QueueError::Send {
                    queue: self.name.clone(),
                    message: e.to_string(),
                })?;
            attributes.insert(k, value);
        }
        let request = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(message.body)
            .set_message_attributes(Some(attributes))
            .send();
        match tokio::time::timeout(self.timeout, request).await {
            Ok(Ok(out)) => Ok(out.message_id.unwrap_or_default()),
            Ok(Err(e)) => Err(QueueError::Send {
                queue: self.name.clone(),
                message: aws_sdk_sqs::error::DisplayErrorContext(e).to_string(),
            }),
            Err(_) => Err(QueueError::Timeout {
                queue: self.name.clone(),
                timeout_ms: self.timeout.as_millis() as u64,
            }),
        }
    }

    async fn probe(&self) -> Result<(), QueueError> {
        let request = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send();
        match tokio::time::timeout(self.timeout, request).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(QueueError::Send {
                queue: self.name.clone(),
                message: aws_sdk_sqs::error::DisplayErrorContext(e).to_string(),
            }),
            Err(_) => Err(QueueError::Timeout {
                queue: self.name.clone(),
                timeout_ms: self.timeout.as_millis() as u64,
            }),
        }
    }
}

/// Builds an SQS client: against `endpoint` with static credentials when one is given (the local
/// broker), otherwise from the standard AWS chain (environment, profile, task role).
pub async fn sqs_client(endpoint: Option<&str>, region: &str) -> aws_sdk_sqs::Client {
    match endpoint {
        Some(endpoint) => {
            let creds =
                aws_credential_types::Credentials::new("local", "local", None, None, "throughline");
            let config = aws_sdk_sqs::Config::builder()
                .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
                .endpoint_url(endpoint)
                .region(aws_sdk_sqs::config::Region::new(region.to_owned()))
                .credentials_provider(creds)
                .build();
            aws_sdk_sqs::Client::from_conf(config)
        }
        None => {
            let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .region(aws_sdk_sqs::config::Region::new(region.to_owned()))
                .load()
                .await;
            aws_sdk_sqs::Client::new(&shared)
        }
    }
}
