//! Structured JSON log lines through `tracing`, each carrying `trace_id` and `span_id` when the
//! event happens inside a span, plus optional OTLP log export through the tracing bridge.

use std::fmt;

use opentelemetry::trace::TraceContextExt;
use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use serde_json::{Map, Value};
use std::io::Write as _;
use std::sync::OnceLock;
use tracing::field::{Field, Visit};

use tracing::dispatcher::WeakDispatch;
use tracing::{Dispatch, Event, Subscriber};
use tracing_subscriber::filter::{EnvFilter, filter_fn};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::layer::{self, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

use crate::setup::{InitError, Telemetry};

/// A layer writing each event as one JSON object per line:
/// `{"timestamp","level","target","message","span","trace_id","span_id","fields":{..}}`.
///
/// The ids come from the OpenTelemetry layer of the same subscriber. They are looked up through
/// the subscriber's own `Dispatch` (given at registration), because inside an event callback
/// `tracing`'s current-dispatcher lookup returns the no-op dispatcher to prevent re-entrance.
#[derive(Debug)]
pub struct JsonLogLayer<W> {
    writer: W,
    dispatch: OnceLock<WeakDispatch>,
}

impl<W> JsonLogLayer<W>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    /// Writes lines to `writer` (`std::io::stdout` in services).
    pub fn new(writer: W) -> Self {
        Self {
            writer,
            dispatch: OnceLock::new(),
        }
    }
}

impl<S, W> Layer<S> for JsonLogLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        let _ = self.dispatch.set(subscriber.downgrade());
    }

    fn on_event(&self, event: &Event<'_>, ctx: layer::Context<'_, S>) {
        let mut line = Map::new();
        let mut timestamp = String::new();
        if tracing_subscriber::fmt::time::SystemTime
            .format_time(&mut Writer::new(&mut timestamp))
            .is_ok()
        {
            line.insert("timestamp".into(), timestamp.into());
        }
        let meta = event.metadata();
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("target".into(), meta.target().into());

        let mut fields = FieldVisitor::default();
        event.record(&mut fields);
        if let Some(message) = fields.message {
            line.insert("message".into(), message.into());
        }

        if let Some(span) = ctx.event_span(event) {
            line.insert("span".into(), span.name().into());
            let context = self
                .dispatch
                .get()
                .and_then(WeakDispatch::upgrade)
                .and_then(|dispatch| {
                    tracing_opentelemetry::get_otel_context(&span.id(), &dispatch)
                });
            if let Some(cx) = context {
                let otel_span = cx.span();
                let sc = otel_span.span_context();
                if sc.is_valid() {
                    line.insert("trace_id".into(), sc.trace_id().to_string().into());
                    line.insert("span_id".into(), sc.span_id().to_string().into());
                }
            }
        }
        if !fields.fields.is_empty() {
            line.insert("fields".into(), Value::Object(fields.fields));
        }
        let mut text = Value::Object(line).to_string();
        text.push('\n');
        // A log line that cannot be written has nowhere to be reported.
        let _ = self.writer.make_writer_for(meta).write_all(text.as_bytes());
    }
}

#[derive(Default)]
struct FieldVisitor {
    message: Option<String>,
    fields: Map<String, Value>,
}

impl FieldVisitor {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.message = Some(match value {
                Value::String(s) => s,
                other => other.to_string(),
            });
        } else {
            self.fields.insert(field.name().to_owned(), value);
        }
    }
}

impl Visit for FieldVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
}

/// Targets whose events never go to OTLP log export: the exporter's own transport would
/// otherwise log about exporting its logs, forever.
fn is_export_machinery(target: &str) -> bool {
    let krate = target.split("::").next().unwrap_or(target);
    krate.starts_with("opentelemetry")
        || ["h2", "hyper", "hyper_util", "tonic", "tower", "reqwest"].contains(&krate)
}

/// Spans of the Lambda runtime crate itself: its `Lambda runtime invoke` span wraps every
/// invocation, but it ends after the handler's flush, so exported it would wait in the frozen
/// environment and then arrive as a second, one-span trace per invocation beside the handler's
/// own FaaS SERVER span, which is the invocation's span in the trace.
fn is_runtime_machinery(target: &str) -> bool {
    let krate = target.split("::").next().unwrap_or(target);
    ["lambda_runtime", "lambda_runtime_api_client"].contains(&krate)
}

impl Telemetry {
    /// The log filter: `RUST_LOG` from the configuration's environment, else `info`.
    pub fn log_filter(&self) -> Result<EnvFilter, InitError> {
        let value = self.config.env.get("RUST_LOG").unwrap_or("info");
        EnvFilter::try_new(value).map_err(|source| InitError::LogFilter {
            value: value.to_owned(),
            source,
        })
    }

    /// A subscriber writing JSON lines to `writer`, with spans going to the tracer provider (but
    /// not the export machinery's nor the Lambda runtime's own) and, when
    /// `OTEL_LOGS_EXPORTER=otlp`, events going to OTLP. Use it with
    /// `tracing::subscriber::with_default` (tests) or install it with
    /// [`Telemetry::install_subscriber`].
    pub fn subscriber<W>(
        &self,
        filter: EnvFilter,
        writer: W,
    ) -> impl Subscriber + Send + Sync + use<W>
    where
        W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
    {
        let otel_layer = self.tracer("throughline").map(|tracer| {
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(filter_fn(|meta| {
                    !is_export_machinery(meta.target()) && !is_runtime_machinery(meta.target())
                }))
        });
        let log_export = self.logger_provider.as_ref().map(|provider| {
            OpenTelemetryTracingBridge::new(provider)
                .with_filter(filter_fn(|meta| !is_export_machinery(meta.target())))
        });
        tracing_subscriber::registry()
            .with(filter)
            .with(JsonLogLayer::new(writer))
            .with(otel_layer)
            .with(log_export)
    }

    /// Installs [`Telemetry::subscriber`] as the global default, writing to stdout with
    /// [`Telemetry::log_filter`].
    pub fn install_subscriber(&self) -> Result<(), InitError> {
        let subscriber = self.subscriber(self.log_filter()?, std::io::stdout);
        tracing::subscriber::set_global_default(subscriber)
            .map_err(|_| InitError::SubscriberAlreadySet)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_machinery_targets_are_recognised() {
        assert!(is_export_machinery("h2::codec"));
        assert!(is_export_machinery("tonic"));
        assert!(is_export_machinery("opentelemetry_sdk"));
        assert!(!is_export_machinery("hyperion"));
        assert!(!is_export_machinery("onboarding_api::routes"));
    }

    #[test]
    fn the_lambda_runtimes_own_spans_are_recognised() {
        assert!(is_runtime_machinery("lambda_runtime"));
        assert!(is_runtime_machinery("lambda_runtime::layers::otel"));
        assert!(is_runtime_machinery("lambda_runtime_api_client"));
        assert!(!is_runtime_machinery("lambda_runtimes"));
        assert!(!is_runtime_machinery("onboarding_lambda::handler"));
    }
}
