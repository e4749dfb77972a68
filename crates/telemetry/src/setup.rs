//! The one call that builds the tracer provider, logger provider and propagator from a
//! [`TelemetryConfig`], and the guard that flushes and shuts them down.

use std::collections::HashMap;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::logs::{BatchLogProcessor, LogProcessor as _, SdkLoggerProvider};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider, SpanExporter,
    SpanProcessor as _,
};
use throughline_propagation::Propagators;
use tokio::runtime::Handle;

use crate::config::{
    BatchConfig, ExporterKind, OtlpCompression, OtlpConfig, OtlpProtocol, SamplerConfig,
    TelemetryConfig,
};
use crate::diagnosis::ExportTarget;
use crate::export_runtime::{ExportRuntime, OnExportRuntime};
use crate::fan_out::{AnySpanExporter, FanOutSpanExporter};
use crate::invocation::InvocationSpanProcessor;
use crate::otlp_http::{HttpLogExporter, HttpSpanExporter};
use crate::processors::{SharedLogProcessor, SharedSpanProcessor, SpanStamp, StampFn};
use crate::propagators::build_propagator;
use crate::resource::{ProcessFacts, ServiceDefaults, detect};

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// The export runtime's thread could not be started.
    #[error("could not start the telemetry export runtime")]
    Runtime(#[source] std::io::Error),
    /// The OTLP exporter rejected its settings.
    #[error("the OTLP {signal} exporter for {endpoint} could not be built")]
    Exporter {
        signal: &'static str,
        endpoint: String,
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },
    /// A header from `OTEL_EXPORTER_OTLP_*HEADERS` cannot be sent as gRPC metadata (gRPC allows
    /// only visible ASCII in text metadata).
    #[error("OTEL_EXPORTER_OTLP_HEADERS: header {name:?} cannot be sent as gRPC metadata")]
    GrpcHeader { name: String },
    /// A header from `OTEL_EXPORTER_OTLP_*HEADERS` is not a valid HTTP header (a name with
    /// spaces or separators, a value with control characters).
    #[error("OTEL_EXPORTER_OTLP_HEADERS: header {name:?} is not a valid HTTP header")]
    HttpHeader { name: String },
    /// The OTLP/HTTP span exporter cannot send to its endpoint.
    #[error("the OTLP traces exporter cannot send to {endpoint}: {reason}")]
    Endpoint { endpoint: String, reason: String },
    /// The log filter (`RUST_LOG`) does not parse.
    #[error("RUST_LOG: {value:?} is not a valid log filter")]
    LogFilter {
        value: String,
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// A global tracing subscriber was already installed.
    #[error("a global tracing subscriber is already installed")]
    SubscriberAlreadySet,
}

/// What a flush achieved within its time bound.
#[derive(Debug)]
pub enum FlushOutcome {
    /// Every finished span (and log record) was handed to the exporter, which reported success.
    Exported,
    /// The bound passed before the export finished; the export goes on in the background.
    TimedOut,
    /// The exporter reported an error.
    Failed(OTelSdkError),
}

impl std::fmt::Display for FlushOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FlushOutcome::Exported => f.write_str("exported"),
            FlushOutcome::TimedOut => f.write_str("the export did not finish in time"),
            FlushOutcome::Failed(err) => write!(f, "the export failed: {err}"),
        }
    }
}

impl FlushOutcome {
    /// `true` for [`FlushOutcome::Exported`].
    pub fn is_exported(&self) -> bool {
        matches!(self, FlushOutcome::Exported)
    }

    /// The first failure of the two, or `Exported` when both exported.
    fn and(self, other: FlushOutcome) -> Self {
        match self {
            FlushOutcome::Exported => other,
            failed => failed,
        }
    }

    fn from_result(result: OTelSdkResult) -> Self {
        Self::from_results([result, Ok(())])
    }

    fn from_results(results: [OTelSdkResult; 2]) -> Self {
        for result in results {
            match result {
                Ok(()) => {}
                Err(OTelSdkError::Timeout(_)) => return FlushOutcome::TimedOut,
                Err(err) => return FlushOutcome::Failed(err),
            }
        }
        FlushOutcome::Exported
    }
}

type PipelineFactory =
    Box<dyn FnOnce(&Handle, &BatchConfig, &Resource, SpanDelivery) -> SpanPipeline + Send>;

/// When finished spans leave the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SpanDelivery {
    /// The SDK's batch processor: on its timer, when a batch fills, and on flush.
    Batched,
    /// Only on [`Telemetry::flush`]: the Lambda pipeline (see [`TelemetryBuilder::export_on_flush`]).
    OnFlush,
}

/// The span processor the guard holds beside the provider, to flush and shut it down.
#[derive(Debug, Clone)]
enum SpanPipeline {
    Batch(Arc<BatchSpanProcessor>),
    OnFlush(Arc<InvocationSpanProcessor>),
}

impl SpanPipeline {
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        match self {
            SpanPipeline::Batch(p) => p.shutdown_with_timeout(timeout),
            SpanPipeline::OnFlush(p) => p.shutdown_with_timeout(timeout),
        }
    }
}

/// Builds a [`Telemetry`] from a validated configuration.
pub struct TelemetryBuilder {
    config: TelemetryConfig,
    defaults: ServiceDefaults,
    facts: Option<ProcessFacts>,
    span_exporter: Option<PipelineFactory>,
    delivery: SpanDelivery,
    metric_interval: Duration,
    stamp: Option<StampFn>,
}

/// The metric export interval when neither `OTEL_METRIC_EXPORT_INTERVAL` nor
/// [`TelemetryBuilder::default_metric_export_interval`] sets one (the specification's 60 s).
const DEFAULT_METRIC_INTERVAL: Duration = Duration::from_secs(60);

impl std::fmt::Debug for TelemetryBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryBuilder")
            .field("config", &self.config)
            .field("defaults", &self.defaults)
            .field("custom_span_exporter", &self.span_exporter.is_some())
            .field("delivery", &self.delivery)
            .finish()
    }
}

impl TelemetryBuilder {
    /// Starts from a configuration, usually `TelemetryConfig::from_env(std::env::vars())?`.
    pub fn new(config: TelemetryConfig) -> Self {
        Self {
            config,
            defaults: ServiceDefaults::default(),
            facts: None,
            span_exporter: None,
            delivery: SpanDelivery::Batched,
            metric_interval: DEFAULT_METRIC_INTERVAL,
            stamp: None,
        }
    }

    /// How often metrics are exported when `OTEL_METRIC_EXPORT_INTERVAL` is not set (else 60 s).
    pub fn default_metric_export_interval(mut self, interval: Duration) -> Self {
        self.metric_interval = interval;
        self
    }

    /// The service's own name, used when neither `OTEL_SERVICE_NAME` nor `service.name` in
    /// `OTEL_RESOURCE_ATTRIBUTES` is set.
    pub fn default_service_name(mut self, name: impl Into<String>) -> Self {
        self.defaults.name = Some(name.into());
        self
    }

    /// The service's version (`service.version`), unless `OTEL_RESOURCE_ATTRIBUTES` sets one.
    pub fn default_service_version(mut self, version: impl Into<String>) -> Self {
        self.defaults.version = Some(version.into());
        self
    }

    /// The service's namespace (`service.namespace`), unless `OTEL_RESOURCE_ATTRIBUTES` sets one.
    pub fn default_service_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.defaults.namespace = Some(namespace.into());
        self
    }

    /// Uses these process and host facts instead of reading them from this process (tests).
    pub fn process_facts(mut self, facts: ProcessFacts) -> Self {
        self.facts = Some(facts);
        self
    }

    /// Replaces the exporter `OTEL_TRACES_EXPORTER` chose (tests, benchmarks). It still runs
    /// behind the processor configured by `OTEL_BSP_*` (and [`Self::export_on_flush`]), on the
    /// export runtime.
    pub fn span_exporter<E: SpanExporter + 'static>(mut self, exporter: E) -> Self {
        self.span_exporter = Some(Box::new(move |handle, batch, resource, delivery| {
            span_pipeline(exporter, handle, batch, resource, delivery, None)
        }));
        self
    }

    /// Holds finished spans in memory and exports them only when [`Telemetry::flush`] (or
    /// [`Telemetry::flush_async`]) is called, in one request per `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`
    /// spans, straight from the export runtime. This is the pipeline for AWS Lambda, where the
    /// environment is frozen between invocations: flush before each invocation returns. No
    /// background thread and no timer; `OTEL_BSP_SCHEDULE_DELAY` does not apply, and at most
    /// `OTEL_BSP_MAX_QUEUE_SIZE` spans wait between flushes.
    pub fn export_on_flush(mut self) -> Self {
        self.delivery = SpanDelivery::OnFlush;
        self
    }

    /// Puts the attributes `stamp` returns on every span as it starts (called once per span:
    /// keep it cheap), e.g. the phase of a demo that changes while the service runs.
    pub fn stamp_spans(
        mut self,
        stamp: impl Fn() -> Vec<opentelemetry::KeyValue> + Send + Sync + 'static,
    ) -> Self {
        self.stamp = Some(Arc::new(stamp));
        self
    }

    /// Builds providers and propagator. Installs nothing global: see [`Telemetry::install_global`].
    pub fn build(self) -> Result<Telemetry, InitError> {
        let runtime = ExportRuntime::new().map_err(InitError::Runtime)?;
        let handle = runtime.handle();
        let config = self.config;
        let propagator = build_propagator(&config);
        let facts = self
            .facts
            .unwrap_or_else(|| ProcessFacts::current(&config.env));
        let resource = detect(&config, &self.defaults, &facts);

        let meter_provider = match (&config.metrics_exporter, config.sdk_disabled) {
            (ExporterKind::Otlp(otlp), false) => {
                let interval = config
                    .metric_export_interval
                    .unwrap_or(self.metric_interval);
                Some(meter_provider(
                    otlp,
                    config.metric_temporality_delta,
                    interval,
                    &handle,
                    &resource,
                )?)
            }
            _ => None,
        };
        let mut span_processor = None;
        let mut log_processor = None;
        let (tracer_provider, logger_provider) = if config.sdk_disabled {
            (None, None)
        } else {
            let mut builder = SdkTracerProvider::builder()
                .with_resource(resource.clone())
                .with_sampler(sampler(config.sampler));
            let delivery = self.delivery;
            let pipeline = match self.span_exporter {
                Some(factory) => Some(factory(&handle, &config.batch, &resource, delivery)),
                None => traces_pipeline(&config, &handle, &resource, delivery)?,
            };
            // One processor only (see `SharedSpanProcessor`): the stamp rides in the
            // pipeline's, or stands alone when nothing is exported.
            let stamp = self.stamp.clone();
            match &pipeline {
                Some(SpanPipeline::Batch(p)) => {
                    builder =
                        builder.with_span_processor(SharedSpanProcessor::new(Arc::clone(p), stamp));
                }
                Some(SpanPipeline::OnFlush(p)) => {
                    builder =
                        builder.with_span_processor(SharedSpanProcessor::new(Arc::clone(p), stamp));
                }
                None => {
                    if let Some(stamp) = stamp {
                        builder = builder.with_span_processor(SpanStamp(stamp));
                    }
                }
            }
            span_processor = pipeline;
            let logger_provider = match &config.logs_exporter {
                ExporterKind::Otlp(otlp) => {
                    let mut exporter = otlp_log_exporter(otlp, &handle)?;
                    opentelemetry_sdk::logs::LogExporter::set_resource(&mut exporter, &resource);
                    let exporter =
                        OnExportRuntime::new(exporter, handle.clone(), config.batch.export_timeout)
                            .explained_by(Some(ExportTarget::new("logs", otlp)));
                    let processor = Arc::new(BatchLogProcessor::builder(exporter).build());
                    log_processor = Some(Arc::clone(&processor));
                    Some(
                        SdkLoggerProvider::builder()
                            .with_resource(resource)
                            .with_log_processor(SharedLogProcessor(processor))
                            .build(),
                    )
                }
                // `console`: the JSON lines on stdout are the console output.
                ExporterKind::Console | ExporterKind::None => None,
            };
            (Some(builder.build()), logger_provider)
        };

        Ok(Telemetry {
            config,
            tracer_provider,
            logger_provider,
            meter_provider,
            span_processor,
            log_processor,
            propagator,
            runtime: Some(runtime),
            shut_down: false,
        })
    }
}

/// The pipeline of `OTEL_TRACES_EXPORTER`: none, one exporter, or every listed one behind one
/// processor ([`FanOutSpanExporter`]), so a flush and the queue bound cover them all.
fn traces_pipeline(
    config: &TelemetryConfig,
    handle: &Handle,
    resource: &Resource,
    delivery: SpanDelivery,
) -> Result<Option<SpanPipeline>, InitError> {
    let mut exporters = Vec::with_capacity(config.traces_exporters.len());
    let mut target = None;
    for kind in &config.traces_exporters {
        match kind {
            ExporterKind::Otlp(otlp) => {
                exporters.push(otlp_span_exporter(otlp, handle)?);
                // Export failures are explained for the OTLP endpoint (console cannot fail so).
                target = Some(ExportTarget::new("traces", otlp));
            }
            ExporterKind::Console => exporters.push(AnySpanExporter::Console(
                opentelemetry_stdout::SpanExporter::default(),
            )),
            ExporterKind::None => {}
        }
    }
    if exporters.is_empty() {
        return Ok(None);
    }
    let exporter = FanOutSpanExporter(exporters);
    Ok(Some(span_pipeline(
        exporter,
        handle,
        &config.batch,
        resource,
        delivery,
        target,
    )))
}

fn span_pipeline<E: SpanExporter + 'static>(
    mut exporter: E,
    handle: &Handle,
    batch: &BatchConfig,
    resource: &Resource,
    delivery: SpanDelivery,
    target: Option<ExportTarget>,
) -> SpanPipeline {
    exporter.set_resource(resource);
    let exporter =
        OnExportRuntime::new(exporter, handle.clone(), batch.export_timeout).explained_by(target);
    if delivery == SpanDelivery::OnFlush {
        let processor = InvocationSpanProcessor::new(exporter, handle.clone(), batch);
        return SpanPipeline::OnFlush(Arc::new(processor));
    }
    // `BatchConfigBuilder::default` reads OTEL_BSP_* from the process environment; each is
    // overwritten here with the validated value. The export timeout is enforced by
    // `OnExportRuntime` (the SDK's own setting is behind an experimental feature).
    let config = BatchConfigBuilder::default()
        .with_scheduled_delay(batch.schedule_delay)
        .with_max_queue_size(batch.max_queue_size)
        .with_max_export_batch_size(batch.max_export_batch_size)
        .build();
    SpanPipeline::Batch(Arc::new(
        BatchSpanProcessor::builder(exporter)
            .with_batch_config(config)
            .build(),
    ))
}

fn sampler(config: SamplerConfig) -> Sampler {
    match config {
        SamplerConfig::AlwaysOn => Sampler::AlwaysOn,
        SamplerConfig::AlwaysOff => Sampler::AlwaysOff,
        SamplerConfig::TraceIdRatio(r) => Sampler::TraceIdRatioBased(r),
        SamplerConfig::ParentBasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        SamplerConfig::ParentBasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        SamplerConfig::ParentBasedTraceIdRatio(r) => {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(r)))
        }
    }
}

fn metadata(headers: &[(String, String)]) -> Result<tonic::metadata::MetadataMap, InitError> {
    let mut map = tonic::metadata::MetadataMap::new();
    for (name, value) in headers {
        let bad = || InitError::GrpcHeader { name: name.clone() };
        let key = tonic::metadata::MetadataKey::from_bytes(name.as_bytes()).map_err(|_| bad())?;
        let value = value.parse().map_err(|_| bad())?;
        map.append(key, value);
    }
    Ok(map)
}

fn compression(c: OtlpCompression) -> Option<opentelemetry_otlp::Compression> {
    match c {
        OtlpCompression::Gzip => Some(opentelemetry_otlp::Compression::Gzip),
        OtlpCompression::None => None,
    }
}

/// The exporters' own retry loop (opentelemetry-otlp retries connection failures, gRPC
/// `UNAVAILABLE` and HTTP 429/502/503/504, honouring `Retry-After`/`RetryInfo`) with our bound:
/// it gives up when the next delay would pass the exporter's timeout.
fn retry_policy(otlp: &OtlpConfig) -> opentelemetry_otlp::RetryPolicy {
    let retry = otlp.retry;
    if retry.max_retries == 0 {
        return opentelemetry_otlp::RetryPolicy::disabled();
    }
    opentelemetry_otlp::RetryPolicy::recommended()
        .with_max_retries(retry.max_retries)
        .with_initial_delay(retry.initial_delay)
        .with_max_delay(retry.max_delay)
}

macro_rules! otlp_exporter {
    ($builder:expr, $otlp:expr, $handle:expr, $signal:literal) => {{
        let otlp: &OtlpConfig = $otlp;
        // Built inside the export runtime: tonic's lazy channel spawns its worker there.
        // Endpoint, timeout and compression set here override the process environment. Headers
        // do not: opentelemetry-otlp 0.33 also reads OTEL_EXPORTER_OTLP_*HEADERS from the process
        // environment and merges them over ours (same values when the map is `std::env::vars()`).
        let _enter = $handle.enter();
        let built = match otlp.protocol {
            OtlpProtocol::Grpc => {
                let mut b = $builder
                    .with_tonic()
                    .with_endpoint(otlp.endpoint.clone())
                    .with_timeout(otlp.timeout)
                    .with_retry_policy(retry_policy(otlp))
                    .with_metadata(metadata(&otlp.headers)?);
                if let Some(c) = compression(otlp.compression) {
                    b = b.with_compression(c);
                }
                b.build()
            }
            OtlpProtocol::HttpProtobuf => {
                let headers: HashMap<String, String> = otlp.headers.iter().cloned().collect();
                let mut b = $builder
                    .with_http()
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .with_endpoint(otlp.endpoint.clone())
                    .with_timeout(otlp.timeout)
                    .with_retry_policy(retry_policy(otlp))
                    .with_headers(headers);
                if let Some(c) = compression(otlp.compression) {
                    b = b.with_compression(c);
                }
                b.build()
            }
        };
        built.map_err(|source| InitError::Exporter {
            signal: $signal,
            endpoint: otlp.endpoint.clone(),
            source,
        })
    }};
}

/// Spans over gRPC go through opentelemetry-otlp's tonic exporter; over OTLP/HTTP through our
/// own, which encodes each batch from the span data directly ([`HttpSpanExporter`]).
fn otlp_span_exporter(otlp: &OtlpConfig, handle: &Handle) -> Result<AnySpanExporter, InitError> {
    match otlp.protocol {
        OtlpProtocol::Grpc => Ok(AnySpanExporter::Otlp(otlp_exporter!(
            opentelemetry_otlp::SpanExporter::builder(),
            otlp,
            handle,
            "traces"
        )?)),
        OtlpProtocol::HttpProtobuf => Ok(AnySpanExporter::OtlpHttp(HttpSpanExporter::new(otlp)?)),
    }
}

/// The OTLP metrics pipeline: a periodic reader every `interval`, its exports run (and bounded
/// by the exporter's timeout) on the export runtime whatever the protocol.
pub(crate) fn meter_provider(
    otlp: &OtlpConfig,
    delta: bool,
    interval: Duration,
    handle: &Handle,
    resource: &Resource,
) -> Result<SdkMeterProvider, InitError> {
    let temporality = if delta {
        Temporality::Delta
    } else {
        Temporality::Cumulative
    };
    let exporter = otlp_exporter!(
        opentelemetry_otlp::MetricExporter::builder().with_temporality(temporality),
        otlp,
        handle,
        "metrics"
    )?;
    let exporter = OnExportRuntime::new(exporter, handle.clone(), otlp.timeout)
        .explained_by(Some(ExportTarget::new("metrics", otlp)));
    let reader = PeriodicReader::builder(exporter)
        .with_interval(interval)
        .build();
    Ok(SdkMeterProvider::builder()
        .with_resource(resource.clone())
        .with_reader(reader)
        .build())
}

/// Logs over gRPC go through opentelemetry-otlp's tonic exporter; over OTLP/HTTP through our
/// own, which encodes each batch from the records directly ([`HttpLogExporter`]).
fn otlp_log_exporter(otlp: &OtlpConfig, handle: &Handle) -> Result<AnyLogExporter, InitError> {
    match otlp.protocol {
        OtlpProtocol::Grpc => Ok(AnyLogExporter::Otlp(otlp_exporter!(
            opentelemetry_otlp::LogExporter::builder(),
            otlp,
            handle,
            "logs"
        )?)),
        OtlpProtocol::HttpProtobuf => Ok(AnyLogExporter::OtlpHttp(HttpLogExporter::new(otlp)?)),
    }
}

/// The log exporters `OTEL_LOGS_EXPORTER=otlp` can mean, by protocol.
#[derive(Debug)]
enum AnyLogExporter {
    Otlp(opentelemetry_otlp::LogExporter),
    OtlpHttp(HttpLogExporter),
}

impl opentelemetry_sdk::logs::LogExporter for AnyLogExporter {
    async fn export(&self, batch: opentelemetry_sdk::logs::LogBatch<'_>) -> OTelSdkResult {
        match self {
            Self::Otlp(e) => e.export(batch).await,
            Self::OtlpHttp(e) => e.export(batch).await,
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        match self {
            Self::Otlp(e) => e.shutdown_with_timeout(timeout),
            Self::OtlpHttp(e) => e.shutdown_with_timeout(timeout),
        }
    }

    fn set_resource(&mut self, resource: &Resource) {
        match self {
            Self::Otlp(e) => e.set_resource(resource),
            Self::OtlpHttp(e) => e.set_resource(resource),
        }
    }
}

/// The running telemetry set-up. Dropping it flushes and shuts the providers down (bounded by
/// five seconds); [`Telemetry::shutdown`] does the same with a bound of your choosing.
pub struct Telemetry {
    pub(crate) config: TelemetryConfig,
    tracer_provider: Option<SdkTracerProvider>,
    pub(crate) logger_provider: Option<SdkLoggerProvider>,
    meter_provider: Option<SdkMeterProvider>,
    span_processor: Option<SpanPipeline>,
    log_processor: Option<Arc<BatchLogProcessor>>,
    propagator: Propagators,
    runtime: Option<ExportRuntime>,
    shut_down: bool,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("config", &self.config)
            .field("tracer_provider", &self.tracer_provider.is_some())
            .field("logger_provider", &self.logger_provider.is_some())
            .finish()
    }
}

const DROP_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

impl Telemetry {
    /// Shorthand for `TelemetryBuilder::new(config)`.
    pub fn builder(config: TelemetryConfig) -> TelemetryBuilder {
        TelemetryBuilder::new(config)
    }

    /// The configuration this set-up was built from.
    pub fn config(&self) -> &TelemetryConfig {
        &self.config
    }

    /// The tracer provider; `None` when `OTEL_SDK_DISABLED=true`.
    pub fn tracer_provider(&self) -> Option<&SdkTracerProvider> {
        self.tracer_provider.as_ref()
    }

    /// A tracer for one instrumentation scope; `None` when the SDK is disabled.
    pub fn tracer(&self, scope: &'static str) -> Option<SdkTracer> {
        self.tracer_provider.as_ref().map(|p| p.tracer(scope))
    }

    /// The logger provider; `Some` only when `OTEL_LOGS_EXPORTER=otlp`.
    pub fn logger_provider(&self) -> Option<&SdkLoggerProvider> {
        self.logger_provider.as_ref()
    }

    /// The meter provider; `Some` when `OTEL_METRICS_EXPORTER=otlp` (the default) and the SDK
    /// is enabled. [`Telemetry::install_global`] makes it the global one.
    pub fn meter_provider(&self) -> Option<&SdkMeterProvider> {
        self.meter_provider.as_ref()
    }

    /// The propagators `OTEL_PROPAGATORS` asked for, to pass to carriers.
    pub fn propagator(&self) -> &Propagators {
        &self.propagator
    }

    /// Sets the global tracer and meter providers (when the SDK is enabled) and the global
    /// propagator.
    pub fn install_global(&self) {
        if let Some(provider) = &self.tracer_provider {
            opentelemetry::global::set_tracer_provider(provider.clone());
        }
        if let Some(provider) = &self.meter_provider {
            opentelemetry::global::set_meter_provider(provider.clone());
        }
        opentelemetry::global::set_text_map_propagator(build_propagator(&self.config));
    }

    /// Exports every finished span (and log record), waiting at most `timeout`.
    /// With no exporter (`none`, or the SDK disabled) there is nothing to export: `Exported`. Safe to call from
    /// any thread, including a `current_thread` runtime's or one inside `block_on`: exports run
    /// on the guard's own runtime, and this thread only waits. The SDK's batch processor gives up
    /// on its own after five seconds, so a longer `timeout` ends at about five seconds.
    pub fn flush(&self, timeout: Duration) -> FlushOutcome {
        let started = Instant::now();
        let direct = match &self.span_processor {
            Some(SpanPipeline::OnFlush(p)) => p.export_pending_blocking(timeout),
            _ => Ok(()),
        };
        let Some(rx) = self.start_flush() else {
            return FlushOutcome::from_result(direct);
        };
        let rest = match rx.recv_timeout(timeout.saturating_sub(started.elapsed())) {
            Ok(outcome) => outcome,
            Err(mpsc::RecvTimeoutError::Timeout) => FlushOutcome::TimedOut,
            Err(mpsc::RecvTimeoutError::Disconnected) => FlushOutcome::Failed(
                OTelSdkError::InternalFailure("the flush thread ended without an outcome".into()),
            ),
        };
        FlushOutcome::from_result(direct).and(rest)
    }

    /// [`Telemetry::flush`] for async callers: the runtime's thread is not blocked.
    pub async fn flush_async(&self, timeout: Duration) -> FlushOutcome {
        let started = Instant::now();
        let direct = match &self.span_processor {
            Some(SpanPipeline::OnFlush(p)) => p.export_pending(timeout).await,
            _ => Ok(()),
        };
        let direct = FlushOutcome::from_result(direct);
        let Some(rx) = self.start_flush() else {
            return direct;
        };
        let timeout = timeout.saturating_sub(started.elapsed());
        let (tx, done) = tokio::sync::oneshot::channel();
        // Bridges the std channel to the async world without blocking a runtime worker.
        std::thread::spawn(move || {
            let _ = tx.send(rx.recv_timeout(timeout));
        });
        let rest = match tokio::time::timeout(timeout, done).await {
            Ok(Ok(Ok(outcome))) => outcome,
            Ok(Ok(Err(mpsc::RecvTimeoutError::Timeout))) | Err(_) => FlushOutcome::TimedOut,
            Ok(Ok(Err(mpsc::RecvTimeoutError::Disconnected))) | Ok(Err(_)) => FlushOutcome::Failed(
                OTelSdkError::InternalFailure("the flush thread ended without an outcome".into()),
            ),
        };
        direct.and(rest)
    }

    /// Starts a flush of the batch processors on a thread of its own; `None` when there is
    /// nothing for it to flush. The on-flush span pipeline is not its business: the caller
    /// exports it directly.
    fn start_flush(&self) -> Option<mpsc::Receiver<FlushOutcome>> {
        let tracer = match &self.span_processor {
            Some(SpanPipeline::Batch(p)) => Some(Arc::clone(p)),
            Some(SpanPipeline::OnFlush(_)) | None => None,
        };
        if tracer.is_none() && self.log_processor.is_none() {
            return None;
        }
        let logger = self.log_processor.clone();
        let (tx, rx) = mpsc::sync_channel(1);
        let spawned = std::thread::Builder::new()
            .name("throughline-otel-flush".into())
            .spawn(move || {
                let traces = tracer.map_or(Ok(()), |p| p.force_flush());
                let logs = logger.map_or(Ok(()), |p| p.force_flush());
                let _ = tx.send(FlushOutcome::from_results([traces, logs]));
            });
        match spawned {
            Ok(_) => Some(rx),
            Err(err) => {
                let (tx, rx) = mpsc::sync_channel(1);
                let _ = tx.send(FlushOutcome::Failed(OTelSdkError::InternalFailure(
                    format!("could not start the flush thread: {err}"),
                )));
                Some(rx)
            }
        }
    }

    /// Flushes and shuts the providers down, waiting at most `timeout`.
    pub fn shutdown(mut self, timeout: Duration) -> FlushOutcome {
        self.shutdown_inner(timeout)
    }

    fn shutdown_inner(&mut self, timeout: Duration) -> FlushOutcome {
        if self.shut_down {
            return FlushOutcome::Exported;
        }
        self.shut_down = true;
        let tracer = self.span_processor.clone();
        let logger = self.log_processor.clone();
        let providers = (self.tracer_provider.clone(), self.logger_provider.clone());
        let meter = self.meter_provider.clone();
        let runtime = self.runtime.take();
        if tracer.is_none() && logger.is_none() && meter.is_none() {
            return FlushOutcome::Exported;
        }
        // An export still running when the bound passes keeps polling futures that belong to
        // the export runtime; stopping the runtime under it would make tokio panic on that
        // thread. So the runtime lives on this helper thread until that export has had its own
        // bound (OTEL_BSP_EXPORT_TIMEOUT) to finish.
        let linger = self.config.batch.export_timeout;
        let (tx, rx) = mpsc::sync_channel(1);
        let spawned = std::thread::Builder::new()
            .name("throughline-otel-shutdown".into())
            .spawn(move || {
                let traces = tracer.map_or(Ok(()), |p| p.shutdown_with_timeout(timeout));
                let logs = logger.map_or(Ok(()), |p| p.shutdown_with_timeout(timeout));
                // The last metric export; its failure is reported like the others'.
                let metrics = meter.map_or(Ok(()), |p| p.shutdown_with_timeout(timeout));
                let outcome = FlushOutcome::from_results([traces, logs])
                    .and(FlushOutcome::from_result(metrics));
                // Marks the providers shut down; their processors already are.
                if let Some(p) = providers.0 {
                    let _ = p.shutdown_with_timeout(Duration::ZERO);
                }
                if let Some(p) = providers.1 {
                    let _ = p.shutdown_with_timeout(Duration::ZERO);
                }
                let timed_out = matches!(outcome, FlushOutcome::TimedOut);
                let _ = tx.send(outcome);
                if timed_out {
                    std::thread::sleep(linger);
                }
                drop(runtime);
            });
        match spawned {
            Ok(_) => rx.recv_timeout(timeout).unwrap_or(FlushOutcome::TimedOut),
            Err(err) => FlushOutcome::Failed(OTelSdkError::InternalFailure(format!(
                "could not start the shutdown thread: {err}"
            ))),
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        let _ = self.shutdown_inner(DROP_SHUTDOWN_TIMEOUT);
    }
}
