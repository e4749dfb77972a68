//! Starts the three listeners (OTLP/gRPC, OTLP/HTTP, query API) and shuts them down in order:
//! refuse new exports with 503 / `UNAVAILABLE`, stop accepting, let requests in flight finish.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use http::StatusCode;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use throughline_store::{SpanSink, TraceReader};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::ServiceBuilder;
use tower_http::timeout::{RequestBodyDeadlineLayer, TimeoutLayer};

use crate::ingest::{Ingest, IngestLimits};
use crate::otlp_grpc::OtlpGrpc;
use crate::query::QueryServer;
use crate::self_metrics::CollectorMetrics;

/// Timeouts of the HTTP servers.
#[derive(Debug, Clone)]
pub struct HttpTimeouts {
    /// Time to read a request's headers; on HTTP/1.1 keep-alive connections it also bounds how
    /// long an idle connection is kept waiting for the next request.
    pub header_read: Duration,
    /// Time for a whole request body to arrive.
    pub body: Duration,
    /// Time for a whole request to be answered.
    pub request: Duration,
    /// HTTP/2 keep-alive pings; a peer that does not answer within this time is dropped.
    pub idle: Duration,
}

impl Default for HttpTimeouts {
    fn default() -> Self {
        Self {
            header_read: Duration::from_secs(10),
            body: Duration::from_secs(30),
            request: Duration::from_secs(60),
            idle: Duration::from_secs(120),
        }
    }
}

/// Where the collector listens and what it accepts.
#[derive(Debug, Clone)]
pub struct CollectorConfig {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub query_addr: SocketAddr,
    pub limits: IngestLimits,
    pub timeouts: HttpTimeouts,
    /// How long requests in flight get to finish once shutdown starts.
    pub shutdown_grace: Duration,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        Self {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 4317)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 4318)),
            query_addr: SocketAddr::from(([127, 0, 0, 1], 16686)),
            limits: IngestLimits::default(),
            timeouts: HttpTimeouts::default(),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Why the collector could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("could not listen for {what} on {addr}: {source}")]
    Bind { what: &'static str, addr: SocketAddr, source: std::io::Error },
}

/// A running collector.
#[derive(Debug)]
pub struct RunningCollector {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub query_addr: SocketAddr,
    ingest: Ingest,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// The collector: receivers writing to a [`SpanSink`], the query API reading a [`TraceReader`].
#[derive(Debug)]
pub struct Collector;

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr).await.map_err(|source| StartError::Bind { what, addr, source })
}

impl Collector {
    /// Binds every listener, then serves in background tasks. `pages` (the APM) is served next
    /// to the query API.
    pub async fn start(
        config: CollectorConfig,
        sink: Arc<dyn SpanSink>,
        reader: Arc<dyn TraceReader>,
        pages: Option<Router>,
    ) -> Result<RunningCollector, StartError> {
        let metrics = Arc::new(CollectorMetrics::default());
        let ingest = Ingest::new(sink, config.limits.clone(), metrics);
        let grpc_listener = bind("OTLP/gRPC", config.grpc_addr).await?;
        let http_listener = bind("OTLP/HTTP", config.http_addr).await?;
        let query_listener = bind("the query API", config.query_addr).await?;
        let local = |l: &TcpListener, fallback| l.local_addr().unwrap_or(fallback);
        let grpc_addr = local(&grpc_listener, config.grpc_addr);
        let http_addr = local(&http_listener, config.http_addr);
        let query_addr = local(&query_listener, config.query_addr);
        let (stop, stopped) = watch::channel(false);

        let mut query = QueryServer::new(reader).with_ingest(ingest.clone());
        if let Some(pages) = pages {
            query = query.with_pages(pages);
        }
        let t = config.timeouts.clone();
        let grace = config.shutdown_grace;
        let tasks = vec![
            tokio::spawn(serve_grpc(grpc_listener, OtlpGrpc::new(ingest.clone()), t.clone(), stopped.clone())),
            tokio::spawn(serve_http(http_listener, crate::otlp_http::router(ingest.clone()), t.clone(), grace, stopped.clone())),
            tokio::spawn(serve_http(query_listener, query.router(), t, grace, stopped)),
        ];
        tracing::info!(%grpc_addr, %http_addr, %query_addr, "collector listening");
        Ok(RunningCollector { grpc_addr, http_addr, query_addr, ingest, stop, tasks })
    }
}

impl RunningCollector {
    /// The receivers' shared state (figures, in-flight bytes).
    pub fn ingest(&self) -> &Ingest {
        &self.ingest
    }

    /// Refuses new exports (503 / `UNAVAILABLE`) while the listeners stay open.
    pub fn refuse_exports(&self) {
        self.ingest.begin_shutdown();
    }

    /// Refuses new exports, stops accepting connections and waits for requests in flight.
    pub async fn shutdown(self) {
        self.ingest.begin_shutdown();
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        tracing::info!("collector stopped");
    }
}

async fn serve_grpc(listener: TcpListener, grpc: OtlpGrpc, t: HttpTimeouts, mut stopped: watch::Receiver<bool>) {
    let mut builder = tonic::transport::Server::builder()
        .timeout(t.request)
        .http2_keepalive_interval(Some(t.idle))
        .http2_keepalive_timeout(Some(t.header_read))
        .tcp_nodelay(true);
    let router = grpc.into_router(&mut builder);
    let incoming = tokio_stream_of(listener);
    let result = router
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = stopped.wait_for(|s| *s).await;
        })
        .await;
    if let Err(err) = result {
        tracing::error!(error = %err, "OTLP/gRPC server stopped");
    }
}

/// The accepted connections of a listener as the stream tonic serves.
fn tokio_stream_of(
    listener: TcpListener,
) -> impl futures::Stream<Item = Result<tokio::net::TcpStream, std::io::Error>> {
    futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| {
            let _ = stream.set_nodelay(true);
            stream
        });
        Some((accepted, listener))
    })
}

async fn serve_http(
    listener: TcpListener,
    router: Router,
    t: HttpTimeouts,
    grace: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    let router = router.layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, t.request));
    let service = ServiceBuilder::new()
        .layer(RequestBodyDeadlineLayer::new(t.body))
        .map_request(|request: http::Request<_>| request.map(Body::new))
        .service(router);
    let service = TowerToHyperService::new(service);
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(t.header_read);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(t.idle))
        .keep_alive_timeout(t.header_read);
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(err) => {
                        // Out of file descriptors and the like: wait a little rather than spin.
                        tracing::warn!(error = %err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service.clone());
                let connection = graceful.watch(connection.into_owned());
                tokio::spawn(async move {
                    if let Err(err) = connection.await {
                        tracing::debug!(error = %err, "http connection ended with an error");
                    }
                });
            }
            _ = stopped.changed() => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!("http connections still open after the shutdown grace period");
    }
}
