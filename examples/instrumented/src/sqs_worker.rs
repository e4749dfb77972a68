//! An SQS worker fed by an EventBridge rule: each body is an event envelope whose `detail`
//! carries the trace in `_trace`. The instrumentation is the consumer; the rest is the business.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use opentelemetry::trace::TraceContextExt;
use opentelemetry::{Context, KeyValue};
use throughline_instrument::{
    Invocation, RecordCarrier, RecordError, SharedTracer, Spans, SqsBatchConsumer, SqsRecord,
};

/// The worker: one consumer, one span of its own per order.
#[derive(Debug)]
pub struct Notifier {
    consumer: SqsBatchConsumer,
    spans: Spans,
}

impl Notifier {
    pub fn new(tracer: SharedTracer) -> Self {
        Self {
            consumer: SqsBatchConsumer::shared(tracer.clone(), "notifications")
                .carrier(RecordCarrier::EventBridgeDetail(Default::default())),
            spans: Spans::shared(tracer),
        }
    }

    /// One invocation; failed records come back in `batchItemFailures`.
    pub async fn handle(&self, event: SqsEvent, invocation: Invocation) -> SqsBatchResponse {
        self.consumer
            .handle(&event, invocation, |record| self.notify(record))
            .await
    }

    async fn notify(&self, record: SqsRecord<'_>) -> Result<(), RecordError> {
        let envelope: serde_json::Value =
            serde_json::from_str(record.body()).map_err(|e| RecordError::new("invalid_body", e))?;
        let Some(order_id) = envelope["detail"]["order_id"].as_str() else {
            return Err(RecordError::new(
                "invalid_body",
                "detail.order_id is missing",
            ));
        };
        Context::current()
            .span()
            .set_attribute(KeyValue::new("order.id", order_id.to_owned()));
        self.spans.instant(
            "send order confirmation",
            [KeyValue::new("notification.channel", "email")],
        );
        Ok(())
    }
}
