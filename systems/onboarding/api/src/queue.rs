//! Where accepted requests go: an SQS queue (the local broker or AWS), behind a small trait so
//! the HTTP layer can be tested without one.
//!
//! Sends are batched the way a group commit is: a message sent while no call is waiting goes at
//! once, alone (`SendMessage`); messages that arrive while [`MAX_CALLS_IN_FLIGHT`] calls are
//! under way wait for the next one and leave together, up to ten (`SendMessageBatch`). So a quiet
//! API adds no latency, and a busy one makes a tenth of the calls (each signed, serialized and
//! answered) for the same messages. Each message keeps its own attributes, trace context included.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use throughline_instrument::{SendOperation, SendReceipt};
use tokio::sync::{Semaphore, mpsc, oneshot};

/// SQS takes at most ten messages per `SendMessageBatch`.
const MAX_BATCH_MESSAGES: usize = 10;
/// SQS's limit on a batch's total size (the sum of bodies and attributes), kept to its oldest value
/// so the same code works against every SQS.
const MAX_BATCH_BYTES: usize = 256 * 1024;
/// Calls to the queue under way at once; messages beyond wait and are batched.
pub const MAX_CALLS_IN_FLIGHT: usize = 4;
/// Messages waiting for a call before `send` itself waits (backpressure).
const PENDING_CAPACITY: usize = 1024;

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
    /// Sends one message; returns the id the queue gave it and the call that carried it (for
    /// the PRODUCER span). A queue that does not batch says `SendMessage`.
    fn send_message(
        &self,
        message: OutgoingMessage,
    ) -> impl Future<Output = Result<SendReceipt, QueueError>> + Send {
        async move {
            let id = self.send(message).await?;
            Ok(SendReceipt::new(id, SendOperation::SendMessage))
        }
    }
    /// Proves the queue answers, for `/health`.
    fn probe(&self) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// An SQS queue reached with the AWS SDK, sending in batches when busy (see the module docs).
#[derive(Debug, Clone)]
pub struct SqsQueue {
    target: Arc<Target>,
    pending: mpsc::Sender<Pending>,
}

/// What every call needs to reach the queue.
#[derive(Debug)]
struct Target {
    client: aws_sdk_sqs::Client,
    name: String,
    url: String,
    timeout: Duration,
}

/// A message waiting for a call, and where its outcome goes.
#[derive(Debug)]
struct Pending {
    message: OutgoingMessage,
    outcome: oneshot::Sender<Result<SendReceipt, QueueError>>,
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
                    Some(url) => return Ok(Self::at_url(client, name, &url, timeout)),
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

    /// The queue at a known `url`, with no call made: for a url taken from configuration, or
    /// a queue that cannot be reached now (its sends and `/health` probes then fail).
    pub fn at_url(client: aws_sdk_sqs::Client, name: &str, url: &str, timeout: Duration) -> Self {
        let target = Arc::new(Target {
            client,
            name: name.to_owned(),
            url: url.to_owned(),
            timeout,
        });
        let (pending, waiting) = mpsc::channel(PENDING_CAPACITY);
        tokio::spawn(dispatch(Arc::clone(&target), waiting));
        Self { target, pending }
    }

    pub fn url(&self) -> &str {
        &self.target.url
    }
}

impl MessageQueue for SqsQueue {
    fn name(&self) -> &str {
        &self.target.name
    }

    async fn send(&self, message: OutgoingMessage) -> Result<String, QueueError> {
        self.send_message(message).await.map(|r| r.message_id)
    }

    async fn send_message(&self, message: OutgoingMessage) -> Result<SendReceipt, QueueError> {
        let (outcome, answer) = oneshot::channel();
        let gone = || QueueError::Send {
            queue: self.target.name.clone(),
            message: "the sender has stopped".to_owned(),
        };
        self.pending
            .send(Pending { message, outcome })
            .await
            .map_err(|_| gone())?;
        answer.await.unwrap_or_else(|_| Err(gone()))
    }

    async fn probe(&self) -> Result<(), QueueError> {
        let target = &self.target;
        let request = target
            .client
            .get_queue_attributes()
            .queue_url(&target.url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send();
        match tokio::time::timeout(target.timeout, request).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(target.send_error(aws_sdk_sqs::error::DisplayErrorContext(e))),
            Err(_) => Err(target.timeout_error()),
        }
    }
}

impl Target {
    fn send_error(&self, message: impl std::fmt::Display) -> QueueError {
        QueueError::Send {
            queue: self.name.clone(),
            message: message.to_string(),
        }
    }

    fn timeout_error(&self) -> QueueError {
        QueueError::Timeout {
            queue: self.name.clone(),
            timeout_ms: self.timeout.as_millis() as u64,
        }
    }

    fn attributes(
        &self,
        strings: HashMap<String, String>,
    ) -> Result<HashMap<String, MessageAttributeValue>, QueueError> {
        let mut attributes = HashMap::with_capacity(strings.len());
        for (k, v) in strings {
            let value = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(v)
                .build()
                .map_err(|e| self.send_error(e))?;
            attributes.insert(k, value);
        }
        Ok(attributes)
    }

    /// One `SendMessage`.
    async fn send_one(&self, pending: Pending) {
        let Pending { message, outcome } = pending;
        let result = async {
            let attributes = self.attributes(message.attributes)?;
            let request = self
                .client
                .send_message()
                .queue_url(&self.url)
                .message_body(message.body)
                .set_message_attributes(Some(attributes))
                .send();
            match tokio::time::timeout(self.timeout, request).await {
                Ok(Ok(out)) => Ok(SendReceipt::new(
                    out.message_id.unwrap_or_default(),
                    SendOperation::SendMessage,
                )),
                Ok(Err(e)) => Err(self.send_error(aws_sdk_sqs::error::DisplayErrorContext(e))),
                Err(_) => Err(self.timeout_error()),
            }
        }
        .await;
        let _ = outcome.send(result);
    }

    /// One `SendMessageBatch`; each message gets its own entry's outcome.
    async fn send_batch(&self, batch: Vec<Pending>) {
        let mut entries = Vec::with_capacity(batch.len());
        let mut waiting = HashMap::with_capacity(batch.len());
        for (n, Pending { message, outcome }) in batch.into_iter().enumerate() {
            let id = n.to_string();
            let entry = self.attributes(message.attributes).and_then(|attributes| {
                SendMessageBatchRequestEntry::builder()
                    .id(&id)
                    .message_body(message.body)
                    .set_message_attributes(Some(attributes))
                    .build()
                    .map_err(|e| self.send_error(e))
            });
            match entry {
                Ok(entry) => {
                    entries.push(entry);
                    waiting.insert(id, outcome);
                }
                Err(err) => {
                    let _ = outcome.send(Err(err));
                }
            }
        }
        if entries.is_empty() {
            return;
        }
        let operation = SendOperation::SendMessageBatch {
            message_count: entries.len(),
        };
        let request = self
            .client
            .send_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send();
        let out = match tokio::time::timeout(self.timeout, request).await {
            Ok(Ok(out)) => out,
            Ok(Err(e)) => {
                let message = aws_sdk_sqs::error::DisplayErrorContext(e).to_string();
                for (_, outcome) in waiting {
                    let _ = outcome.send(Err(self.send_error(&message)));
                }
                return;
            }
            Err(_) => {
                for (_, outcome) in waiting {
                    let _ = outcome.send(Err(self.timeout_error()));
                }
                return;
            }
        };
        for ok in out.successful {
            if let Some(outcome) = waiting.remove(&ok.id) {
                let _ = outcome.send(Ok(SendReceipt::new(ok.message_id, operation)));
            }
        }
        for failed in out.failed {
            if let Some(outcome) = waiting.remove(&failed.id) {
                let message = format!("{}: {}", failed.code, failed.message.unwrap_or_default());
                let _ = outcome.send(Err(self.send_error(message)));
            }
        }
        // An entry the answer did not mention is not known to be sent.
        for (_, outcome) in waiting {
            let _ = outcome.send(Err(
                self.send_error("the batch answer left this message out")
            ));
        }
    }
}

/// Takes waiting messages into calls: at most [`MAX_CALLS_IN_FLIGHT`] at once, each with every
/// message waiting when it starts (up to ten, and within the batch size limit).
async fn dispatch(target: Arc<Target>, mut waiting: mpsc::Receiver<Pending>) {
    let calls = Arc::new(Semaphore::new(MAX_CALLS_IN_FLIGHT));
    let mut carried: Option<Pending> = None;
    loop {
        let Ok(permit) = Arc::clone(&calls).acquire_owned().await else {
            return;
        };
        let first = match carried.take() {
            Some(pending) => pending,
            None => match waiting.recv().await {
                Some(pending) => pending,
                None => return,
            },
        };
        let mut bytes = message_bytes(&first.message);
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH_MESSAGES {
            let Ok(next) = waiting.try_recv() else {
                break;
            };
            let size = message_bytes(&next.message);
            if bytes + size > MAX_BATCH_BYTES {
                carried = Some(next);
                break;
            }
            bytes += size;
            batch.push(next);
        }
        let target = Arc::clone(&target);
        tokio::spawn(async move {
            if batch.len() == 1 {
                // The length was just checked.
                if let Some(one) = batch.pop() {
                    target.send_one(one).await;
                }
            } else {
                target.send_batch(batch).await;
            }
            drop(permit);
        });
    }
}

/// A message's size as SQS counts it against the batch limit.
fn message_bytes(message: &OutgoingMessage) -> usize {
    message.body.len()
        + message
            .attributes
            .iter()
            .map(|(k, v)| k.len() + "String".len() + v.len())
            .sum::<usize>()
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
