//! HTTP headers (`http::HeaderMap`) as a carrier.
//!
//! Case: header names are case-insensitive in HTTP and `HeaderMap` stores them lowercase, so
//! `TraceParent` and `traceparent` are the same header. A value that is not visible ASCII is
//! skipped on extract (it cannot be a valid trace header); a value that cannot be a header value
//! is skipped on inject. Several values of one header are all returned by `get_all`, which the
//! strict trace-context propagator uses to reject a duplicated `traceparent`.

use http::header::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, Injector};

/// Writes propagation fields into a `HeaderMap`, replacing any earlier value of the same header.
#[derive(Debug)]
pub struct HeaderInjector<'a>(pub &'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) else {
            return;
        };
        self.0.insert(name, value);
    }

    fn reserve(&mut self, additional: usize) {
        self.0.reserve(additional);
    }
}

/// Reads propagation fields from a `HeaderMap`.
#[derive(Debug, Clone, Copy)]
pub struct HeaderExtractor<'a>(pub &'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }

    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        let values: Vec<&str> = self
            .0
            .get_all(key)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .collect();
        (!values.is_empty()).then_some(values)
    }
}
