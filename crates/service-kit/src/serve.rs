//! `serve_http`: the one accept loop of the workspace. HTTP/1.1 and HTTP/2 (h2c, so gRPC) on one
//! listener through hyper-util's auto builder, each connection watched for idleness, a limit on
//! connections, and a graceful shutdown bounded by the grace period.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A service's listening address could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}")]
pub struct BindError {
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// Binds a service's listener, naming the address when it cannot (in use, not local, no
/// permission).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { addr, source })
}
use tower::ServiceExt;

use crate::config::ServeConfig;
use crate::guard::Guard;

/// The service each connection calls: the router inside the kit's checks.
type AppService = Guard<Router>;

/// How long a connection told to close (idle, or at shutdown) gets before it is dropped.
const CLOSE_BOUND: Duration = Duration::from_secs(1);

/// Wraps `router` in the kit's checks: allowed hosts (on a loopback listener), body limit, body
/// deadline, request deadline (see [`Guard`]).
fn app_service(router: Router, config: &ServeConfig, loopback: bool) -> AppService {
    Guard::new(router, config, loopback)
}

fn connection_builder(config: &ServeConfig) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(config.http2_keep_alive_interval)
        .keep_alive_timeout(config.http2_keep_alive_timeout)
        .max_concurrent_streams(config.http2_max_concurrent_streams);
    builder
}

/// Serves `router` on `listener` until `shutdown` resolves; then stops accepting, lets requests
/// in flight finish within `config.shutdown_grace`, and drops what is still open.
///
/// A listener bound to a loopback address answers only requests whose `Host` is a loopback name
/// or in `config.allowed_hosts` (403 otherwise); one bound elsewhere does not check.
pub async fn serve_http(
    listener: TcpListener,
    router: Router,
    config: ServeConfig,
    shutdown: impl Future<Output = ()>,
) {
    let loopback = listener.local_addr().is_ok_and(|a| a.ip().is_loopback());
    let service = app_service(router, &config, loopback);
    let builder = Arc::new(connection_builder(&config));
    let max_connections = config.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let permits = Arc::new(Semaphore::new(max_connections));
    let closing = CancellationToken::new();
    let dropping = CancellationToken::new();
    let watch = IdleWatch {
        header_read: config.header_read_timeout,
        idle: config.idle_timeout,
    };
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        // Out of file descriptors and the like: wait a little rather than spin.
                        tracing::warn!(error = %err, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                    tracing::warn!(%peer, max_connections, "connection closed: too many open connections");
                    drop(stream);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve_connection(Connection {
                    builder: Arc::clone(&builder),
                    stream,
                    service: service.clone(),
                    watch,
                    closing: closing.clone(),
                    dropping: dropping.clone(),
                    _permit: permit,
                }));
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    closing.cancel();
    // Every connection holds a permit until it ends: all permits back means all connections done.
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(config.shutdown_grace, permits.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the shutdown grace period are dropped");
        dropping.cancel();
    }
}

/// A server running in a background task (see [`spawn_http`]).
#[derive(Debug)]
pub struct HttpServer {
    addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// Starts [`serve_http`] in a background task, stopped by [`HttpServer::shutdown`].
pub fn spawn_http(
    listener: TcpListener,
    router: Router,
    config: ServeConfig,
) -> std::io::Result<HttpServer> {
    let addr = listener.local_addr()?;
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    let task = tokio::spawn(async move {
        serve_http(listener, router, config, stopped.cancelled_owned()).await;
    });
    Ok(HttpServer { addr, stop, task })
}

impl HttpServer {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Asks the server to stop without waiting for it.
    pub fn begin_shutdown(&self) {
        self.stop.cancel();
    }

    /// Stops accepting, lets requests in flight finish (within the grace period) and returns.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }

    /// Waits until the server has stopped (after a shutdown asked from elsewhere, or never).
    pub async fn wait(&mut self) {
        let _ = (&mut self.task).await;
    }
}

/// When a connection counts as idle.
#[derive(Debug, Clone, Copy)]
struct IdleWatch {
    /// Before its first request: no request head within this of opening.
    header_read: Duration,
    /// After: no request in flight for this long.
    idle: Duration,
}

/// Requests in flight on one connection and when the last one started or ended.
#[derive(Debug)]
struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    requests: AtomicU64,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Release);
    }

    /// When the connection will have been idle too long if nothing happens until then; `None`
    /// while a request is in flight.
    fn idle_deadline(&self, watch: IdleWatch) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        if self.requests.load(Ordering::Acquire) == 0 {
            return Some(self.opened + watch.header_read);
        }
        let last = Duration::from_millis(self.last_ms.load(Ordering::Acquire));
        Some(self.opened + last + watch.idle)
    }
}

/// Counts a request in flight from its start until its response body is dropped.
struct InFlight {
    activity: Arc<Activity>,
}

impl InFlight {
    fn start(activity: &Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        activity.requests.fetch_add(1, Ordering::AcqRel);
        activity.touch();
        Self {
            activity: Arc::clone(activity),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.activity.touch();
        self.activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted in flight until hyper has sent it.
struct TrackedBody {
    inner: Body,
    _in_flight: InFlight,
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// One accepted connection and what it needs to be served.
struct Connection {
    builder: Arc<auto::Builder<TokioExecutor>>,
    stream: TcpStream,
    service: AppService,
    watch: IdleWatch,
    closing: CancellationToken,
    dropping: CancellationToken,
    _permit: OwnedSemaphorePermit,
}

async fn serve_connection(c: Connection) {
    let activity = Arc::new(Activity::new());
    let tracked = Arc::clone(&activity);
    let app = c.service;
    let service = tower::service_fn(move |request: http::Request<Incoming>| {
        let in_flight = InFlight::start(&tracked);
        let call = app.clone().oneshot(request);
        async move {
            let response = call.await?;
            Ok::<_, Infallible>(response.map(|inner| TrackedBody {
                inner,
                _in_flight: in_flight,
            }))
        }
    });
    let hyper_service = TowerToHyperService::new(service);
    let conn = c
        .builder
        .serve_connection_with_upgrades(TokioIo::new(c.stream), hyper_service);
    tokio::pin!(conn);
    let mut closing = Closing::Open;
    loop {
        let wake_at = match closing {
            // While requests are in flight, look again after a while.
            Closing::Open => Some(
                activity
                    .idle_deadline(c.watch)
                    .unwrap_or_else(|| Instant::now() + c.watch.idle),
            ),
            Closing::Idle(since) => Some(since + CLOSE_BOUND),
            // At shutdown the grace period bounds the connection (`dropping`).
            Closing::Shutdown => None,
        };
        // Only one of the two signals can come next: the server cancels `dropping` only after
        // `closing`. Polling just that one (and the connection first, with no random order)
        // keeps each wake-up of a busy connection cheap.
        let signal = match closing {
            Closing::Shutdown => &c.dropping,
            Closing::Open | Closing::Idle(_) => &c.closing,
        };
        tokio::select! {
            biased;
            result = conn.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(error = %err, "http connection ended with an error");
                }
                return;
            }
            () = signal.cancelled() => {
                if matches!(closing, Closing::Shutdown) {
                    return;
                }
                conn.as_mut().graceful_shutdown();
                closing = Closing::Shutdown;
            }
            () = sleep_until(wake_at) => {
                if matches!(closing, Closing::Idle(_)) {
                    if activity.idle_deadline(c.watch).is_some() {
                        return;
                    }
                    // A request arrived as the connection was told to close: let it finish.
                    closing = Closing::Idle(Instant::now());
                    continue;
                }
                if activity.idle_deadline(c.watch).is_some_and(|at| at <= Instant::now()) {
                    tracing::debug!("closing an idle http connection");
                    conn.as_mut().graceful_shutdown();
                    closing = Closing::Idle(Instant::now());
                }
            }
        }
    }
}

/// Where a connection is in closing.
#[derive(Debug, Clone, Copy)]
enum Closing {
    Open,
    /// Told to close for idleness at this instant; dropped if not closed soon after.
    Idle(Instant),
    /// Told to close because the server stops.
    Shutdown,
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
