//! The OTLP/gRPC receiver: `opentelemetry-proto`'s generated services over tonic, answering with
//! the status codes the OTLP specification gives each outcome.

use std::task::{Context, Poll};

use http::HeaderValue;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;
use throughline_store::{
    ExportLogsServiceRequest, ExportMetricsServiceRequest, ExportTraceServiceRequest,
};
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::ingest::{Ingest, IngestError};
use crate::self_metrics::{CollectorMetrics, RefusalReason, Signal};

/// The three OTLP services, sharing one [`Ingest`].
#[derive(Debug, Clone)]
pub struct OtlpGrpc {
    ingest: Ingest,
}

impl OtlpGrpc {
    pub fn new(ingest: Ingest) -> Self {
        Self { ingest }
    }

    /// The three OTLP/gRPC services as axum routes (`/opentelemetry.proto.collector.*/Export`),
    /// with gzip, the body limit and the status rewrite applied; served by the service kit next
    /// to the OTLP/HTTP routes.
    pub fn routes(self) -> axum::Router {
        let limit = self.ingest.limits().max_body_bytes;
        let self_metrics = std::sync::Arc::clone(self.ingest.metrics());
        let traces = TraceServiceServer::new(self.clone())
            .accept_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(limit);
        let logs = LogsServiceServer::new(self.clone())
            .accept_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(limit);
        let metrics = MetricsServiceServer::new(self)
            .accept_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(limit);
        tonic::service::Routes::new(traces)
            .add_service(logs)
            .add_service(metrics)
            .into_axum_router()
            .layer(GrpcStatusRewriteLayer {
                metrics: self_metrics,
            })
    }

    fn admit<T: Message>(
        &self,
        signal: Signal,
        request: &T,
    ) -> Result<crate::ingest::Reservation, Status> {
        self.ingest
            .reserve(signal, request.encoded_len() as u64)
            .map_err(to_status)
    }
}

/// Maps an ingest failure to the status OTLP prescribes.
pub fn to_status(err: IngestError) -> Status {
    match err {
        IngestError::Overloaded { retry_after, .. }
        | IngestError::QueueFull { retry_after, .. } => {
            // Retryable: RESOURCE_EXHAUSTED *with* RetryInfo (OTLP: without it, it is final).
            let details = ErrorDetails::with_retry_info(Some(retry_after));
            Status::with_error_details(tonic::Code::ResourceExhausted, err.to_string(), details)
        }
        IngestError::ShuttingDown => Status::unavailable(err.to_string()),
        IngestError::Store(_) | IngestError::WriterGone | IngestError::Queue(_) => {
            Status::unavailable(err.to_string())
        }
    }
}

#[tonic::async_trait]
impl TraceService for OtlpGrpc {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let request = request.into_inner();
        let reservation = self.admit(Signal::Traces, &request)?;
        let report = self
            .ingest
            .export_traces(request, reservation)
            .await
            .map_err(to_status)?;
        let partial_success = (report.rejected_spans > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: i64::try_from(report.rejected_spans).unwrap_or(i64::MAX),
            error_message: report.rejection_reason,
        });
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success,
        }))
    }
}

#[tonic::async_trait]
impl LogsService for OtlpGrpc {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        let request = request.into_inner();
        let reservation = self.admit(Signal::Logs, &request)?;
        self.ingest
            .export_logs(request, reservation)
            .await
            .map_err(to_status)?;
        Ok(Response::new(ExportLogsServiceResponse {
            partial_success: None::<ExportLogsPartialSuccess>,
        }))
    }
}

#[tonic::async_trait]
impl MetricsService for OtlpGrpc {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let request = request.into_inner();
        let reservation = self.admit(Signal::Metrics, &request)?;
        self.ingest
            .export_metrics(request, reservation)
            .await
            .map_err(to_status)?;
        Ok(Response::new(ExportMetricsServiceResponse {
            partial_success: None::<ExportMetricsPartialSuccess>,
        }))
    }
}

/// Rewrites the two statuses tonic produces itself before our handlers run into the ones OTLP
/// prescribes: a message over the size limit (`OUT_OF_RANGE` → `RESOURCE_EXHAUSTED`, without
/// retry info so it is final) and a payload that does not decode (`INTERNAL` → `INVALID_ARGUMENT`).
/// Our handlers never answer `OUT_OF_RANGE` or `INTERNAL` themselves, so only tonic's own answers
/// are rewritten.
///
/// It also counts those refusals, which happen before a handler could.
#[derive(Debug, Clone)]
pub struct GrpcStatusRewriteLayer {
    metrics: std::sync::Arc<CollectorMetrics>,
}

impl<S> tower::Layer<S> for GrpcStatusRewriteLayer {
    type Service = GrpcStatusRewrite<S>;
    fn layer(&self, inner: S) -> Self::Service {
        GrpcStatusRewrite {
            inner,
            metrics: std::sync::Arc::clone(&self.metrics),
        }
    }
}

#[derive(Debug, Clone)]
pub struct GrpcStatusRewrite<S> {
    inner: S,
    metrics: std::sync::Arc<CollectorMetrics>,
}

fn signal_of_path(path: &str) -> Signal {
    if path.contains(".logs.") {
        Signal::Logs
    } else if path.contains(".metrics.") {
        Signal::Metrics
    } else {
        Signal::Traces
    }
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for GrpcStatusRewrite<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let signal = signal_of_path(request.uri().path());
        let metrics = std::sync::Arc::clone(&self.metrics);
        let future = self.inner.call(request);
        Box::pin(async move {
            let mut response = future.await?;
            let headers = response.headers_mut();
            let has_details = headers.contains_key("grpc-status-details-bin");
            let rewritten = match headers.get("grpc-status").map(HeaderValue::as_bytes) {
                Some(b"11") => Some((tonic::Code::ResourceExhausted, RefusalReason::TooLarge)),
                Some(b"13") => Some((tonic::Code::InvalidArgument, RefusalReason::Malformed)),
                // tonic's own answer to a decompression bomb (ours always carry RetryInfo).
                Some(b"8") if !has_details => {
                    metrics.count_refusal(signal, RefusalReason::TooLarge);
                    None
                }
                _ => None,
            };
            if let Some((code, reason)) = rewritten {
                metrics.count_refusal(signal, reason);
                headers.insert("grpc-status", HeaderValue::from(code as i32));
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn overload_carries_retry_info_and_shutdown_is_unavailable() {
        let status = to_status(IngestError::Overloaded {
            inflight_bytes: 1,
            retry_after: Duration::from_secs(2),
        });
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        let retry = status.get_details_retry_info().expect("retry info present");
        assert_eq!(retry.retry_delay, Some(Duration::from_secs(2)));
        assert_eq!(
            to_status(IngestError::ShuttingDown).code(),
            tonic::Code::Unavailable
        );
    }

    #[test]
    fn grpc_paths_name_their_signal() {
        assert_eq!(
            signal_of_path("/opentelemetry.proto.collector.logs.v1.LogsService/Export"),
            Signal::Logs
        );
        assert_eq!(
            signal_of_path("/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"),
            Signal::Metrics
        );
        assert_eq!(
            signal_of_path("/opentelemetry.proto.collector.trace.v1.TraceService/Export"),
            Signal::Traces
        );
    }
}
