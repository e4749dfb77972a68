//! The HTTP server layer: a tower [`Layer`] that traces each request with a SERVER span.
//!
//! For each request it extracts the caller's context with the global propagator, starts the
//! SERVER span named `{method} {route}` (`http.route` from axum's [`MatchedPath`] when the layer
//! is added with `Router::layer`; `{method}` alone otherwise, as the conventions say), with
//! `http.request.method`, `http.route`, `url.path`, `url.scheme`, `server.port` and
//! `user_agent.original`; runs the inner service inside the span's context; records
//! `http.response.status_code` and, on a 5xx, `error.type` (the handler's [`ErrorType`] when it
//! put one in the response's extensions, else the status code) with an error status; ends the
//! span and answers with the `traceresponse` header naming it. Excluded paths (health checks)
//! pass through untraced.
//!
//! ```
//! use axum::{Router, routing::get};
//! use throughline_instrument::HttpServerLayer;
//! use throughline_telemetry::testing::TestTracing;
//! use tower::ServiceExt as _;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let tracing = TestTracing::new();
//! let app = Router::new()
//!     .route("/orders/{id}", get(|| async { "an order" }))
//!     .route("/health", get(|| async { "ok" }))
//!     .layer(HttpServerLayer::new(tracing.tracer("shop")).server_port(8080).exclude_path("/health"));
//! let request = http::Request::get("/orders/7").body(axum::body::Body::empty()).unwrap();
//! let response = app.clone().oneshot(request).await.unwrap();
//! assert!(response.headers().contains_key("traceresponse"));
//! let health = http::Request::get("/health").body(axum::body::Body::empty()).unwrap();
//! app.oneshot(health).await.unwrap();
//! let spans = tracing.spans();
//! spans.assert_attribute("GET /orders/{id}", "http.route", "/orders/{id}");
//! assert_eq!(spans.len(), 1); // the health check is not traced
//! # });
//! ```

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, ready};

use axum::extract::MatchedPath;
use http::{HeaderValue, Request, Response};
use opentelemetry::global::{self, BoxedTracer};
use opentelemetry::trace::{
    FutureExt as _, SpanKind, Status, TraceContextExt, Tracer, WithContext,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_semantic_conventions::attribute as semconv;
use pin_project_lite::pin_project;
use throughline_carriers::HeaderExtractor;
use throughline_propagation::format_traceparent;
use tower::{Layer, Service};

use crate::SharedTracer;

/// The response header that names the server's span (W3C Trace Context level 2).
pub const TRACERESPONSE: &str = "traceresponse";

/// What went wrong, for `error.type` on a 5xx answer: put it in the response's extensions
/// (`response.extensions_mut().insert(ErrorType("database"))`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorType(pub &'static str);

#[derive(Debug, Clone)]
struct ServerSettings {
    tracer: SharedTracer,
    server_port: Option<i64>,
    scheme: &'static str,
    /// Paths left untraced; a list, not a set: there are a few, and comparing a few strings
    /// costs less than hashing the path of every request.
    excluded: Vec<String>,
}

/// Traces every request of the service it wraps (see the module docs).
#[derive(Debug, Clone)]
pub struct HttpServerLayer {
    settings: ServerSettings,
}

impl HttpServerLayer {
    /// A layer whose spans come from `tracer`; scheme `http`, no port, nothing excluded.
    pub fn new<T>(tracer: T) -> Self
    where
        T: Tracer + Send + Sync + 'static,
        T::Span: Send + Sync + 'static,
    {
        Self::from_boxed(BoxedTracer::new(Box::new(tracer)))
    }

    /// A layer from a boxed tracer, as `opentelemetry::global::tracer` returns it.
    pub fn from_boxed(tracer: BoxedTracer) -> Self {
        Self::shared(Arc::new(tracer))
    }

    /// A layer from a tracer already shared with other helpers.
    pub fn shared(tracer: SharedTracer) -> Self {
        Self {
            settings: ServerSettings {
                tracer,
                server_port: None,
                scheme: "http",
                excluded: Vec::new(),
            },
        }
    }

    fn settings_mut(&mut self) -> &mut ServerSettings {
        &mut self.settings
    }

    /// `server.port` of every span: the port the listener is bound to.
    pub fn server_port(mut self, port: u16) -> Self {
        self.settings_mut().server_port = Some(i64::from(port));
        self
    }

    /// `url.scheme` of every span (`http` unless told).
    pub fn scheme(mut self, scheme: &'static str) -> Self {
        self.settings_mut().scheme = scheme;
        self
    }

    /// Leaves requests for `path` untraced (exact match; a missing leading `/` is added).
    pub fn exclude_path(mut self, path: impl Into<String>) -> Self {
        let path = normalize_path(path.into());
        let excluded = &mut self.settings_mut().excluded;
        if !excluded.contains(&path) {
            excluded.push(path);
        }
        self
    }

    /// Leaves every path of a comma-separated list untraced, in the form of the Python
    /// instrumentations' `excluded_urls` (`health,health/ready`); blanks are skipped.
    pub fn exclude_paths(mut self, list: &str) -> Self {
        for path in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            self = self.exclude_path(path);
        }
        self
    }
}

/// `http.request.method`: the standard methods as static strings (no allocation per request).
pub(crate) fn method_name(method: &http::Method) -> Cow<'static, str> {
    use http::Method;
    let name = match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => return Cow::Owned(method.as_str().to_owned()),
    };
    Cow::Borrowed(name)
}

fn normalize_path(path: String) -> String {
    if path.starts_with('/') {
        path
    } else {
        format!("/{path}")
    }
}

impl<S> Layer<S> for HttpServerLayer {
    type Service = HttpServerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpServerService {
            inner,
            settings: Arc::new(self.settings.clone()),
        }
    }
}

/// The service [`HttpServerLayer`] wraps around an inner one.
#[derive(Debug, Clone)]
pub struct HttpServerService<S> {
    inner: S,
    settings: Arc<ServerSettings>,
}

impl<S, B, ResBody> Service<Request<B>> for HttpServerService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = HttpServerFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let path = request.uri().path();
        if self
            .settings
            .excluded
            .iter()
            .any(|excluded| excluded == path)
        {
            return HttpServerFuture::untraced(self.inner.call(request));
        }
        let cx = self.start(&request);
        let quiet = {
            let span = cx.span();
            !span.is_recording() && !span.span_context().is_valid()
        };
        if quiet {
            // No SDK (`OTEL_SDK_DISABLED`, no provider) and no caller's trace: the span records
            // nothing, names no trace and has no `traceresponse` to give, so there is nothing to
            // run the handler inside of nor to finish.
            return HttpServerFuture::untraced(self.inner.call(request));
        }
        HttpServerFuture {
            state: FutureState::Traced {
                inner: self.inner.call(request).with_context(cx.clone()),
                cx,
                settings: Arc::clone(&self.settings),
            },
        }
    }
}

pin_project! {
    /// The answer of an [`HttpServerService`]: the inner service's, with the span finished and
    /// `traceresponse` added when the request was traced.
    pub struct HttpServerFuture<F> {
        #[pin]
        state: FutureState<F>,
    }
}

pin_project! {
    #[project = FutureStateProjection]
    enum FutureState<F> {
        /// An excluded path, or a span that records nothing: the inner answer as it is.
        Untraced {
            #[pin]
            inner: F,
        },
        /// The inner service running inside the SERVER span's context.
        Traced {
            #[pin]
            inner: WithContext<F>,
            cx: Context,
            settings: Arc<ServerSettings>,
        },
    }
}

impl<F> HttpServerFuture<F> {
    fn untraced(inner: F) -> Self {
        Self {
            state: FutureState::Untraced { inner },
        }
    }
}

impl<F, ResBody, E> Future for HttpServerFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            FutureStateProjection::Untraced { inner } => inner.poll(task),
            FutureStateProjection::Traced {
                inner,
                cx,
                settings,
            } => {
                let response = ready!(inner.poll(task))?;
                Poll::Ready(Ok(settings.finish(cx, response)))
            }
        }
    }
}

impl<S> HttpServerService<S> {
    fn start<B>(&self, request: &Request<B>) -> Context {
        let settings = &self.settings;
        let headers = request.headers();
        let parent = global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)));
        let method = method_name(request.method());
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map(|m| m.as_str().to_owned());
        let name: Cow<'static, str> = match &route {
            Some(route) => format!("{method} {route}").into(),
            None => method.clone(),
        };
        let mut attributes = Vec::with_capacity(7);
        attributes.push(KeyValue::new(semconv::HTTP_REQUEST_METHOD, method));
        if let Some(route) = route {
            attributes.push(KeyValue::new(semconv::HTTP_ROUTE, route));
        }
        attributes.push(KeyValue::new(
            semconv::URL_PATH,
            request.uri().path().to_owned(),
        ));
        attributes.push(KeyValue::new(semconv::URL_SCHEME, settings.scheme));
        if let Some(port) = settings.server_port {
            attributes.push(KeyValue::new(semconv::SERVER_PORT, port));
        }
        if let Some(ua) = headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
        {
            attributes.push(KeyValue::new(semconv::USER_AGENT_ORIGINAL, ua.to_owned()));
        }
        let span = settings
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Server)
            .with_attributes(attributes)
            .start_with_context(settings.tracer.as_ref(), &parent);
        parent.with_span(span)
    }
}

impl ServerSettings {
    /// Records the answer on the span, ends it, and names it in `traceresponse`.
    fn finish<B>(&self, cx: &Context, mut response: Response<B>) -> Response<B> {
        let span = cx.span();
        let status = response.status();
        span.set_attribute(KeyValue::new(
            semconv::HTTP_RESPONSE_STATUS_CODE,
            i64::from(status.as_u16()),
        ));
        if status.is_server_error() {
            let kind: Cow<'static, str> = match response.extensions().get::<ErrorType>() {
                Some(ErrorType(kind)) => Cow::Borrowed(kind),
                None => Cow::Owned(status.as_u16().to_string()),
            };
            span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, kind.clone()));
            span.set_status(Status::error(kind));
        }
        let span_context = span.span_context().clone();
        span.end();
        if let Some(value) =
            format_traceparent(&span_context).and_then(|v| HeaderValue::from_str(&v).ok())
        {
            // `traceresponse` has the form of `traceparent`: version-traceid-childid-flags.
            response.headers_mut().insert(TRACERESPONSE, value);
        }
        response
    }
}
