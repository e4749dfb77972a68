//! The OTLP clients toward one upstream: gRPC through tonic (the OTLP services' paths, the
//! request body sent as queued, the response decoded by prost) and OTLP/HTTP (protobuf) through
//! reqwest, both over rustls. Each answer is classified as the OTLP specification says:
//! accepted (maybe partially), retryable (with the server's `RetryInfo` / `Retry-After`), or
//! permanent.

use std::marker::PhantomData;
use std::time::{Duration, SystemTime};

use bytes::BufMut;
use http::HeaderValue;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::{MetadataKey, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic_types::StatusExt;

use super::config::{Destination, Protocol};
use crate::self_metrics::Signal;

/// What the upstream did with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// Taken; `rejected` items were refused for good (OTLP partial success).
    Accepted { rejected: u64, message: String },
    /// Not taken, try again (after `after` if the server said so).
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    /// Not taken and never will be (a malformed or unauthorized request).
    Permanent { reason: String },
}

/// Why a client could not be built (a bad endpoint, certificate or header): a start-up error.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("export destination {destination}: {message}")]
    Invalid {
        destination: String,
        message: String,
    },
}

/// A client for one destination. Cheap to clone.
#[derive(Debug, Clone)]
pub struct UpstreamClient {
    name: String,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Grpc {
        channel: Channel,
        headers: Vec<(
            MetadataKey<tonic::metadata::Ascii>,
            MetadataValue<tonic::metadata::Ascii>,
        )>,
        gzip: bool,
    },
    Http {
        client: reqwest::Client,
        /// The URL of each signal: traces, logs, metrics.
        urls: [String; 3],
        gzip: bool,
    },
}

fn read_file(
    destination: &Destination,
    what: &str,
    path: &std::path::Path,
) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|err| ClientError::Invalid {
        destination: destination.name.clone(),
        message: format!("could not read the {what} {}: {err}", path.display()),
    })
}

impl UpstreamClient {
    /// Builds the client; connections are made lazily, so an upstream that is down is no error.
    pub fn new(destination: &Destination) -> Result<Self, ClientError> {
        let invalid = |message: String| ClientError::Invalid {
            destination: destination.name.clone(),
            message,
        };
        let ca = match &destination.tls.ca_file {
            Some(path) => Some(read_file(destination, "CA certificate", path)?),
            None => None,
        };
        let identity = match (&destination.tls.client_cert, &destination.tls.client_key) {
            (Some(cert), Some(key)) => Some((
                read_file(destination, "client certificate", cert)?,
                read_file(destination, "client key", key)?,
            )),
            (None, None) => None,
            _ => {
                return Err(invalid(
                    "a client certificate needs both the certificate and the key".into(),
                ));
            }
        };
        let kind = match destination.protocol {
            Protocol::Grpc { tls } => {
                let scheme = if tls { "https" } else { "http" };
                let uri = format!("{scheme}://{}", destination.authority);
                let mut endpoint = Endpoint::from_shared(uri.clone())
                    .map_err(|err| invalid(format!("{uri} is not a valid endpoint: {err}")))?
                    .timeout(destination.timeout)
                    .connect_timeout(destination.timeout)
                    .tcp_nodelay(true);
                if tls {
                    let mut config = ClientTlsConfig::new().with_native_roots();
                    if let Some(ca) = ca {
                        config = config.ca_certificate(Certificate::from_pem(ca));
                    }
                    if let Some((cert, key)) = identity {
                        config = config.identity(Identity::from_pem(cert, key));
                    }
                    endpoint = endpoint
                        .tls_config(config)
                        .map_err(|err| invalid(format!("TLS settings: {err}")))?;
                }
                let mut headers = Vec::new();
                for (k, v) in &destination.headers {
                    let key = MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes())
                        .map_err(|_| invalid(format!("header name {k:?} is not valid")))?;
                    let value = MetadataValue::try_from(v.as_str())
                        .map_err(|_| invalid(format!("the value of header {k:?} is not valid")))?;
                    headers.push((key, value));
                }
                Kind::Grpc {
                    channel: endpoint.connect_lazy(),
                    headers,
                    gzip: destination.gzip,
                }
            }
            Protocol::Http { .. } => {
                let mut builder = reqwest::Client::builder()
                    .timeout(destination.timeout)
                    .connect_timeout(destination.timeout)
                    .tcp_nodelay(true);
                if let Some(ca) = ca {
                    let certs = reqwest::Certificate::from_pem_bundle(&ca)
                        .map_err(|err| invalid(format!("CA certificate: {err}")))?;
                    builder = builder.tls_certs_merge(certs);
                }
                if let Some((mut cert, key)) = identity {
                    cert.extend_from_slice(&key);
                    let identity = reqwest::Identity::from_pem(&cert)
                        .map_err(|err| invalid(format!("client certificate: {err}")))?;
                    builder = builder.identity(identity);
                }
                let mut headers = http::HeaderMap::new();
                for (k, v) in &destination.headers {
                    let name = http::HeaderName::from_bytes(k.as_bytes())
                        .map_err(|_| invalid(format!("header name {k:?} is not valid")))?;
                    let value = HeaderValue::from_str(v)
                        .map_err(|_| invalid(format!("the value of header {k:?} is not valid")))?;
                    headers.insert(name, value);
                }
                let client = builder
                    .default_headers(headers)
                    .build()
                    .map_err(|err| invalid(format!("HTTP client: {err}")))?;
                let url = |signal| destination.http_url(signal).unwrap_or_default();
                Kind::Http {
                    client,
                    urls: [url(Signal::Traces), url(Signal::Logs), url(Signal::Metrics)],
                    gzip: destination.gzip,
                }
            }
        };
        Ok(Self {
            name: destination.name.clone(),
            kind,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sends one OTLP request body of `signal` and classifies the answer.
    pub async fn send(&self, signal: Signal, body: Vec<u8>) -> SendOutcome {
        match &self.kind {
            Kind::Grpc {
                channel,
                headers,
                gzip,
            } => send_grpc(channel.clone(), headers, *gzip, signal, body).await,
            Kind::Http { client, urls, gzip } => {
                let url = match signal {
                    Signal::Traces => &urls[0],
                    Signal::Logs => &urls[1],
                    Signal::Metrics => &urls[2],
                };
                send_http(client, url, *gzip, signal, body).await
            }
        }
    }
}

/// Sends a protobuf body as it is, decodes the answer as `R`.
struct RawCodec<R>(PhantomData<R>);

struct RawEncoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        dst.put_slice(&item);
        Ok(())
    }
}

struct MessageDecoder<R>(PhantomData<R>);

impl<R: Message + Default> Decoder for MessageDecoder<R> {
    type Item = R;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<R>, Self::Error> {
        R::decode(src)
            .map(Some)
            .map_err(|err| tonic::Status::internal(format!("undecodable response: {err}")))
    }
}

impl<R: Message + Default + Send + 'static> Codec for RawCodec<R> {
    type Encode = Vec<u8>;
    type Decode = R;
    type Encoder = RawEncoder;
    type Decoder = MessageDecoder<R>;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> MessageDecoder<R> {
        MessageDecoder(PhantomData)
    }
}

/// The partial success of an OTLP response: (rejected items, message).
trait PartialSuccess: Message + Default + Send + 'static {
    fn rejected(&self) -> (u64, String);
}

impl PartialSuccess for ExportTraceServiceResponse {
    fn rejected(&self) -> (u64, String) {
        self.partial_success
            .as_ref()
            .map_or((0, String::new()), |p| {
                (p.rejected_spans.max(0) as u64, p.error_message.clone())
            })
    }
}

impl PartialSuccess for ExportLogsServiceResponse {
    fn rejected(&self) -> (u64, String) {
        self.partial_success
            .as_ref()
            .map_or((0, String::new()), |p| {
                (
                    p.rejected_log_records.max(0) as u64,
                    p.error_message.clone(),
                )
            })
    }
}

impl PartialSuccess for ExportMetricsServiceResponse {
    fn rejected(&self) -> (u64, String) {
        self.partial_success
            .as_ref()
            .map_or((0, String::new()), |p| {
                (
                    p.rejected_data_points.max(0) as u64,
                    p.error_message.clone(),
                )
            })
    }
}

async fn send_grpc(
    channel: Channel,
    headers: &[(
        MetadataKey<tonic::metadata::Ascii>,
        MetadataValue<tonic::metadata::Ascii>,
    )],
    gzip: bool,
    signal: Signal,
    body: Vec<u8>,
) -> SendOutcome {
    match signal {
        Signal::Traces => {
            grpc_unary::<ExportTraceServiceResponse>(
                channel,
                headers,
                gzip,
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                body,
            )
            .await
        }
        Signal::Logs => {
            grpc_unary::<ExportLogsServiceResponse>(
                channel,
                headers,
                gzip,
                "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
                body,
            )
            .await
        }
        Signal::Metrics => {
            grpc_unary::<ExportMetricsServiceResponse>(
                channel,
                headers,
                gzip,
                "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
                body,
            )
            .await
        }
    }
}

async fn grpc_unary<R: PartialSuccess>(
    channel: Channel,
    headers: &[(
        MetadataKey<tonic::metadata::Ascii>,
        MetadataValue<tonic::metadata::Ascii>,
    )],
    gzip: bool,
    path: &'static str,
    body: Vec<u8>,
) -> SendOutcome {
    let mut grpc = tonic::client::Grpc::new(channel);
    if gzip {
        grpc = grpc.send_compressed(CompressionEncoding::Gzip);
    }
    grpc = grpc.accept_compressed(CompressionEncoding::Gzip);
    if let Err(err) = grpc.ready().await {
        return SendOutcome::Retry {
            after: None,
            reason: format!("could not connect: {err}"),
        };
    }
    let mut request = tonic::Request::new(body);
    for (k, v) in headers {
        request.metadata_mut().insert(k.clone(), v.clone());
    }
    let path = http::uri::PathAndQuery::from_static(path);
    match grpc.unary(request, path, RawCodec::<R>(PhantomData)).await {
        Ok(response) => {
            let (rejected, message) = response.get_ref().rejected();
            SendOutcome::Accepted { rejected, message }
        }
        Err(status) => classify_status(&status),
    }
}

/// OTLP/gRPC: retryable codes are retried (RESOURCE_EXHAUSTED only with RetryInfo), the rest
/// are final.
pub(crate) fn classify_status(status: &tonic::Status) -> SendOutcome {
    use tonic::Code;
    let reason = format!("{:?}: {}", status.code(), status.message());
    let after = status.get_details_retry_info().and_then(|r| r.retry_delay);
    match status.code() {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => SendOutcome::Retry { after, reason },
        Code::ResourceExhausted if after.is_some() => SendOutcome::Retry { after, reason },
        // A transport failure (connection reset, refused) comes back as Unknown with a source.
        Code::Unknown if std::error::Error::source(status).is_some() => {
            SendOutcome::Retry { after, reason }
        }
        _ => SendOutcome::Permanent { reason },
    }
}

async fn send_http(
    client: &reqwest::Client,
    url: &str,
    gzip: bool,
    signal: Signal,
    body: Vec<u8>,
) -> SendOutcome {
    let mut request = client
        .post(url)
        .header(http::header::CONTENT_TYPE, "application/x-protobuf");
    let body = if gzip {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        if std::io::Write::write_all(&mut encoder, &body).is_err() {
            return SendOutcome::Permanent {
                reason: "could not gzip the body".into(),
            };
        }
        request = request.header(http::header::CONTENT_ENCODING, "gzip");
        encoder.finish().unwrap_or_default()
    } else {
        body
    };
    let response = match request.body(body).send().await {
        Ok(response) => response,
        Err(err) => {
            return SendOutcome::Retry {
                after: None,
                reason: format!("{url}: {err}"),
            };
        }
    };
    let status = response.status();
    let after = response
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let bytes = response.bytes().await.unwrap_or_default();
    if status.is_success() {
        let (rejected, message) = match signal {
            Signal::Traces => ExportTraceServiceResponse::decode(bytes).map(|r| r.rejected()),
            Signal::Logs => ExportLogsServiceResponse::decode(bytes).map(|r| r.rejected()),
            Signal::Metrics => ExportMetricsServiceResponse::decode(bytes).map(|r| r.rejected()),
        }
        .unwrap_or_default();
        return SendOutcome::Accepted { rejected, message };
    }
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(256)]).into_owned();
    let reason = format!("{url}: HTTP {status}: {text}");
    match status.as_u16() {
        429 | 502 | 503 | 504 => SendOutcome::Retry { after, reason },
        _ => SendOutcome::Permanent { reason },
    }
}

/// `Retry-After`: delay-seconds or an HTTP-date.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::ErrorDetails;

    #[test]
    fn resource_exhausted_is_retried_only_with_retry_info() {
        let with = tonic::Status::with_error_details(
            tonic::Code::ResourceExhausted,
            "slow down",
            ErrorDetails::with_retry_info(Some(Duration::from_secs(3))),
        );
        assert_eq!(
            classify_status(&with),
            SendOutcome::Retry {
                after: Some(Duration::from_secs(3)),
                reason: "ResourceExhausted: slow down".into()
            }
        );
        let without = tonic::Status::resource_exhausted("full");
        assert!(matches!(
            classify_status(&without),
            SendOutcome::Permanent { .. }
        ));
        assert!(matches!(
            classify_status(&tonic::Status::invalid_argument("bad")),
            SendOutcome::Permanent { .. }
        ));
        assert!(matches!(
            classify_status(&tonic::Status::unavailable("down")),
            SendOutcome::Retry { after: None, .. }
        ));
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(30));
        let parsed = parse_retry_after(&later).expect("a date");
        assert!(parsed > Duration::from_secs(25) && parsed <= Duration::from_secs(30));
        assert_eq!(parse_retry_after("soon"), None);
    }
}
