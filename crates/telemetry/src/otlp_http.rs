//! The OTLP/HTTP (`http/protobuf`) span and log exporters: each batch encoded by
//! [`crate::otlp_encode`] straight from the SDK's data, then `POST`ed to the signal's endpoint
//! with reqwest.
//!
//! They do what opentelemetry-otlp's HTTP exporters do around the body: the configured headers,
//! gzip when asked, a per-request timeout, retries of a refused connection and of HTTP 429, 502,
//! 503 and 504 with doubling backoff and jitter (a `Retry-After` in seconds is honoured, up to
//! 30 s), never past the exporter's timeout, and a warning for a partial success. Metrics, a few
//! points a minute, still go through opentelemetry-otlp.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::logs::{LogBatch, LogExporter};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use prost::Message as _;

use crate::config::{OtlpCompression, OtlpConfig, RetryConfig};
use crate::otlp_encode::logs::encode_logs_export;
use crate::otlp_encode::{EncodedResource, encode_export};
use crate::setup::InitError;

/// The longest server-asked delay honoured (`Retry-After`), as opentelemetry-otlp does.
const MAX_THROTTLE: Duration = Duration::from_secs(30);
/// The most of a response body read (a receiver answers with a few bytes).
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;
/// Jitter added to each backoff delay, up to this much.
const MAX_JITTER: Duration = Duration::from_millis(100);

/// Sends span batches to one OTLP/HTTP traces endpoint (see the module docs).
#[derive(Debug)]
pub(crate) struct HttpSpanExporter {
    sender: HttpSender,
    resource: EncodedResource,
}

impl HttpSpanExporter {
    pub(crate) fn new(otlp: &OtlpConfig) -> Result<Self, InitError> {
        Ok(Self {
            sender: HttpSender::new(otlp)?,
            resource: EncodedResource::default(),
        })
    }
}

/// Sends log batches to one OTLP/HTTP logs endpoint (see the module docs).
#[derive(Debug)]
pub(crate) struct HttpLogExporter {
    sender: HttpSender,
    resource: EncodedResource,
}

impl HttpLogExporter {
    pub(crate) fn new(otlp: &OtlpConfig) -> Result<Self, InitError> {
        Ok(Self {
            sender: HttpSender::new(otlp)?,
            resource: EncodedResource::default(),
        })
    }
}

/// One signal's endpoint and what every request to it carries; the exporters' shared half.
#[derive(Debug)]
struct HttpSender {
    client: reqwest::Client,
    endpoint: reqwest::Url,
    /// The configured headers and the content type (and encoding).
    headers: HeaderMap,
    gzip: bool,
    timeout: Duration,
    retry: RetryConfig,
    shut_down: AtomicBool,
}

impl HttpSender {
    fn new(otlp: &OtlpConfig) -> Result<Self, InitError> {
        let endpoint =
            reqwest::Url::parse(&otlp.endpoint).map_err(|error| InitError::Endpoint {
                endpoint: otlp.endpoint.clone(),
                reason: error.to_string(),
            })?;
        let mut headers = HeaderMap::with_capacity(otlp.headers.len() + 2);
        for (name, value) in &otlp.headers {
            let bad = || InitError::HttpHeader { name: name.clone() };
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad())?;
            // `from_bytes`: a value may carry UTF-8 (obs-text), as the configuration allows.
            let value = HeaderValue::from_bytes(value.as_bytes()).map_err(|_| bad())?;
            headers.append(name, value);
        }
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        );
        let gzip = otlp.compression == OtlpCompression::Gzip;
        if gzip {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        let client = reqwest::Client::builder()
            .timeout(otlp.timeout)
            .build()
            .map_err(|error| InitError::Endpoint {
                endpoint: otlp.endpoint.clone(),
                reason: format!("the HTTP client could not be built: {error}"),
            })?;
        Ok(Self {
            client,
            endpoint,
            headers,
            gzip,
            timeout: otlp.timeout,
            retry: otlp.retry,
            shut_down: AtomicBool::new(false),
        })
    }

    /// `plain`, gzipped when the configuration asks.
    fn body(&self, plain: Vec<u8>) -> Result<Bytes, OTelSdkError> {
        if !self.gzip {
            return Ok(Bytes::from(plain));
        }
        let mut encoder = flate2::write::GzEncoder::new(
            Vec::with_capacity(plain.len() / 4),
            flate2::Compression::default(),
        );
        encoder
            .write_all(&plain)
            .and_then(|()| encoder.finish())
            .map(Bytes::from)
            .map_err(|error| OTelSdkError::InternalFailure(format!("gzip failed: {error}")))
    }

    fn check_running(&self) -> OTelSdkResult {
        if self.shut_down.load(Ordering::Acquire) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        Ok(())
    }

    fn shutdown(&self) -> OTelSdkResult {
        if self.shut_down.swap(true, Ordering::AcqRel) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        Ok(())
    }

    /// Sends `body`, retrying as the module docs say; the response body on success.
    async fn send(&self, body: Bytes) -> Result<Bytes, OTelSdkError> {
        self.send_retrying(body)
            .await
            .map_err(OTelSdkError::InternalFailure)
    }

    async fn send_retrying(&self, body: Bytes) -> Result<Bytes, String> {
        let start = Instant::now();
        let mut delay = self.retry.initial_delay;
        let mut delay_cap = self.retry.max_delay;
        let mut attempt = 0;
        loop {
            let failure = match self.send_once(body.clone()).await {
                Ok(response) => return Ok(response),
                Err(failure) => failure,
            };
            let retry = match failure.retry {
                Retry::Never => return Err(failure.message),
                _ if attempt >= self.retry.max_retries => return Err(failure.message),
                retry => retry,
            };
            attempt += 1;
            if let Retry::After(asked) = retry {
                let asked = asked.min(MAX_THROTTLE);
                if asked > delay_cap {
                    delay_cap = MAX_THROTTLE;
                }
                delay = delay.max(asked);
            }
            let sleep = delay.saturating_add(jitter()).min(delay_cap);
            if sleep >= self.timeout.saturating_sub(start.elapsed()) {
                return Err(failure.message);
            }
            tokio::time::sleep(sleep).await;
            delay = delay.saturating_mul(2).min(delay_cap);
        }
    }

    async fn send_once(&self, body: Bytes) -> Result<Bytes, Failure> {
        let mut response = self
            .client
            .post(self.endpoint.clone())
            .headers(self.headers.clone())
            .body(body)
            .send()
            .await
            .map_err(|error| Failure {
                message: network_error(&error),
                retry: Retry::Backoff,
            })?;
        let status = response.status();
        if !status.is_success() {
            let asked = response
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|seconds| Duration::from_secs(seconds.min(600)));
            let retry = match status.as_u16() {
                429 | 503 => asked.map_or(Retry::Backoff, Retry::After),
                502 | 504 => Retry::Backoff,
                _ => Retry::Never,
            };
            return Err(Failure {
                message: format!("HTTP export failed with status code: {}", status.as_u16()),
                retry,
            });
        }
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) if body.len() + chunk.len() > MAX_RESPONSE_BYTES => {
                    return Err(Failure {
                        message: format!(
                            "the receiver's answer is larger than {MAX_RESPONSE_BYTES} bytes"
                        ),
                        retry: Retry::Never,
                    });
                }
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => return Ok(Bytes::from(body)),
                // The spans were taken (2xx); a cut answer loses only the partial-success note.
                Err(_) => return Ok(Bytes::new()),
            }
        }
    }
}

/// Why one attempt failed, and whether another may follow.
struct Failure {
    message: String,
    retry: Retry,
}

#[derive(Debug, Clone, Copy)]
enum Retry {
    Never,
    Backoff,
    /// The receiver asked for this delay (`Retry-After`).
    After(Duration),
}

/// A failed request without an answer: reqwest's error and its causes, on one line.
fn network_error(error: &reqwest::Error) -> String {
    let mut message = String::from("HTTP export failed: network error");
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// Up to [`MAX_JITTER`], from the clock's nanoseconds (no random source is worth a dependency
/// here: it only spreads exporters that failed together).
fn jitter() -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let max_ms = u32::try_from(MAX_JITTER.as_millis()).unwrap_or(u32::MAX);
    Duration::from_millis(u64::from(nanos.wrapping_mul(2_654_435_761) % (max_ms + 1)))
}

/// Warns of spans the receiver took but rejected, as opentelemetry-otlp does.
fn report_rejected_spans(body: &[u8]) {
    let Ok(response) = ExportTraceServiceResponse::decode(body) else {
        return;
    };
    if let Some(partial) = response.partial_success
        && (partial.rejected_spans > 0 || !partial.error_message.is_empty())
    {
        // An export-machinery target: printed with the service's logs, never exported itself.
        tracing::warn!(
            target: "opentelemetry_otlp",
            rejected_spans = partial.rejected_spans,
            error_message = partial.error_message.as_str(),
            "the OTLP receiver took the spans but rejected some"
        );
    }
}

/// Warns of log records the receiver took but rejected, as opentelemetry-otlp does.
fn report_rejected_logs(body: &[u8]) {
    let Ok(response) = ExportLogsServiceResponse::decode(body) else {
        return;
    };
    if let Some(partial) = response.partial_success
        && (partial.rejected_log_records > 0 || !partial.error_message.is_empty())
    {
        tracing::warn!(
            target: "opentelemetry_otlp",
            rejected_log_records = partial.rejected_log_records,
            error_message = partial.error_message.as_str(),
            "the OTLP receiver took the log records but rejected some"
        );
    }
}

impl SpanExporter for HttpSpanExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.sender.check_running()?;
        let body = self.sender.body(encode_export(&batch, &self.resource))?;
        // The span data is no longer needed while the request is in flight.
        drop(batch);
        let response = self.sender.send(body).await?;
        report_rejected_spans(&response);
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        self.sender.shutdown()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = EncodedResource::new(resource);
    }
}

impl LogExporter for HttpLogExporter {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        self.sender.check_running()?;
        let body = self
            .sender
            .body(encode_logs_export(&batch, &self.resource))?;
        let response = self.sender.send(body).await?;
        report_rejected_logs(&response);
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        self.sender.shutdown()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = EncodedResource::new(resource);
    }
}
