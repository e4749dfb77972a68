//! Injector/extractor adapters between OpenTelemetry propagators and the API's two carriers:
//! incoming HTTP headers and the outgoing message's string attributes.

use std::collections::HashMap;

use opentelemetry::propagation::{Extractor, Injector};

/// Reads trace context from request headers.
#[derive(Debug)]
pub struct HeaderExtractor<'a>(pub &'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Writes trace context into a message's string attributes (SQS message attributes).
#[derive(Debug)]
pub struct AttributeInjector<'a>(pub &'a mut HashMap<String, String>);

impl Injector for AttributeInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}
