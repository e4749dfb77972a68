//! The checks `serve_http` makes on every request, as one tower service around the router: the
//! allowed-hosts check of loopback listeners, the body limit answered in the server's own shape,
//! the body deadline, and the request deadline (answered in gRPC's terms to gRPC requests, and
//! sooner when a gRPC client's `grpc-timeout` says so).
//!
//! One service instead of a middleware per check: each `axum::middleware::from_fn` layer boxes
//! its future and a copy of the rest of the router for every request, and a timer per deadline
//! is a lock on the runtime's timer wheel to insert it and another to remove it. Here the common
//! request (a body whose size is known and within the limit, that has arrived by the time it is
//! read, answered without waiting) allocates nothing and arms no timer: the body limit is
//! counted only when the body's size is not known to be within it, and each deadline's timer is
//! armed only when what it bounds first has to wait. The deadlines still run from the moment
//! the request was taken in.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::BoxError;
use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::Request;
use http_body_util::{LengthLimitError, Limited};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep, sleep_until};
use tower::Service;

use crate::config::{AllowedHosts, BodyLimit, ServeConfig};
use crate::layers::{self, RequestDeadline};

/// What the guard checks, shared by every connection's copy of it.
#[derive(Debug)]
struct Checks {
    /// `None` when nothing is checked: the listener is not on loopback, or `*` is allowed.
    allowed_hosts: Option<AllowedHosts>,
    body_limit: Option<BodyLimit>,
    deadline: Option<RequestDeadline>,
    /// The status of a request out of a deadline only its gRPC client set (none of the server's).
    request_timeout_status: http::StatusCode,
    body_timeout: Duration,
}

/// The router (or any service) inside the kit's checks; see the module docs.
#[derive(Debug, Clone)]
pub(crate) struct Guard<S> {
    inner: S,
    checks: Arc<Checks>,
}

impl<S> Guard<S> {
    /// `inner` checked as `config` says; hosts only when the listener is on `loopback`.
    pub(crate) fn new(inner: S, config: &ServeConfig, loopback: bool) -> Self {
        let check_hosts = loopback && !config.allowed_hosts.names().iter().any(|n| n == "*");
        let checks = Checks {
            allowed_hosts: check_hosts.then(|| config.allowed_hosts.clone()),
            body_limit: config.body_limit.clone(),
            deadline: config.request_timeout.map(|timeout| RequestDeadline {
                timeout,
                status: config.request_timeout_status,
            }),
            request_timeout_status: config.request_timeout_status,
            body_timeout: config.body_timeout,
        };
        Self {
            inner,
            checks: Arc::new(checks),
        }
    }
}

impl<S, B> Service<Request<B>> for Guard<S>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible>,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = GuardFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let checks = &self.checks;
        if let Some(allowed) = &checks.allowed_hosts
            && let Some(refusal) = layers::refuse_host(allowed, &request)
        {
            return GuardFuture::answered(refusal);
        }
        let taken_in = Instant::now();
        let grpc = layers::is_grpc(&request);
        let body_deadline = BodyDeadline {
            at: taken_in + checks.body_timeout,
            timeout: checks.body_timeout,
        };
        let mut exceeded = None;
        let request = match &checks.body_limit {
            Some(limit) => {
                let max = limit.max_bytes as u64;
                // hyper holds a body to its `Content-Length` and gives it as the body's size:
                // a body known to be within the limit needs no counting, one known to be over
                // it is refused before the handler runs.
                let size = request.body().size_hint();
                let declared_over = match size.upper() {
                    Some(upper) if upper <= max => false,
                    _ if size.lower() > max => true,
                    _ => layers::declared_length(&request).is_some_and(|len| len > max),
                };
                if declared_over {
                    return GuardFuture::answered(limit.reject());
                }
                if size.upper().is_some_and(|upper| upper <= max) {
                    request.map(|body| Body::new(DeadlineBody::new(body, body_deadline)))
                } else {
                    let flag = Arc::new(AtomicBool::new(false));
                    exceeded = Some(Arc::clone(&flag));
                    request.map(|body| {
                        Body::new(CountedBody {
                            inner: Limited::new(
                                DeadlineBody::new(body, body_deadline),
                                limit.max_bytes,
                            ),
                            exceeded: flag,
                        })
                    })
                }
            }
            None => request.map(|body| Body::new(DeadlineBody::new(body, body_deadline))),
        };
        let deadline = layers::deadline_of(
            &request,
            grpc,
            checks.deadline,
            checks.request_timeout_status,
        );
        GuardFuture::Running {
            call: self.inner.call(request),
            timer: None,
            taken_in,
            grpc,
            deadline,
            exceeded,
            checks: Arc::clone(checks),
        }
    }
}

pin_project! {
    /// The answer of a guarded request: the inner service's, or the guard's own.
    #[project = GuardProjection]
    pub(crate) enum GuardFuture<F> {
        /// Refused or answered before the inner service was called.
        Answered { response: Option<Response> },
        Running {
            #[pin]
            call: F,
            // The request deadline's timer, armed the first time `call` has to wait.
            #[pin]
            timer: Option<Sleep>,
            taken_in: Instant,
            grpc: bool,
            // The server's request deadline, or the gRPC client's `grpc-timeout` when sooner.
            deadline: Option<RequestDeadline>,
            // Set by the counted body once it passed the limit.
            exceeded: Option<Arc<AtomicBool>>,
            checks: Arc<Checks>,
        },
    }
}

impl<F> GuardFuture<F> {
    fn answered(response: Response) -> Self {
        Self::Answered {
            response: Some(response),
        }
    }
}

impl<F> Future for GuardFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            GuardProjection::Answered { response } => {
                // A future polled again after it answered is a caller's bug; answer empty.
                Poll::Ready(Ok(response.take().unwrap_or_default()))
            }
            GuardProjection::Running {
                call,
                mut timer,
                taken_in,
                grpc,
                deadline,
                exceeded,
                checks,
            } => {
                if let Poll::Ready(result) = call.poll(cx) {
                    let Ok(response) = result;
                    let over = exceeded.as_ref().is_some_and(|f| f.load(Ordering::Acquire));
                    return match (&checks.body_limit, over) {
                        (Some(limit), true) => Poll::Ready(Ok(limit.reject())),
                        _ => Poll::Ready(Ok(response)),
                    };
                }
                let Some(deadline) = *deadline else {
                    return Poll::Pending;
                };
                if timer.is_none() {
                    timer.set(Some(sleep_until(*taken_in + deadline.timeout)));
                }
                if let Some(timer) = timer.as_pin_mut() {
                    ready!(timer.poll(cx));
                }
                Poll::Ready(Ok(layers::out_of_time(*grpc, deadline.status)))
            }
        }
    }
}

/// When a request body must have arrived whole.
#[derive(Debug, Clone, Copy)]
struct BodyDeadline {
    at: Instant,
    timeout: Duration,
}

/// A request body that did not arrive whole within the server's body timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("request body not received whole within {} ms", timeout.as_millis())]
pub struct BodyDeadlineError {
    pub timeout: Duration,
}

pin_project! {
    /// A body that fails with [`BodyDeadlineError`] when it has to wait for data past its
    /// deadline. Its timer is armed the first time it has to wait.
    struct DeadlineBody<B> {
        #[pin]
        inner: B,
        deadline: BodyDeadline,
        #[pin]
        timer: Option<Sleep>,
    }
}

impl<B> DeadlineBody<B> {
    fn new(inner: B, deadline: BodyDeadline) -> Self {
        Self {
            inner,
            deadline,
            timer: None,
        }
    }
}

impl<B> HttpBody for DeadlineBody<B>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if this.timer.is_none() {
            this.timer.set(Some(sleep_until(this.deadline.at)));
        }
        if let Some(timer) = this.timer.as_pin_mut() {
            ready!(timer.poll(cx));
        }
        let timeout = this.deadline.timeout;
        Poll::Ready(Some(Err(Box::new(BodyDeadlineError { timeout }))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project! {
    /// A body that fails with [`LengthLimitError`] (axum's extractors answer 413 to it) once it
    /// passes its limit, and records that it did.
    pub(crate) struct CountedBody<B> {
        #[pin]
        pub(crate) inner: Limited<B>,
        pub(crate) exceeded: Arc<AtomicBool>,
    }
}

impl<B> HttpBody for CountedBody<B>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let Poll::Ready(Some(Err(err))) = &polled
            && err.downcast_ref::<LengthLimitError>().is_some()
        {
            this.exceeded.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
