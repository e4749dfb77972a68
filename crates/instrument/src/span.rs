//! [`ActiveSpan`], the handle every helper of this crate returns, and [`Spans`], a service's own
//! INTERNAL spans (a processing step, a check) as children of the current context.

use std::borrow::Cow;
use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;

use opentelemetry::global::BoxedTracer;
use opentelemetry::trace::{FutureExt, SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};
use opentelemetry_semantic_conventions::attribute as semconv;

use crate::SharedTracer;

/// A started span and the context that holds it. The span ends when this is dropped (or at
/// [`Self::end`]); work that belongs under it runs through [`Self::run`].
#[derive(Debug)]
pub struct ActiveSpan {
    cx: Context,
}

impl ActiveSpan {
    /// Takes a context whose span was just started.
    pub(crate) fn from_context(cx: Context) -> Self {
        Self { cx }
    }

    /// Starts `builder` under `parent`.
    pub(crate) fn start(
        tracer: &BoxedTracer,
        builder: opentelemetry::trace::SpanBuilder,
        parent: &Context,
    ) -> Self {
        let span = builder.start_with_context(tracer, parent);
        Self::from_context(parent.with_span(span))
    }

    /// The context holding the span: the parent of anything started under it.
    pub fn context(&self) -> &Context {
        &self.cx
    }

    /// The span's trace id, as 32 lowercase hex digits.
    pub fn trace_id(&self) -> String {
        self.cx.span().span_context().trace_id().to_string()
    }

    /// Adds (or replaces) one attribute.
    pub fn set_attribute(&self, attribute: KeyValue) {
        self.cx.span().set_attribute(attribute);
    }

    /// Marks the span failed: `error.type` and an error status with `message`.
    pub fn fail(&self, error_type: impl Into<Cow<'static, str>>, message: impl Display) {
        let span = self.cx.span();
        span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, error_type.into()));
        span.set_status(Status::error(message.to_string()));
    }

    /// Marks the span failed with a status only (no `error.type`).
    pub fn fail_status(&self, message: impl Display) {
        self.cx
            .span()
            .set_status(Status::error(message.to_string()));
    }

    /// Runs `work` with this span as the current context (`Context::current()` inside it).
    pub async fn run<F: Future>(&self, work: F) -> F::Output {
        work.with_context(self.cx.clone()).await
    }

    /// Ends the span now.
    pub fn end(self) {
        drop(self);
    }
}

impl Drop for ActiveSpan {
    fn drop(&mut self) {
        // Ending twice is a no-op, so an explicit end elsewhere is harmless.
        self.cx.span().end();
    }
}

/// A service's own INTERNAL spans, children of the current context.
///
/// ```
/// use opentelemetry::KeyValue;
/// use throughline_instrument::Spans;
/// use throughline_telemetry::testing::TestTracing;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let tracing = TestTracing::new();
/// let spans = Spans::new(tracing.tracer("example"));
/// let step = spans.start("validate order", [KeyValue::new("order.id", "o-1")]);
/// step.run(async { spans.instant("fraud check", []) }).await;
/// step.end();
/// tracing.spans().assert_parent("fraud check", "validate order");
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct Spans {
    tracer: SharedTracer,
}

impl Spans {
    /// Spans from `tracer` (any SDK tracer, or `opentelemetry::global::tracer(..)`).
    pub fn new<T>(tracer: T) -> Self
    where
        T: Tracer + Send + Sync + 'static,
        T::Span: Send + Sync + 'static,
    {
        Self::from_boxed(BoxedTracer::new(Box::new(tracer)))
    }

    /// Spans from a boxed tracer, as `opentelemetry::global::tracer` returns it.
    pub fn from_boxed(tracer: BoxedTracer) -> Self {
        Self {
            tracer: Arc::new(tracer),
        }
    }

    /// Spans from a tracer already shared with other helpers.
    pub fn shared(tracer: SharedTracer) -> Self {
        Self { tracer }
    }

    /// The tracer these spans come from.
    pub fn tracer(&self) -> &SharedTracer {
        &self.tracer
    }

    /// Starts an INTERNAL span under the current context.
    pub fn start(
        &self,
        name: impl Into<Cow<'static, str>>,
        attributes: impl IntoIterator<Item = KeyValue>,
    ) -> ActiveSpan {
        let builder = self
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Internal)
            .with_attributes(attributes);
        ActiveSpan::start(&self.tracer, builder, &Context::current())
    }

    /// Records a span that stands for something with no duration worth timing: started and
    /// ended at once under the current context.
    pub fn instant(
        &self,
        name: impl Into<Cow<'static, str>>,
        attributes: impl IntoIterator<Item = KeyValue>,
    ) {
        self.start(name, attributes).end();
    }
}
