//! Batch processors shared between the provider and the guard, so that a flush gets the
//! processor's own typed result (the providers fold every error into one string); and
//! [`SpanStamp`], which puts the attributes a service names on every span it starts.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::logs::Severity;
use opentelemetry::trace::Span as _;
use opentelemetry::{Context, InstrumentationScope, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{BatchLogProcessor, LogProcessor, SdkLogRecord};
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};

/// Hands the provider a reference to a span processor the guard also holds, with the
/// [`SpanStamp`] (if any) applied in the same processor.
///
/// Invariant: the provider holds exactly one span processor. The SDK hands a single processor
/// the finished span itself, but with two or more it clones every span's data (attributes,
/// events, links) once per processor; the stamp is folded in here for that reason.
#[derive(Debug)]
pub(crate) struct SharedSpanProcessor<P> {
    inner: Arc<P>,
    stamp: Option<SpanStamp>,
}

impl<P> SharedSpanProcessor<P> {
    pub(crate) fn new(inner: Arc<P>, stamp: Option<StampFn>) -> Self {
        Self {
            inner,
            stamp: stamp.map(SpanStamp),
        }
    }
}

impl<P: SpanProcessor> SpanProcessor for SharedSpanProcessor<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        if let Some(stamp) = &self.stamp {
            stamp.on_start(span, cx);
        }
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, _resource: &Resource) {
        // The exporter was given the resource before the processor was built.
    }
}

/// Hands the provider a reference to a batch log processor the guard also holds.
#[derive(Debug)]
pub(crate) struct SharedLogProcessor(pub(crate) Arc<BatchLogProcessor>);

impl LogProcessor for SharedLogProcessor {
    fn emit(&self, data: &mut SdkLogRecord, instrumentation: &InstrumentationScope) {
        self.0.emit(data, instrumentation);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn event_enabled(&self, level: Severity, target: &str, name: Option<&str>) -> bool {
        self.0.event_enabled(level, target, name)
    }

    fn set_resource(&mut self, _resource: &Resource) {
        // The exporter was given the resource before the processor was built.
    }
}

/// What a [`SpanStamp`] puts on each span as it starts (read then, so it may change over time).
pub type StampFn = Arc<dyn Fn() -> Vec<KeyValue> + Send + Sync>;

/// Sets the attributes of a [`StampFn`] on every span when it starts (a demo's phase, a
/// deployment's wave), before any processor exports it.
pub struct SpanStamp(pub StampFn);

impl std::fmt::Debug for SpanStamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpanStamp")
    }
}

impl SpanProcessor for SpanStamp {
    fn on_start(&self, span: &mut Span, _cx: &Context) {
        for attribute in (self.0)() {
            span.set_attribute(attribute);
        }
    }

    fn on_end(&self, _span: SpanData) {}

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}
