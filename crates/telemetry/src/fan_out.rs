//! Several span exporters behind one processor (`OTEL_TRACES_EXPORTER=otlp,console`): each batch
//! goes to every exporter in order; one failing does not keep the batch from the others, and its
//! error is what the export returns.

use std::time::Duration;

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

/// The exporters `OTEL_TRACES_EXPORTER` can name.
#[derive(Debug)]
pub(crate) enum AnySpanExporter {
    /// OTLP over gRPC (opentelemetry-otlp's tonic exporter).
    Otlp(opentelemetry_otlp::SpanExporter),
    /// OTLP over HTTP (ours: batches encoded from the span data directly).
    OtlpHttp(crate::otlp_http::HttpSpanExporter),
    Console(opentelemetry_stdout::SpanExporter),
}

impl SpanExporter for AnySpanExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        match self {
            Self::Otlp(e) => e.export(batch).await,
            Self::OtlpHttp(e) => e.export(batch).await,
            Self::Console(e) => e.export(batch).await,
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        match self {
            Self::Otlp(e) => e.shutdown_with_timeout(timeout),
            Self::OtlpHttp(e) => e.shutdown_with_timeout(timeout),
            Self::Console(e) => e.shutdown_with_timeout(timeout),
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        match self {
            Self::Otlp(e) => e.force_flush(),
            Self::OtlpHttp(e) => e.force_flush(),
            Self::Console(e) => e.force_flush(),
        }
    }

    fn set_resource(&mut self, resource: &Resource) {
        match self {
            Self::Otlp(e) => e.set_resource(resource),
            Self::OtlpHttp(e) => e.set_resource(resource),
            Self::Console(e) => e.set_resource(resource),
        }
    }
}

/// Every exporter of the list, each given every batch.
#[derive(Debug)]
pub(crate) struct FanOutSpanExporter<E>(pub(crate) Vec<E>);

/// The first error, after every exporter has been given its turn.
fn first_error(results: impl IntoIterator<Item = OTelSdkResult>) -> OTelSdkResult {
    let mut outcome = Ok(());
    for result in results {
        if outcome.is_ok() {
            outcome = result;
        }
    }
    outcome
}

impl<E: SpanExporter> SpanExporter for FanOutSpanExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let Some((last, rest)) = self.0.split_last() else {
            return Ok(());
        };
        let mut results = Vec::with_capacity(self.0.len());
        for exporter in rest {
            results.push(exporter.export(batch.clone()).await);
        }
        results.push(last.export(batch).await);
        first_error(results)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        first_error(self.0.iter().map(|e| e.shutdown_with_timeout(timeout)))
    }

    fn force_flush(&self) -> OTelSdkResult {
        first_error(self.0.iter().map(|e| e.force_flush()))
    }

    fn set_resource(&mut self, resource: &Resource) {
        for e in &mut self.0 {
            e.set_resource(resource);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use opentelemetry_sdk::error::OTelSdkError;

    use super::*;

    #[derive(Debug, Default, Clone)]
    struct Recording {
        names: Arc<Mutex<Vec<String>>>,
        fails: bool,
    }

    impl SpanExporter for Recording {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            let mut names = self.names.lock().unwrap();
            names.extend(batch.into_iter().map(|s| s.name.into_owned()));
            if self.fails {
                Err(OTelSdkError::InternalFailure("down".into()))
            } else {
                Ok(())
            }
        }
    }

    fn span(name: &'static str) -> SpanData {
        use opentelemetry::InstrumentationScope;
        use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status};
        use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
        SpanData {
            span_context: SpanContext::empty_context(),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: name.into(),
            start_time: std::time::SystemTime::UNIX_EPOCH,
            end_time: std::time::SystemTime::UNIX_EPOCH,
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: InstrumentationScope::builder("t").build(),
        }
    }

    #[test]
    fn every_exporter_gets_every_batch_and_a_failure_is_reported_after_all_ran() {
        let failing = Recording {
            fails: true,
            ..Recording::default()
        };
        let working = Recording::default();
        let fan = FanOutSpanExporter(vec![failing.clone(), working.clone()]);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let outcome = rt.block_on(fan.export(vec![span("a"), span("b")]));
        assert!(outcome.is_err());
        assert_eq!(*failing.names.lock().unwrap(), ["a", "b"]);
        assert_eq!(*working.names.lock().unwrap(), ["a", "b"]);
        let empty: FanOutSpanExporter<Recording> = FanOutSpanExporter(Vec::new());
        assert!(rt.block_on(empty.export(vec![span("c")])).is_ok());
    }
}
