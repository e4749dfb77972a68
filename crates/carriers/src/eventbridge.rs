//! An EventBridge event's `detail` as a carrier.
//!
//! EventBridge has no message attributes, so the propagation fields travel inside the event's
//! `detail` JSON object, under one field (`_trace` by default, configurable):
//! `{"order_id": 7, "_trace": {"traceparent": "00-…", "tracestate": "…"}}`. Inject works on the
//! `detail` value (or on the JSON string `PutEvents` takes); extract works on the `detail` of the
//! delivered envelope, e.g. `aws_lambda_events::event::eventbridge::EventBridgeEvent`.
//!
//! Case: field names inside the trace object are the propagators' (lowercase); on extract an
//! exact match is preferred, then an ASCII case-insensitive one. Only string values count.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use serde_json::{Map, Value};

/// The `detail` field that carries the trace unless configured otherwise.
pub const DEFAULT_EVENTBRIDGE_TRACE_FIELD: &str = "_trace";

/// Why the trace could not be put into an event's `detail`.
#[derive(Debug, thiserror::Error)]
pub enum EventBridgeDetailError {
    /// `detail` is not a JSON object.
    #[error("eventbridge detail is {found}, not a JSON object")]
    NotAnObject {
        /// The JSON type found.
        found: &'static str,
    },
    /// The trace field is already used by a value that is not an object.
    #[error("eventbridge detail field {field:?} is already used by {found}, not a trace object")]
    FieldTaken {
        /// The configured field name.
        field: String,
        /// The JSON type found there.
        found: &'static str,
    },
    /// The `detail` string given for `PutEvents` is not JSON.
    #[error("eventbridge detail is not valid JSON")]
    Json(#[from] serde_json::Error),
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Writes non-empty propagation fields as string members of a JSON object.
#[derive(Debug)]
pub struct JsonObjectInjector<'a>(pub &'a mut Map<String, Value>);

impl Injector for JsonObjectInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if !value.is_empty() {
            self.0.insert(key.to_owned(), Value::String(value));
        }
    }
}

/// Reads propagation fields from the string members of a JSON object.
#[derive(Debug, Clone, Copy)]
pub struct JsonObjectExtractor<'a>(pub &'a Map<String, Value>);

impl Extractor for JsonObjectExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        let value = match self.0.get(key) {
            Some(value) => value,
            None => {
                self.0
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case(key))?
                    .1
            }
        };
        value.as_str()
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// Where in `detail` the trace travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventBridgeTraceField {
    name: String,
}

impl Default for EventBridgeTraceField {
    fn default() -> Self {
        Self::new(DEFAULT_EVENTBRIDGE_TRACE_FIELD)
    }
}

impl EventBridgeTraceField {
    /// The trace travels in `detail[name]`.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }

    /// The field name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Injects `cx` into `detail[field]`, replacing an earlier trace object there. `detail` must
    /// be a JSON object; a field already holding a non-object is left alone and reported.
    pub fn inject(
        &self,
        propagator: &dyn TextMapPropagator,
        cx: &Context,
        detail: &mut Value,
    ) -> Result<(), EventBridgeDetailError> {
        let Value::Object(object) = detail else {
            return Err(EventBridgeDetailError::NotAnObject {
                found: json_type(detail),
            });
        };
        if let Some(existing) = object.get(&self.name)
            && !existing.is_object()
        {
            return Err(EventBridgeDetailError::FieldTaken {
                field: self.name.clone(),
                found: json_type(existing),
            });
        }
        let mut trace = Map::new();
        propagator.inject_context(cx, &mut JsonObjectInjector(&mut trace));
        if trace.is_empty() {
            object.remove(&self.name);
        } else {
            object.insert(self.name.clone(), Value::Object(trace));
        }
        Ok(())
    }

    /// Injects `cx` into a `detail` JSON string (what `PutEventsRequestEntry::detail` takes) and
    /// returns the new string.
    pub fn inject_detail_json(
        &self,
        propagator: &dyn TextMapPropagator,
        cx: &Context,
        detail_json: &str,
    ) -> Result<String, EventBridgeDetailError> {
        let mut detail: Value = serde_json::from_str(detail_json)?;
        self.inject(propagator, cx, &mut detail)?;
        Ok(detail.to_string())
    }

    /// The context `detail[field]` carries, or the current context if there is none.
    pub fn extract(&self, propagator: &dyn TextMapPropagator, detail: &Value) -> Context {
        match detail.get(&self.name) {
            Some(Value::Object(trace)) => propagator.extract(&JsonObjectExtractor(trace)),
            _ => Context::current(),
        }
    }

    /// The context a delivered EventBridge event carries in its `detail`.
    pub fn extract_event(
        &self,
        propagator: &dyn TextMapPropagator,
        event: &EventBridgeEvent<Value>,
    ) -> Context {
        self.extract(propagator, &event.detail)
    }
}
