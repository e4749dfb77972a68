//! The SQS event source mapping: pollers that gather batches from the queue as Lambda's do, hand
//! each to an execution environment (started cold, then reused warm, one per unit of
//! concurrency), and delete what the function processed.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName, QueueAttributeName,
};
use axum::body::Bytes;
use opentelemetry::metrics::Meter;
use throughline_instrument::aws_metrics::FunctionMetrics;
use tokio_util::sync::CancellationToken;

use crate::config::HostConfig;
use crate::environment::{Environment, EnvironmentSpec, InvocationOutcome, StartError};
use crate::platform_log::PlatformLog;
use crate::sqs_event::{
    BatchFailure, BatchOutcome, EventSource, event_from_messages, outcome_of_response,
};

/// SQS's longest long poll.
const MAX_WAIT_TIME_SECS: i32 = 20;
/// SQS's largest batch per `ReceiveMessage`.
const MAX_MESSAGES_PER_RECEIVE: u32 = 10;
/// The pause before polling again after SQS answered with an error.
const RECEIVE_ERROR_BACKOFF: Duration = Duration::from_secs(1);

/// A mapping that cannot run.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("queue {queue:?}: {message}")]
    Queue { queue: String, message: String },
    #[error("COMMAND: {0:?} is not an executable file or on PATH")]
    CommandNotFound(String),
    #[error(transparent)]
    Start(#[from] StartError),
}

/// One SQS queue feeding one function.
#[derive(Debug)]
pub struct EventSourceMapping {
    config: HostConfig,
    sqs: Client,
    log: Arc<dyn PlatformLog>,
    meter: Option<Meter>,
}

#[derive(Debug)]
struct Poller {
    sqs: Client,
    queue_url: String,
    source: EventSource,
    batch_size: u32,
    batch_window: Duration,
    spec: EnvironmentSpec,
}

impl EventSourceMapping {
    /// A mapping for `config`, polling through `sqs` (built by the caller, pointed at
    /// `AWS_ENDPOINT_URL_SQS` or AWS), writing platform lines to `log`.
    pub fn new(config: HostConfig, sqs: Client, log: Arc<dyn PlatformLog>) -> Self {
        Self {
            config,
            sqs,
            log,
            meter: None,
        }
    }

    /// Records the function's `AWS/Lambda` metrics (`faas.*`, `aws.lambda.*` by `faas.name`)
    /// on `meter`.
    pub fn with_meter(mut self, meter: Meter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// Polls and invokes until `shutdown` is cancelled, then stops every environment. Fails at
    /// start when the queue or the command cannot be found, and later when an environment's
    /// process cannot be started.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), MappingError> {
        let program = self.config.command.first().cloned().unwrap_or_default();
        if crate::config::resolve_program(program.as_ref(), std::env::var_os("PATH").as_deref())
            .is_none()
        {
            return Err(MappingError::CommandNotFound(
                program.to_string_lossy().into_owned(),
            ));
        }
        let queue_error = |message: String| MappingError::Queue {
            queue: self.config.queue.clone(),
            message,
        };
        let queue_url = self
            .sqs
            .get_queue_url()
            .queue_name(&self.config.queue)
            .send()
            .await
            .map_err(|err| queue_error(error_text(&err)))?
            .queue_url
            .ok_or_else(|| queue_error("GetQueueUrl returned no url".into()))?;
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|err| queue_error(error_text(&err)))?;
        let region = self
            .sqs
            .config()
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "us-east-1".into());
        let queue_arn = attributes
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn))
            .cloned()
            .unwrap_or_else(|| format!("arn:aws:sqs:{region}:000000000000:{}", self.config.queue));
        let account = queue_arn
            .split(':')
            .nth(4)
            .unwrap_or("000000000000")
            .to_owned();
        let spec = EnvironmentSpec {
            command: self.config.command.clone(),
            function_name: self.config.function_name.clone(),
            function_arn: format!(
                "arn:aws:lambda:{region}:{account}:function:{}",
                self.config.function_name
            ),
            memory_mb: self.config.memory_mb,
            region: region.clone(),
            handler: self.config.handler.clone(),
            timeout: self.config.timeout,
            init_timeout: self.config.init_timeout,
            shutdown_grace: self.config.shutdown_grace,
            environment: self.config.environment.clone(),
            extensions: self.config.extensions.clone(),
            sandbox_ports: self.config.sandbox_ports.clone(),
            log: self.log.clone(),
            metrics: self
                .meter
                .as_ref()
                .map(|m| FunctionMetrics::new(m, &self.config.function_name)),
        };
        let poller = Arc::new(Poller {
            sqs: self.sqs.clone(),
            queue_url,
            source: EventSource { queue_arn, region },
            batch_size: self.config.batch_size,
            batch_window: self.config.batch_window,
            spec,
        });
        tracing::info!(queue = %self.config.queue, function = %self.config.function_name, "event source mapping polling");
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..self.config.concurrency {
            workers.spawn(poller.clone().work(shutdown.clone()));
        }
        let mut result = Ok(());
        while let Some(joined) = workers.join_next().await {
            match joined {
                Ok(Ok(())) => {}
                Ok(Err(err)) => {
                    // One environment that cannot start stops the whole mapping.
                    shutdown.cancel();
                    result = Err(err);
                }
                Err(err) => {
                    tracing::error!(error = %err, "event source mapping worker ended abnormally")
                }
            }
        }
        result
    }
}

fn error_text<E: std::error::Error>(err: &E) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl Poller {
    /// One unit of concurrency: gathers a batch, runs it on this worker's environment (started
    /// cold on first use and after a kill), settles the batch.
    async fn work(self: Arc<Self>, shutdown: CancellationToken) -> Result<(), MappingError> {
        let mut environment: Option<Environment> = None;
        let result = loop {
            let batch = tokio::select! {
                () = shutdown.cancelled() => break Ok(()),
                batch = self.gather() => batch,
            };
            if batch.is_empty() {
                continue;
            }
            let env = match &mut environment {
                Some(env) => env,
                None => match Environment::start(self.spec.clone()).await {
                    Ok(env) => environment.insert(env),
                    Err(err) => break Err(err.into()),
                },
            };
            let request_id = uuid::Uuid::new_v4().to_string();
            let event = event_from_messages(&batch, &self.source);
            let payload = match serde_json::to_vec(&event) {
                Ok(payload) => Bytes::from(payload),
                Err(err) => {
                    tracing::error!(error = %err, "sqs event could not be serialised; batch returns to the queue");
                    continue;
                }
            };
            // An invocation is not cut short by shutdown: it ends or times out (bounded by the
            // function timeout), and its batch is settled, as the batch would be on Lambda.
            let trace_id = crate::platform_log::batch_trace_id(&event.records);
            let outcome = env.invoke_in_trace(&request_id, payload, trace_id).await;
            if !outcome.environment_survives() {
                environment = None;
            }
            self.settle(&batch, &outcome).await;
        };
        if let Some(env) = environment {
            env.shut_down().await;
        }
        result
    }

    /// Long-polls until at least one message arrives, then keeps gathering until the batch is
    /// full or the batching window has passed.
    async fn gather(&self) -> Vec<Message> {
        let mut batch = Vec::new();
        let mut window_ends: Option<Instant> = None;
        loop {
            let want = (self.batch_size - batch.len() as u32).min(MAX_MESSAGES_PER_RECEIVE);
            let wait_secs = match window_ends {
                None => MAX_WAIT_TIME_SECS,
                Some(ends) => ends
                    .saturating_duration_since(Instant::now())
                    .as_secs()
                    .min(20) as i32,
            };
            let received = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(want as i32)
                .wait_time_seconds(wait_secs)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .send()
                .await;
            match received {
                Ok(output) => batch.extend(output.messages.unwrap_or_default()),
                Err(err) => {
                    tracing::warn!(error = %error_text(&err), "sqs receive failed");
                    tokio::time::sleep(RECEIVE_ERROR_BACKOFF).await;
                }
            }
            if batch.is_empty() {
                continue;
            }
            let ends = *window_ends.get_or_insert_with(|| Instant::now() + self.batch_window);
            if batch.len() as u32 >= self.batch_size || Instant::now() >= ends {
                return batch;
            }
            if wait_secs == 0 {
                // Short polls under a second from the window's end: pace them.
                tokio::time::sleep(
                    ends.saturating_duration_since(Instant::now())
                        .min(Duration::from_millis(50)),
                )
                .await;
            }
        }
    }

    /// Deletes what the outcome says was processed; the rest returns after its visibility
    /// timeout.
    async fn settle(&self, batch: &[Message], outcome: &InvocationOutcome) {
        let ids: BTreeSet<String> = batch.iter().filter_map(|m| m.message_id.clone()).collect();
        let decision = match outcome {
            InvocationOutcome::Response(body) => outcome_of_response(body, &ids),
            InvocationOutcome::FunctionError { .. } => {
                BatchOutcome::RetryAll(BatchFailure::FunctionError)
            }
            InvocationOutcome::Timeout => BatchOutcome::RetryAll(BatchFailure::Timeout),
            InvocationOutcome::Failed(reason) => {
                BatchOutcome::RetryAll(BatchFailure::Environment(reason.clone()))
            }
        };
        let to_delete: Vec<&Message> = match &decision {
            BatchOutcome::DeleteAll => batch.iter().collect(),
            BatchOutcome::DeleteAllBut(failed) => batch
                .iter()
                .filter(|m| m.message_id.as_ref().is_none_or(|id| !failed.contains(id)))
                .collect(),
            BatchOutcome::RetryAll(why) => {
                tracing::info!(records = batch.len(), reason = %why, "batch returns to the queue");
                Vec::new()
            }
        };
        for chunk in to_delete.chunks(MAX_MESSAGES_PER_RECEIVE as usize) {
            let entries: Vec<DeleteMessageBatchRequestEntry> = chunk
                .iter()
                .enumerate()
                .filter_map(|(index, m)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(index.to_string())
                        .receipt_handle(m.receipt_handle.clone().unwrap_or_default())
                        .build()
                        .ok()
                })
                .collect();
            let deleted = self
                .sqs
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await;
            match deleted {
                Ok(output) if !output.failed.is_empty() => {
                    tracing::warn!(
                        failed = output.failed.len(),
                        "some processed messages could not be deleted"
                    );
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(error = %error_text(&err), "sqs delete failed; the batch will be redelivered")
                }
            }
        }
    }
}
