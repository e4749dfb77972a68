//! Batch processors shared between the provider and the guard, so that a flush gets the
//! processor's own typed result (the providers fold every error into one string).

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::logs::Severity;
use opentelemetry::{Context, InstrumentationScope};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{BatchLogProcessor, LogProcessor, SdkLogRecord};
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};

/// Hands the provider a reference to a span processor the guard also holds.
#[derive(Debug)]
pub(crate) struct SharedSpanProcessor<P>(pub(crate) Arc<P>);

impl<P: SpanProcessor> SpanProcessor for SharedSpanProcessor<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.0.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        self.0.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
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
