//! The OTLP/HTTP receiver: `/v1/traces`, `/v1/logs` and `/v1/metrics` in binary protobuf or
//! OTLP/JSON, optionally gzip-compressed, with the answers the OTLP specification gives each
//! outcome (the error body is a `google.rpc.Status` in the request's own encoding).

use std::future::Future;
use std::io::Read;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;
use serde::Serialize;
use serde::de::DeserializeOwned;
use throughline_store::{
    EncodedTraces, ExportLogsServiceRequest, ExportMetricsServiceRequest, ExportTraceServiceRequest,
};

use crate::ingest::{Ingest, IngestError, Reservation};
use crate::self_metrics::{RefusalReason, Signal};

/// Bodies smaller than this are decoded on the runtime worker; larger ones on the blocking pool.
const INLINE_DECODE_BYTES: usize = 256 * 1024;

/// The OTLP/HTTP routes, sharing one [`Ingest`].
pub fn router(ingest: Ingest) -> Router {
    Router::new()
        .route("/v1/traces", post(export::<Traces>))
        .route("/v1/logs", post(export::<Logs>))
        .route("/v1/metrics", post(export::<Metrics>))
        .with_state(ingest)
}

/// The two OTLP/HTTP encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// One OTLP signal as the HTTP receiver handles it.
trait HttpSignal: Send + 'static {
    const SIGNAL: Signal;
    /// What the body becomes before it is exported.
    type Decoded: Send + 'static;
    type Response: Message + Serialize + Send;
    /// Decodes a plain (not compressed) body; `in_place` when the ingest takes a binary trace
    /// export read in place.
    fn decode(
        plain: bytes::Bytes,
        encoding: Encoding,
        in_place: bool,
    ) -> Result<Self::Decoded, DecodeError>;
    fn export(
        ingest: &Ingest,
        decoded: Self::Decoded,
        reservation: Reservation,
    ) -> impl Future<Output = Result<Self::Response, IngestError>> + Send;
}

/// A trace export as the HTTP receiver passes it on.
enum TraceExport {
    Decoded(ExportTraceServiceRequest),
    /// Binary, read in place ([`Ingest::export_encoded_traces`]).
    InPlace(EncodedTraces),
}

struct Traces;
struct Logs;
struct Metrics;

impl HttpSignal for Traces {
    const SIGNAL: Signal = Signal::Traces;
    type Decoded = TraceExport;
    type Response = ExportTraceServiceResponse;
    fn decode(
        plain: bytes::Bytes,
        encoding: Encoding,
        in_place: bool,
    ) -> Result<TraceExport, DecodeError> {
        if in_place && encoding == Encoding::Protobuf {
            return EncodedTraces::decode(plain)
                .map(TraceExport::InPlace)
                .map_err(|err| DecodeError::Protobuf {
                    signal: Self::SIGNAL.as_str(),
                    message: err.to_string(),
                });
        }
        decode_message(plain, encoding, Self::SIGNAL).map(TraceExport::Decoded)
    }
    async fn export(
        ingest: &Ingest,
        decoded: TraceExport,
        reservation: Reservation,
    ) -> Result<Self::Response, IngestError> {
        let report = match decoded {
            TraceExport::Decoded(request) => ingest.export_traces(request, reservation).await?,
            TraceExport::InPlace(traces) => {
                ingest.export_encoded_traces(traces, reservation).await?
            }
        };
        let partial_success = (report.rejected_spans > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: i64::try_from(report.rejected_spans).unwrap_or(i64::MAX),
            error_message: report.rejection_reason,
        });
        Ok(ExportTraceServiceResponse { partial_success })
    }
}

impl HttpSignal for Logs {
    const SIGNAL: Signal = Signal::Logs;
    type Decoded = ExportLogsServiceRequest;
    fn decode(
        plain: bytes::Bytes,
        encoding: Encoding,
        _in_place: bool,
    ) -> Result<Self::Decoded, DecodeError> {
        decode_message(plain, encoding, Self::SIGNAL)
    }
    type Response = ExportLogsServiceResponse;
    async fn export(
        ingest: &Ingest,
        request: Self::Decoded,
        reservation: Reservation,
    ) -> Result<Self::Response, IngestError> {
        ingest.export_logs(request, reservation).await?;
        Ok(ExportLogsServiceResponse {
            partial_success: None,
        })
    }
}

impl HttpSignal for Metrics {
    const SIGNAL: Signal = Signal::Metrics;
    type Decoded = ExportMetricsServiceRequest;
    fn decode(
        plain: bytes::Bytes,
        encoding: Encoding,
        _in_place: bool,
    ) -> Result<Self::Decoded, DecodeError> {
        decode_message(plain, encoding, Self::SIGNAL)
    }
    type Response = ExportMetricsServiceResponse;
    async fn export(
        ingest: &Ingest,
        request: Self::Decoded,
        reservation: Reservation,
    ) -> Result<Self::Response, IngestError> {
        ingest.export_metrics(request, reservation).await?;
        Ok(ExportMetricsServiceResponse {
            partial_success: None,
        })
    }
}

/// A refusal: the HTTP status, the `google.rpc.Code` for the body, and a message.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    grpc_code: tonic::Code,
    message: String,
    retry_after_secs: Option<u64>,
}

impl Refusal {
    fn new(status: StatusCode, grpc_code: tonic::Code, message: impl Into<String>) -> Self {
        Self {
            status,
            grpc_code,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    fn into_response(self, encoding: Encoding) -> Response {
        let status = tonic_types::Status {
            code: self.grpc_code as i32,
            message: self.message,
            details: Vec::new(),
        };
        let body = match encoding {
            Encoding::Protobuf => status.encode_to_vec(),
            Encoding::Json => serde_json::json!({ "code": status.code, "message": status.message })
                .to_string()
                .into_bytes(),
        };
        let mut response = (self.status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(encoding.content_type()),
        );
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

fn ingest_refusal(err: IngestError) -> Refusal {
    match err {
        IngestError::Overloaded { retry_after, .. }
        | IngestError::QueueFull { retry_after, .. } => Refusal {
            retry_after_secs: Some(retry_after.as_secs().max(1)),
            ..Refusal::new(
                StatusCode::TOO_MANY_REQUESTS,
                tonic::Code::ResourceExhausted,
                err.to_string(),
            )
        },
        IngestError::ShuttingDown => Refusal {
            retry_after_secs: Some(1),
            ..Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                tonic::Code::Unavailable,
                err.to_string(),
            )
        },
        IngestError::Store(_) | IngestError::WriterGone | IngestError::Queue(_) => Refusal {
            retry_after_secs: Some(1),
            ..Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                tonic::Code::Unavailable,
                err.to_string(),
            )
        },
    }
}

/// The encoding named by `Content-Type`, ignoring parameters such as `charset`.
fn encoding_of(headers: &HeaderMap) -> Result<Encoding, String> {
    let value = headers.get(header::CONTENT_TYPE).ok_or_else(|| {
        "Content-Type is missing (want application/x-protobuf or application/json)".to_owned()
    })?;
    let value = value
        .to_str()
        .map_err(|_| "Content-Type is not text".to_owned())?;
    let media = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(Encoding::Protobuf),
        "application/json" => Ok(Encoding::Json),
        other => Err(format!(
            "Content-Type {other:?} is not supported (want application/x-protobuf or application/json)"
        )),
    }
}

/// Whether the body is gzip; `Err` names an unsupported `Content-Encoding`.
fn is_gzip(headers: &HeaderMap) -> Result<bool, String> {
    match headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().map(str::trim))
    {
        None => Ok(false),
        Some(Ok(v)) if v.eq_ignore_ascii_case("gzip") => Ok(true),
        Some(Ok(v)) if v.eq_ignore_ascii_case("identity") || v.is_empty() => Ok(false),
        Some(Ok(v)) => Err(format!(
            "Content-Encoding {v:?} is not supported (want gzip or none)"
        )),
        Some(Err(_)) => Err("Content-Encoding is not text".to_owned()),
    }
}

/// Why a body could not become a request.
#[derive(Debug, thiserror::Error)]
enum DecodeError {
    #[error("the request body is over the limit of {limit} bytes{after}")]
    TooLarge { limit: usize, after: &'static str },
    #[error("the gzip request body is not valid gzip: {0}")]
    Gzip(std::io::Error),
    #[error("the {signal} request is not valid OTLP protobuf: {message}")]
    Protobuf {
        signal: &'static str,
        message: String,
    },
    #[error("the {signal} request is not valid OTLP/JSON: {message}")]
    Json {
        signal: &'static str,
        message: String,
    },
}

/// Gunzips (bounded by `limit`, so a gzip bomb stops at the limit) and decodes.
fn decode_body<S: HttpSignal>(
    body: bytes::Bytes,
    gzip: bool,
    encoding: Encoding,
    limit: usize,
    in_place: bool,
) -> Result<S::Decoded, DecodeError> {
    let plain: bytes::Bytes = if gzip {
        let mut out = Vec::new();
        let mut reader = flate2::read::GzDecoder::new(&body[..]).take(limit as u64 + 1);
        reader.read_to_end(&mut out).map_err(DecodeError::Gzip)?;
        if out.len() > limit {
            return Err(DecodeError::TooLarge {
                limit,
                after: " after decompression",
            });
        }
        out.into()
    } else {
        body
    };
    S::decode(plain, encoding, in_place)
}

/// Decodes a plain body into the signal's request.
fn decode_message<T: Message + Default + DeserializeOwned>(
    plain: bytes::Bytes,
    encoding: Encoding,
    signal: Signal,
) -> Result<T, DecodeError> {
    match encoding {
        Encoding::Protobuf => T::decode(plain).map_err(|err| DecodeError::Protobuf {
            signal: signal.as_str(),
            message: err.to_string(),
        }),
        Encoding::Json => serde_json::from_slice(&plain).map_err(|err| DecodeError::Json {
            signal: signal.as_str(),
            message: err.to_string(),
        }),
    }
}

fn encode_response<T: Message + Serialize>(response: &T, encoding: Encoding) -> Response {
    let body = match encoding {
        Encoding::Protobuf => response.encode_to_vec(),
        // Serialising a generated message to JSON cannot fail: a response holds no maps with
        // non-string keys. An absent `partialSuccess` is left out (`{}`), as other collectors
        // answer, rather than written as null.
        Encoding::Json => {
            let mut value = serde_json::to_value(response).unwrap_or_default();
            if let Some(object) = value.as_object_mut() {
                object.retain(|_, v| !v.is_null());
            }
            value.to_string().into_bytes()
        }
    };
    let mut out = (StatusCode::OK, body).into_response();
    out.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(encoding.content_type()),
    );
    out
}

async fn export<S: HttpSignal>(
    State(ingest): State<Ingest>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let encoding = match encoding_of(&headers) {
        Ok(encoding) => encoding,
        Err(message) => {
            ingest.refuse(S::SIGNAL, RefusalReason::UnsupportedMediaType);
            return Refusal::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                tonic::Code::InvalidArgument,
                message,
            )
            .into_response(Encoding::Json);
        }
    };
    match handle::<S>(&ingest, &headers, body, encoding).await {
        Ok(response) => encode_response(&response, encoding),
        Err((reason, refusal)) => {
            if let Some(reason) = reason {
                ingest.refuse(S::SIGNAL, reason);
            }
            refusal.into_response(encoding)
        }
    }
}

/// The export itself; the refusal reason is `None` where [`Ingest`] already counted it.
async fn handle<S: HttpSignal>(
    ingest: &Ingest,
    headers: &HeaderMap,
    body: Body,
    encoding: Encoding,
) -> Result<S::Response, (Option<RefusalReason>, Refusal)> {
    if ingest.is_shutting_down() {
        ingest.refuse(S::SIGNAL, RefusalReason::ShuttingDown);
        return Err((None, ingest_refusal(IngestError::ShuttingDown)));
    }
    let gzip = is_gzip(headers).map_err(|message| {
        (
            Some(RefusalReason::UnsupportedMediaType),
            Refusal::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                tonic::Code::InvalidArgument,
                message,
            ),
        )
    })?;
    let limit = ingest.limits().max_body_bytes;
    let too_large = |after| {
        (
            Some(RefusalReason::TooLarge),
            Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                tonic::Code::ResourceExhausted,
                DecodeError::TooLarge { limit, after }.to_string(),
            ),
        )
    };
    let body = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) if err.downcast_ref::<LengthLimitError>().is_some() => return Err(too_large("")),
        Err(err) => {
            return Err((
                Some(RefusalReason::Timeout),
                Refusal::new(
                    StatusCode::REQUEST_TIMEOUT,
                    tonic::Code::DeadlineExceeded,
                    format!("the request body did not arrive whole: {err}"),
                ),
            ));
        }
    };
    // Admission is checked on the bytes received; a gzip body holds its share while it inflates.
    let reservation = ingest
        .reserve(S::SIGNAL, body.len() as u64)
        .map_err(|e| (None, ingest_refusal(e)))?;
    let signal = S::SIGNAL;
    let in_place = ingest.reads_traces_in_place();
    let decoded = if body.len() <= INLINE_DECODE_BYTES && !gzip {
        decode_body::<S>(body, gzip, encoding, limit, in_place)
    } else {
        tokio::task::spawn_blocking(move || decode_body::<S>(body, gzip, encoding, limit, in_place))
            .await
            .unwrap_or_else(|_| {
                Err(DecodeError::Protobuf {
                    signal: signal.as_str(),
                    message: "decoder stopped".into(),
                })
            })
    };
    let request = decoded.map_err(|err| match err {
        DecodeError::TooLarge { after, .. } => too_large(after),
        other => (
            Some(RefusalReason::Malformed),
            Refusal::new(
                StatusCode::BAD_REQUEST,
                tonic::Code::InvalidArgument,
                other.to_string(),
            ),
        ),
    })?;
    S::export(ingest, request, reservation)
        .await
        .map_err(|e| (None, ingest_refusal(e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    #[tokio::test]
    async fn over_the_memory_bound_answers_429_with_retry_after() {
        let ingest = crate::ingest::tests::ingest(10);
        let _held = ingest.reserve(Signal::Traces, 9).expect("first admitted");
        // One empty ResourceSpans: two bytes, enough to go over 10 with 9 held.
        let request = http::Request::post("/v1/traces")
            .header("content-type", "application/x-protobuf")
            .body(Body::from(vec![0x0a, 0x00]))
            .expect("a request");
        let response = router(ingest.clone())
            .oneshot(request)
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let status = tonic_types::Status::decode(body).expect("a google.rpc.Status");
        assert_eq!(status.code, tonic::Code::ResourceExhausted as i32);
    }

    #[test]
    fn content_types_with_parameters_are_understood() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        assert_eq!(encoding_of(&headers), Ok(Encoding::Json));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml"),
        );
        assert!(encoding_of(&headers).is_err());
        assert!(encoding_of(&HeaderMap::new()).is_err());
    }
}
