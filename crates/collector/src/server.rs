//! Starts the three listeners (OTLP/gRPC, OTLP/HTTP, query API) on the service kit's
//! `serve_http`, and shuts them down in order: refuse new exports with 503 / `UNAVAILABLE`, stop
//! accepting, let requests in flight finish.
//!
//! Both OTLP listeners speak both protocols: gRPC (HTTP/2, `content-type: application/grpc`,
//! paths `/opentelemetry.proto.collector.*/Export`) and OTLP/HTTP (`/v1/*`, protobuf or JSON,
//! HTTP/1.1 or HTTP/2), so an exporter pointed at either port with either protocol is served.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use throughline_service_kit::{HttpServer, ServeConfig, spawn_http};
use throughline_store::{SpanSink, TraceReader};
use tokio::net::TcpListener;

use crate::export::Exporter;
use crate::ingest::{Ingest, IngestLimits};
use crate::otlp_grpc::OtlpGrpc;
use crate::processors::Processors;
use crate::query::QueryServer;
use crate::self_metrics::CollectorMetrics;
use crate::tail_sampling::{Outlets, TailSampler};

/// Where the collector listens and what it accepts.
#[derive(Debug, Clone)]
pub struct CollectorConfig {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub query_addr: SocketAddr,
    pub limits: IngestLimits,
    /// Timeouts, connection limits, allowed hosts and shutdown grace of the three listeners
    /// (the body limit is the ingest's own, applied after decompression).
    pub serve: ServeConfig,
}

/// The collector's serving defaults: the service kit's, without its body limit (the receivers
/// enforce [`IngestLimits::max_body_bytes`] after decompression and answer in OTLP's terms).
pub fn default_serve_config() -> ServeConfig {
    ServeConfig {
        body_limit: None,
        ..ServeConfig::default()
    }
}

impl Default for CollectorConfig {
    fn default() -> Self {
        Self {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 4317)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 4318)),
            query_addr: SocketAddr::from(([127, 0, 0, 1], 16686)),
            limits: IngestLimits::default(),
            serve: default_serve_config(),
        }
    }
}

/// What happens to exports between admission and the store: processors, then forwarding.
#[derive(Debug, Default)]
pub struct Pipeline {
    pub processors: Arc<Processors>,
    pub exporter: Option<Arc<Exporter>>,
    /// Tail sampling: traces held in its spool until decided, then stored and forwarded.
    pub tail_sampling: Option<Arc<TailSampler>>,
}

/// Why the collector could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("could not listen for {what} on {addr}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("could not serve a listener")]
    Serve(#[source] std::io::Error),
}

/// A running collector.
#[derive(Debug)]
pub struct RunningCollector {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub query_addr: SocketAddr,
    ingest: Ingest,
    servers: Vec<HttpServer>,
}

/// The collector: receivers writing to a [`SpanSink`], the query API reading a [`TraceReader`].
#[derive(Debug)]
pub struct Collector;

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { what, addr, source })
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
        Self::start_forwarding(config, sink, reader, pages, None).await
    }

    /// As [`Collector::start`], and forwards every export upstream through `exporter` (whose
    /// forwarders start here and stop at shutdown): an export is acknowledged once it is in
    /// `sink` and in every destination's queue. With [`ForwardOnly`](crate::ForwardOnly) as
    /// sink and reader, the collector is a sidecar that keeps nothing itself.
    pub async fn start_forwarding(
        config: CollectorConfig,
        sink: Arc<dyn SpanSink>,
        reader: Arc<dyn TraceReader>,
        pages: Option<Router>,
        exporter: Option<Arc<Exporter>>,
    ) -> Result<RunningCollector, StartError> {
        let pipeline = Pipeline {
            exporter,
            ..Pipeline::default()
        };
        Self::start_pipeline(config, sink, reader, pages, pipeline).await
    }

    /// As [`Collector::start_forwarding`], with the processors of `pipeline` applied to every
    /// export before it is stored or queued.
    pub async fn start_pipeline(
        config: CollectorConfig,
        sink: Arc<dyn SpanSink>,
        reader: Arc<dyn TraceReader>,
        pages: Option<Router>,
        pipeline: Pipeline,
    ) -> Result<RunningCollector, StartError> {
        let metrics = Arc::new(CollectorMetrics::default());
        let mut ingest =
            Ingest::new(sink, config.limits.clone(), metrics).with_processors(pipeline.processors);
        if let Some(exporter) = pipeline.exporter {
            exporter.start();
            ingest = ingest.with_exporter(exporter);
        }
        if let Some(sampler) = pipeline.tail_sampling {
            sampler.start(Outlets {
                sink: Arc::clone(ingest.sink()),
                exporter: ingest.exporter().cloned(),
                metrics: Arc::clone(ingest.metrics()),
            });
            ingest = ingest.with_tail_sampling(sampler);
        }
        let grpc_listener = bind("OTLP/gRPC", config.grpc_addr).await?;
        let http_listener = bind("OTLP/HTTP", config.http_addr).await?;
        let query_listener = bind("the query API", config.query_addr).await?;
        let local = |l: &TcpListener, fallback| l.local_addr().unwrap_or(fallback);
        let grpc_addr = local(&grpc_listener, config.grpc_addr);
        let http_addr = local(&http_listener, config.http_addr);
        let query_addr = local(&query_listener, config.query_addr);
        let mut query = QueryServer::new(reader).with_ingest(ingest.clone());
        if let Some(pages) = pages {
            query = query.with_pages(pages);
        }
        let otlp = otlp_router(&ingest);
        let serve = |listener, router| {
            spawn_http(listener, router, config.serve.clone()).map_err(StartError::Serve)
        };
        let servers = vec![
            serve(grpc_listener, otlp.clone())?,
            serve(http_listener, otlp)?,
            serve(query_listener, query.router())?,
        ];
        tracing::info!(%grpc_addr, %http_addr, %query_addr, "collector listening");
        Ok(RunningCollector {
            grpc_addr,
            http_addr,
            query_addr,
            ingest,
            servers,
        })
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
        for server in &self.servers {
            server.begin_shutdown();
        }
        for server in self.servers {
            server.shutdown().await;
        }
        if let Some(sampler) = self.ingest.tail_sampling() {
            // What the spool holds is decided at the next start.
            sampler.stop();
        }
        if let Some(exporter) = self.ingest.exporter() {
            // What is still queued is on disk: the next start forwards it.
            exporter.stop();
        }
        tracing::info!("collector stopped");
    }
}

/// Both OTLP protocols on one router: the gRPC services' paths and the OTLP/HTTP `/v1/*` paths
/// do not overlap, so each request reaches its receiver whichever port it came in on. Any other
/// path is answered in the protocol the request speaks.
pub fn otlp_router(ingest: &Ingest) -> Router {
    OtlpGrpc::new(ingest.clone())
        .routes()
        .merge(crate::otlp_http::router(ingest.clone()))
        .fallback(unknown_path)
}

async fn unknown_path(request: Request) -> Response {
    if throughline_service_kit::layers::is_grpc(&request) {
        tonic::Status::unimplemented(format!("no gRPC service at {}", request.uri().path()))
            .into_http::<axum::body::Body>()
            .into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            format!(
                "no OTLP endpoint at {}: OTLP/HTTP is POST /v1/traces, /v1/logs or /v1/metrics\n",
                request.uri().path()
            ),
        )
            .into_response()
    }
}
