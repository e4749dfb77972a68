//! The HTTP client helper: a reqwest call under a CLIENT span, the current context injected
//! into the request's headers with the global propagator.
//!
//! The span is named `{method}` (the conventions' name when no URL template is known), with
//! `http.request.method`, `server.address`, `server.port`, `url.full`, and on the answer
//! `http.response.status_code`; a status of 400 or more, or a transport error, sets `error.type`
//! and an error status.
//!
//! ```no_run
//! use throughline_instrument::HttpClient;
//!
//! # async fn call() -> Result<(), reqwest::Error> {
//! let client = HttpClient::new(reqwest::Client::new(), opentelemetry::global::tracer("shop"));
//! let request = client.inner().get("http://127.0.0.1:8000/customers/C-1").build()?;
//! let response = client.execute(request).await?;
//! # let _ = response; Ok(()) }
//! ```

use std::sync::Arc;

use opentelemetry::global::{self, BoxedTracer};
use opentelemetry::trace::{SpanKind, Tracer};
use opentelemetry::{Context, KeyValue};
use opentelemetry_semantic_conventions::attribute as semconv;
use throughline_carriers::HeaderInjector;

use crate::SharedTracer;
use crate::http_server::method_name;
use crate::span::ActiveSpan;

/// A reqwest client whose calls are traced (see the module docs).
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    tracer: SharedTracer,
}

impl HttpClient {
    /// Traces the calls of `client` with spans from `tracer`.
    pub fn new<T>(client: reqwest::Client, tracer: T) -> Self
    where
        T: Tracer + Send + Sync + 'static,
        T::Span: Send + Sync + 'static,
    {
        Self::shared(client, Arc::new(BoxedTracer::new(Box::new(tracer))))
    }

    /// Traces the calls of `client` with a tracer already shared with other helpers.
    pub fn shared(client: reqwest::Client, tracer: SharedTracer) -> Self {
        Self { client, tracer }
    }

    /// The client, to build requests with.
    pub fn inner(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends `request` under a CLIENT span, child of the current context.
    pub async fn execute(
        &self,
        mut request: reqwest::Request,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let method = method_name(request.method());
        let url = request.url();
        let mut attributes = Vec::with_capacity(4);
        attributes.push(KeyValue::new(semconv::HTTP_REQUEST_METHOD, method.clone()));
        attributes.push(KeyValue::new(semconv::URL_FULL, redacted_url(url)));
        if let Some(host) = url.host_str() {
            attributes.push(KeyValue::new(semconv::SERVER_ADDRESS, host.to_owned()));
        }
        if let Some(port) = url.port_or_known_default() {
            attributes.push(KeyValue::new(semconv::SERVER_PORT, i64::from(port)));
        }
        let builder = self
            .tracer
            .span_builder(method)
            .with_kind(SpanKind::Client)
            .with_attributes(attributes);
        let span = ActiveSpan::start(&self.tracer, builder, &Context::current());
        global::get_text_map_propagator(|p| {
            p.inject_context(span.context(), &mut HeaderInjector(request.headers_mut()));
        });
        let result = span.run(self.client.execute(request)).await;
        match &result {
            Ok(response) => {
                let status = response.status();
                span.set_attribute(KeyValue::new(
                    semconv::HTTP_RESPONSE_STATUS_CODE,
                    i64::from(status.as_u16()),
                ));
                if status.is_client_error() || status.is_server_error() {
                    span.fail(status.as_u16().to_string(), status);
                }
            }
            Err(e) => span.fail(transport_error_type(e), e),
        }
        result
    }
}

/// `url.full` without user name or password, as the conventions require.
fn redacted_url(url: &reqwest::Url) -> String {
    if url.username().is_empty() && url.password().is_none() {
        return url.as_str().to_owned();
    }
    let mut url = url.clone();
    // Setting credentials fails only on URLs that cannot have them, which then have none.
    let _ = url.set_username("REDACTED");
    let _ = url.set_password(Some("REDACTED"));
    url.to_string()
}

fn transport_error_type(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "_OTHER"
    }
}
