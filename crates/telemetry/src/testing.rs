//! Test support for every crate's tests (feature `testing`): an in-memory span exporter, a
//! ready-made tracer provider writing into it, and [`SpanTree`] assertions on what was recorded
//! (find by name, parent/child, kind, attributes, links). The assertions panic with the whole
//! recorded tree, which is what a failing test should show.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};

use opentelemetry::trace::{SpanContext, SpanId, SpanKind, TracerProvider as _};
use opentelemetry::{Key, Value};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider, SpanData, SpanExporter};
use tracing::Subscriber;
use tracing_subscriber::layer::SubscriberExt;

/// Keeps every exported span in memory. Clones share the same store.
#[derive(Debug, Clone, Default)]
pub struct InMemorySpanExporter {
    spans: Arc<Mutex<Vec<SpanData>>>,
}

impl InMemorySpanExporter {
    /// An empty exporter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every span exported so far, in export order.
    pub fn finished_spans(&self) -> Vec<SpanData> {
        self.spans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The exported spans as a [`SpanTree`].
    pub fn span_tree(&self) -> SpanTree {
        SpanTree::new(self.finished_spans())
    }

    /// Forgets every span exported so far.
    pub fn reset(&self) {
        self.spans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

impl SpanExporter for InMemorySpanExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.spans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(batch);
        Ok(())
    }
}

/// A tracer provider that samples everything and exports each span into memory as it ends
/// (simple processor: nothing to flush, nothing on other threads).
#[derive(Debug, Clone)]
pub struct TestTracing {
    provider: SdkTracerProvider,
    exporter: InMemorySpanExporter,
}

impl Default for TestTracing {
    fn default() -> Self {
        Self::new()
    }
}

impl TestTracing {
    /// A fresh provider and store.
    pub fn new() -> Self {
        let exporter = InMemorySpanExporter::new();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        Self { provider, exporter }
    }

    /// The provider, to hand to code under test.
    pub fn provider(&self) -> &SdkTracerProvider {
        &self.provider
    }

    /// A tracer for one instrumentation scope.
    pub fn tracer(&self, scope: &'static str) -> SdkTracer {
        self.provider.tracer(scope)
    }

    /// A `tracing` subscriber whose spans become OpenTelemetry spans in this store; use with
    /// `tracing::subscriber::with_default` or `set_default`.
    pub fn subscriber(&self) -> impl Subscriber + Send + Sync + use<> {
        tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(self.tracer("throughline-test")))
    }

    /// The exporter, for `reset` or raw access.
    pub fn exporter(&self) -> &InMemorySpanExporter {
        &self.exporter
    }

    /// The spans recorded so far.
    pub fn spans(&self) -> SpanTree {
        self.exporter.span_tree()
    }
}

/// Finished spans with lookups and assertions by span name.
#[derive(Debug, Clone)]
pub struct SpanTree {
    spans: Vec<SpanData>,
}

impl SpanTree {
    /// Wraps spans from any exporter.
    pub fn new(spans: Vec<SpanData>) -> Self {
        Self { spans }
    }

    /// All spans.
    pub fn spans(&self) -> &[SpanData] {
        &self.spans
    }

    /// How many spans there are.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// `true` when no span was recorded.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The first span called `name`, if any.
    pub fn get(&self, name: &str) -> Option<&SpanData> {
        self.spans.iter().find(|s| s.name == name)
    }

    /// Every span called `name`.
    pub fn find_all(&self, name: &str) -> Vec<&SpanData> {
        self.spans.iter().filter(|s| s.name == name).collect()
    }

    /// The one span called `name`; panics (showing the tree) if there is none or several.
    pub fn find(&self, name: &str) -> &SpanData {
        match self.find_all(name).as_slice() {
            [one] => one,
            [] => panic!("no span named {name:?} in:\n{}", self.render()),
            many => panic!("{} spans named {name:?} in:\n{}", many.len(), self.render()),
        }
    }

    /// The recorded parent of `span`, if it was recorded here.
    pub fn parent_of(&self, span: &SpanData) -> Option<&SpanData> {
        if span.parent_span_id == SpanId::INVALID {
            return None;
        }
        self.spans.iter().find(|s| {
            s.span_context.span_id() == span.parent_span_id
                && s.span_context.trace_id() == span.span_context.trace_id()
        })
    }

    /// The recorded children of `span`.
    pub fn children_of(&self, span: &SpanData) -> Vec<&SpanData> {
        self.spans
            .iter()
            .filter(|s| {
                s.parent_span_id == span.span_context.span_id()
                    && s.span_context.trace_id() == span.span_context.trace_id()
            })
            .collect()
    }

    /// Spans without a parent (local roots; a span whose parent is remote is not a root).
    pub fn roots(&self) -> Vec<&SpanData> {
        self.spans
            .iter()
            .filter(|s| s.parent_span_id == SpanId::INVALID)
            .collect()
    }

    /// Asserts that the span `child` has the span `parent` as its parent, in the same trace.
    pub fn assert_parent(&self, child: &str, parent: &str) -> &Self {
        let c = self.find(child);
        let p = self.find(parent);
        assert!(
            c.parent_span_id == p.span_context.span_id()
                && c.span_context.trace_id() == p.span_context.trace_id(),
            "span {child:?} is not a child of {parent:?} in:\n{}",
            self.render()
        );
        self
    }

    /// Asserts that the span `name` has no parent at all.
    pub fn assert_root(&self, name: &str) -> &Self {
        let s = self.find(name);
        assert!(
            s.parent_span_id == SpanId::INVALID,
            "span {name:?} has a parent in:\n{}",
            self.render()
        );
        self
    }

    /// Asserts that the span `name` continues the remote context `parent` (same trace, parent id).
    pub fn assert_remote_parent(&self, name: &str, parent: &SpanContext) -> &Self {
        let s = self.find(name);
        assert!(
            s.span_context.trace_id() == parent.trace_id() && s.parent_span_id == parent.span_id(),
            "span {name:?} does not continue trace {} / span {} in:\n{}",
            parent.trace_id(),
            parent.span_id(),
            self.render()
        );
        self
    }

    /// Asserts that every named span belongs to one trace.
    pub fn assert_same_trace(&self, names: &[&str]) -> &Self {
        let mut traces = names.iter().map(|n| self.find(n).span_context.trace_id());
        if let Some(first) = traces.next() {
            assert!(
                traces.all(|t| t == first),
                "spans {names:?} are not all in one trace in:\n{}",
                self.render()
            );
        }
        self
    }

    /// Asserts the span kind of the span `name`.
    pub fn assert_kind(&self, name: &str, kind: SpanKind) -> &Self {
        let s = self.find(name);
        assert_eq!(
            s.span_kind,
            kind,
            "kind of span {name:?} in:\n{}",
            self.render()
        );
        self
    }

    /// Asserts that the span `name` has attribute `key` equal to `value`.
    pub fn assert_attribute(&self, name: &str, key: &str, value: impl Into<Value>) -> &Self {
        let s = self.find(name);
        let want = value.into();
        let got = s
            .attributes
            .iter()
            .find(|kv| kv.key == Key::new(key.to_owned()))
            .map(|kv| &kv.value);
        assert_eq!(
            got,
            Some(&want),
            "attribute {key:?} of span {name:?} in:\n{}",
            self.render()
        );
        self
    }

    /// Asserts that the span `from` has a link to the span `to`.
    pub fn assert_link(&self, from: &str, to: &str) -> &Self {
        let target = self.find(to).span_context.clone();
        self.assert_linked_to(from, &target)
    }

    /// Asserts that the span `from` has a link to `target` (e.g. a context that came from a
    /// message, for batch consumers).
    pub fn assert_linked_to(&self, from: &str, target: &SpanContext) -> &Self {
        let s = self.find(from);
        let linked = s.links.iter().any(|l| {
            l.span_context.trace_id() == target.trace_id()
                && l.span_context.span_id() == target.span_id()
        });
        assert!(
            linked,
            "span {from:?} has no link to trace {} / span {} in:\n{}",
            target.trace_id(),
            target.span_id(),
            self.render()
        );
        self
    }

    /// The spans as an indented tree (name, kind, ids), for failure messages.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let ids: Vec<SpanId> = self
            .spans
            .iter()
            .map(|s| s.span_context.span_id())
            .collect();
        let tops = self
            .spans
            .iter()
            .filter(|s| !ids.contains(&s.parent_span_id));
        for top in tops {
            self.render_into(&mut out, top, 0);
        }
        out
    }

    fn render_into(&self, out: &mut String, span: &SpanData, depth: usize) {
        let _ = writeln!(
            out,
            "{:indent$}{} ({:?}) trace={} span={} parent={}",
            "",
            span.name,
            span.span_kind,
            span.span_context.trace_id(),
            span.span_context.span_id(),
            span.parent_span_id,
            indent = depth * 2
        );
        for child in self.children_of(span) {
            self.render_into(out, child, depth + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::KeyValue;
    use opentelemetry::trace::{Link, Span as _, TraceContextExt, Tracer as _};

    #[test]
    fn span_tree_sees_parents_kinds_attributes_and_links() {
        let t = TestTracing::new();
        let tracer = t.tracer("test");
        let linked = tracer.start("producer");
        let linked_cx = linked.span_context().clone();
        drop(linked);
        tracer.in_span("request", |cx| {
            let mut child = tracer
                .span_builder("child")
                .with_kind(SpanKind::Consumer)
                .with_attributes([KeyValue::new("messaging.system", "aws_sqs")])
                .with_links(vec![Link::with_context(linked_cx.clone())])
                .start_with_context(&tracer, &cx);
            child.end();
            assert!(cx.span().span_context().is_valid());
        });
        let tree = t.spans();
        assert_eq!(tree.len(), 3);
        tree.assert_parent("child", "request")
            .assert_root("request")
            .assert_kind("child", SpanKind::Consumer)
            .assert_attribute("child", "messaging.system", "aws_sqs")
            .assert_link("child", "producer")
            .assert_same_trace(&["request", "child"]);
        assert_eq!(tree.children_of(tree.find("request")).len(), 1);
        assert_eq!(tree.roots().len(), 2);
        assert!(tree.render().contains("  child (Consumer)"));
    }

    #[test]
    #[should_panic(expected = "is not a child of")]
    fn a_wrong_parent_fails_the_assertion() {
        let t = TestTracing::new();
        let tracer = t.tracer("test");
        drop(tracer.start("a"));
        drop(tracer.start("b"));
        t.spans().assert_parent("a", "b");
    }

    #[test]
    fn tracing_spans_are_recorded_through_the_subscriber() {
        let t = TestTracing::new();
        tracing::subscriber::with_default(t.subscriber(), || {
            let outer = tracing::info_span!("outer");
            let _o = outer.enter();
            let inner = tracing::info_span!("inner");
            let _i = inner.enter();
        });
        t.spans().assert_parent("inner", "outer");
    }
}
