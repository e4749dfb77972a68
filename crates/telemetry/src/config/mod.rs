//! Telemetry configuration from the standard `OTEL_*` variables, in two stages: [`RawEnv`] holds
//! the strings, [`TelemetryConfig::from_raw`] validates them and applies the specification's
//! defaults. A bad value is an error naming the variable and the value; nothing falls back silently.

mod pairs;
mod raw;

use std::fmt;
use std::time::Duration;

pub use pairs::PairsProblem;
pub use raw::RawEnv;
pub use throughline_propagation::PropagatorName;

/// A configuration value that was wrong: the variable, the value, and what is wrong with it.
/// Displays as `OTEL_TRACES_SAMPLER_ARG: "abc" is not a number between 0 and 1`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {value:?} {problem}")]
pub struct ConfigError {
    /// The environment variable that held the value.
    pub variable: String,
    /// The value as it was found.
    pub value: String,
    /// What is wrong with it.
    pub problem: ConfigProblem,
}

/// What is wrong with a configuration value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigProblem {
    #[error("is not true or false")]
    NotABool,
    #[error("is not a number between 0 and 1")]
    NotARatio,
    #[error("is not a whole number of milliseconds")]
    NotMilliseconds,
    #[error("is not a whole number greater than 0")]
    NotAPositiveCount,
    #[error("is not one of {expected}")]
    UnknownValue { expected: &'static str },
    #[error("is not supported by throughline: {why}")]
    Unsupported { why: &'static str },
    #[error("is not an http:// or https:// URL")]
    NotAnHttpUrl,
    #[error("is not a valid key=value list: {0}")]
    BadList(PairsProblem),
    #[error("is larger than OTEL_BSP_MAX_QUEUE_SIZE ({queue_size})")]
    BatchLargerThanQueue { queue_size: usize },
    #[error("cannot be combined with other values")]
    NoneWithOthers,
    #[error("is not a whole number")]
    NotACount,
    #[error("names the same exporter twice")]
    DuplicateExporter,
}

fn err(variable: &str, value: &str, problem: ConfigProblem) -> ConfigError {
    ConfigError {
        variable: variable.to_owned(),
        value: value.to_owned(),
        problem,
    }
}

/// Where spans (or logs) go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExporterKind {
    /// OTLP over gRPC or HTTP, as [`OtlpConfig`] says.
    Otlp(OtlpConfig),
    /// Pretty-printed to stdout (`console`).
    Console,
    /// Nowhere (`none`).
    None,
}

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// `grpc`
    Grpc,
    /// `http/protobuf`
    HttpProtobuf,
}

/// Payload compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpCompression {
    /// `gzip`
    Gzip,
    /// `none`
    None,
}

/// One signal's OTLP exporter settings, with the signal-specific variables already preferred over
/// the generic ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpConfig {
    pub protocol: OtlpProtocol,
    /// The full URL to send to (for HTTP, including `/v1/traces` or `/v1/logs`).
    pub endpoint: String,
    /// Header names are lowercase; values keep their case.
    pub headers: Vec<(String, String)>,
    /// The exporter's deadline for one export, retries included (`OTEL_EXPORTER_OTLP_*TIMEOUT`).
    pub timeout: Duration,
    pub compression: OtlpCompression,
    /// How a failed export is retried within `timeout` (`THROUGHLINE_OTLP_RETRY_*`).
    pub retry: RetryConfig,
}

/// How the OTLP exporters retry an export the receiver could not take (connection refused,
/// gRPC `UNAVAILABLE`, HTTP 429/502/503/504, honouring `Retry-After`), so a collector restart of a
/// few seconds loses nothing. Every retry stays within the exporter's timeout
/// (`OTEL_EXPORTER_OTLP_TIMEOUT`, default 10 s) and, for spans, `OTEL_BSP_EXPORT_TIMEOUT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryConfig {
    /// `THROUGHLINE_OTLP_RETRIES`: retries after the first attempt (default 10; `0` disables).
    pub max_retries: usize,
    /// The first backoff delay, doubled after each retry (100 ms).
    pub initial_delay: Duration,
    /// `THROUGHLINE_OTLP_RETRY_MAX_DELAY`: the longest backoff delay in milliseconds
    /// (default 2000).
    pub max_delay: Duration,
}

impl Default for RetryConfig {
    /// 10 retries, 100 ms doubling up to 2 s: about 10 s of retrying, the default timeout.
    fn default() -> Self {
        Self {
            max_retries: 10,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
        }
    }
}

/// `OTEL_TRACES_SAMPLER` with its argument applied.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SamplerConfig {
    AlwaysOn,
    AlwaysOff,
    TraceIdRatio(f64),
    ParentBasedAlwaysOn,
    ParentBasedAlwaysOff,
    ParentBasedTraceIdRatio(f64),
}

/// The batch span processor's settings (`OTEL_BSP_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    pub schedule_delay: Duration,
    pub export_timeout: Duration,
    pub max_queue_size: usize,
    pub max_export_batch_size: usize,
}

/// Validated telemetry configuration, defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    /// `OTEL_SDK_DISABLED=true`: no provider, no export; logs still go to stdout.
    pub sdk_disabled: bool,
    /// `OTEL_SERVICE_NAME`, if set.
    pub service_name: Option<String>,
    /// `OTEL_RESOURCE_ATTRIBUTES`, decoded, in order.
    pub resource_attributes: Vec<(String, String)>,
    /// `OTEL_TRACES_EXPORTER` (default `otlp`): every exporter of the comma-separated list, in
    /// order (`otlp,console`), each span sent to all; empty for `none`.
    pub traces_exporters: Vec<ExporterKind>,
    /// `OTEL_LOGS_EXPORTER` (default `none` here: JSON lines always go to stdout).
    pub logs_exporter: ExporterKind,
    /// `OTEL_METRICS_EXPORTER` (default `otlp`; `otlp` or `none`), with the
    /// `OTEL_EXPORTER_OTLP_METRICS_*` settings over the generic ones.
    pub metrics_exporter: ExporterKind,
    /// `OTEL_METRIC_EXPORT_INTERVAL`, when set (else the builder's default, else 60 s).
    pub metric_export_interval: Option<Duration>,
    /// `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE` (`cumulative`, the default, or `delta`).
    pub metric_temporality_delta: bool,
    /// `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` (default `parentbased_always_on`;
    /// the argument, when set, must be a number in [0, 1] whatever the sampler).
    pub sampler: SamplerConfig,
    /// `OTEL_BSP_*`.
    pub batch: BatchConfig,
    /// `OTEL_PROPAGATORS` parsed by `throughline-propagation` (default `tracecontext,baggage`;
    /// `[None]` for `none`).
    pub propagators: Vec<PropagatorName>,
    /// The raw environment, for resource detection (Lambda, ECS, host name).
    pub env: RawEnv,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        // The empty environment is valid by construction: every default below is a valid value.
        match Self::from_raw(RawEnv::default()) {
            Ok(config) => config,
            Err(e) => unreachable!("defaults are valid: {e}"),
        }
    }
}

/// Signal-specific names of the OTLP variables.
struct Signal {
    endpoint: &'static str,
    protocol: &'static str,
    headers: &'static str,
    timeout: &'static str,
    compression: &'static str,
    http_path: &'static str,
}

const TRACES: Signal = Signal {
    endpoint: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    protocol: "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    headers: "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    timeout: "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
    compression: "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
    http_path: "v1/traces",
};

const METRICS: Signal = Signal {
    endpoint: "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    protocol: "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    headers: "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
    timeout: "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
    compression: "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION",
    http_path: "v1/metrics",
};

const LOGS: Signal = Signal {
    endpoint: "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
    protocol: "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
    headers: "OTEL_EXPORTER_OTLP_LOGS_HEADERS",
    timeout: "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT",
    compression: "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION",
    http_path: "v1/logs",
};

impl TelemetryConfig {
    /// Reads and validates the configuration from pairs such as `std::env::vars()`.
    pub fn from_env<I, K, V>(pairs: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self::from_raw(RawEnv::from_pairs(pairs))
    }

    /// Validates raw values and applies the specification's defaults.
    pub fn from_raw(env: RawEnv) -> Result<Self, ConfigError> {
        let sdk_disabled = match env.get("OTEL_SDK_DISABLED") {
            None => false,
            Some(v) => parse_bool("OTEL_SDK_DISABLED", v)?,
        };
        let resource_attributes = match env.get("OTEL_RESOURCE_ATTRIBUTES") {
            None => Vec::new(),
            Some(v) => pairs::parse_pairs(v)
                .map_err(|p| err("OTEL_RESOURCE_ATTRIBUTES", v, ConfigProblem::BadList(p)))?,
        };
        let traces_exporters = exporters(&env, "OTEL_TRACES_EXPORTER", "otlp", &TRACES)?;
        let logs_exporter = exporter(&env, "OTEL_LOGS_EXPORTER", "none", &LOGS)?;
        let metrics_exporter = exporter(&env, "OTEL_METRICS_EXPORTER", "otlp", &METRICS)?;
        if metrics_exporter == ExporterKind::Console {
            return Err(err(
                "OTEL_METRICS_EXPORTER",
                env.get("OTEL_METRICS_EXPORTER").unwrap_or_default(),
                ConfigProblem::Unsupported {
                    why: "use otlp or none for metrics",
                },
            ));
        }
        const TEMPORALITY: &str = "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE";
        let metric_temporality_delta = match env.get(TEMPORALITY) {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("cumulative") => false,
            Some(v) if v.eq_ignore_ascii_case("delta") => true,
            Some(v) if v.eq_ignore_ascii_case("lowmemory") => {
                return Err(err(
                    TEMPORALITY,
                    v,
                    ConfigProblem::Unsupported {
                        why: "use cumulative or delta",
                    },
                ));
            }
            Some(v) => {
                return Err(err(
                    TEMPORALITY,
                    v,
                    ConfigProblem::UnknownValue {
                        expected: "cumulative, delta, lowmemory",
                    },
                ));
            }
        };
        let metric_export_interval = match env.get("OTEL_METRIC_EXPORT_INTERVAL") {
            None => None,
            Some(v) => match parse_millis("OTEL_METRIC_EXPORT_INTERVAL", v)? {
                d if d.is_zero() => {
                    return Err(err(
                        "OTEL_METRIC_EXPORT_INTERVAL",
                        v,
                        ConfigProblem::NotAPositiveCount,
                    ));
                }
                d => Some(d),
            },
        };
        let sampler = sampler(&env)?;
        let batch = batch(&env)?;
        let propagators = propagators(env.get("OTEL_PROPAGATORS").unwrap_or_default())?;
        Ok(Self {
            sdk_disabled,
            service_name: env.get("OTEL_SERVICE_NAME").map(str::to_owned),
            resource_attributes,
            traces_exporters,
            logs_exporter,
            metrics_exporter,
            metric_export_interval,
            metric_temporality_delta,
            sampler,
            batch,
            propagators,
            env,
        })
    }
}

fn parse_bool(variable: &str, value: &str) -> Result<bool, ConfigError> {
    if value.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(err(variable, value, ConfigProblem::NotABool))
    }
}

fn parse_millis(variable: &str, value: &str) -> Result<Duration, ConfigError> {
    value
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| err(variable, value, ConfigProblem::NotMilliseconds))
}

fn parse_count(variable: &str, value: &str) -> Result<usize, ConfigError> {
    match value.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(err(variable, value, ConfigProblem::NotAPositiveCount)),
    }
}

/// A list of exporters, as the specification allows for `OTEL_TRACES_EXPORTER` (`otlp,console`):
/// `none` only alone, no exporter twice; empty for `none`.
fn exporters(
    env: &RawEnv,
    variable: &str,
    default: &str,
    signal: &Signal,
) -> Result<Vec<ExporterKind>, ConfigError> {
    let value = env.get(variable).unwrap_or(default);
    let names: Vec<&str> = value.split(',').map(str::trim).collect();
    if names.len() == 1 {
        return Ok(
            match exporter_named(env, variable, value, names[0], signal)? {
                ExporterKind::None => Vec::new(),
                kind => vec![kind],
            },
        );
    }
    let mut kinds = Vec::with_capacity(names.len());
    for name in names {
        let kind = exporter_named(env, variable, value, name, signal)?;
        if kind == ExporterKind::None {
            return Err(err(variable, value, ConfigProblem::NoneWithOthers));
        }
        if kinds
            .iter()
            .any(|k| std::mem::discriminant(k) == std::mem::discriminant(&kind))
        {
            return Err(err(variable, value, ConfigProblem::DuplicateExporter));
        }
        kinds.push(kind);
    }
    Ok(kinds)
}

fn exporter(
    env: &RawEnv,
    variable: &str,
    default: &str,
    signal: &Signal,
) -> Result<ExporterKind, ConfigError> {
    let value = env.get(variable).unwrap_or(default);
    exporter_named(env, variable, value, value, signal)
}

/// The exporter `name`, one item of `value` (the whole setting, for messages).
fn exporter_named(
    env: &RawEnv,
    variable: &str,
    value: &str,
    name: &str,
    signal: &Signal,
) -> Result<ExporterKind, ConfigError> {
    match name.to_ascii_lowercase().as_str() {
        "otlp" => Ok(ExporterKind::Otlp(otlp(env, signal)?)),
        "console" => Ok(ExporterKind::Console),
        "none" => Ok(ExporterKind::None),
        v if v.contains(',') => Err(err(
            variable,
            value,
            ConfigProblem::Unsupported {
                why: "one exporter per signal",
            },
        )),
        "zipkin" | "jaeger" | "prometheus" => Err(err(
            variable,
            value,
            ConfigProblem::Unsupported {
                why: "use otlp, console or none",
            },
        )),
        _ => Err(err(
            variable,
            value,
            ConfigProblem::UnknownValue {
                expected: "otlp, console, none",
            },
        )),
    }
}

fn otlp(env: &RawEnv, signal: &Signal) -> Result<OtlpConfig, ConfigError> {
    let protocol = match env.get_either(signal.protocol, "OTEL_EXPORTER_OTLP_PROTOCOL") {
        None => OtlpProtocol::HttpProtobuf,
        Some((var, v)) => match v {
            "grpc" => OtlpProtocol::Grpc,
            "http/protobuf" => OtlpProtocol::HttpProtobuf,
            "http/json" => {
                return Err(err(
                    var,
                    v,
                    ConfigProblem::Unsupported {
                        why: "use grpc or http/protobuf",
                    },
                ));
            }
            _ => {
                return Err(err(
                    var,
                    v,
                    ConfigProblem::UnknownValue {
                        expected: "grpc, http/protobuf, http/json",
                    },
                ));
            }
        },
    };
    let endpoint = match (
        env.get(signal.endpoint),
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT"),
    ) {
        (Some(specific), _) => {
            check_url(signal.endpoint, specific)?;
            specific.to_owned()
        }
        (None, Some(generic)) => {
            check_url("OTEL_EXPORTER_OTLP_ENDPOINT", generic)?;
            signal_url(protocol, generic, signal)
        }
        (None, None) => match protocol {
            OtlpProtocol::Grpc => "http://localhost:4317".to_owned(),
            OtlpProtocol::HttpProtobuf => format!("http://localhost:4318/{}", signal.http_path),
        },
    };
    let headers = match env.get_either(signal.headers, "OTEL_EXPORTER_OTLP_HEADERS") {
        None => Vec::new(),
        Some((var, v)) => {
            pairs::parse_headers(v).map_err(|p| err(var, v, ConfigProblem::BadList(p)))?
        }
    };
    let timeout = match env.get_either(signal.timeout, "OTEL_EXPORTER_OTLP_TIMEOUT") {
        None => Duration::from_secs(10),
        Some((var, v)) => parse_millis(var, v)?,
    };
    let compression = match env.get_either(signal.compression, "OTEL_EXPORTER_OTLP_COMPRESSION") {
        None => OtlpCompression::None,
        Some((_, "gzip")) => OtlpCompression::Gzip,
        Some((_, "none")) => OtlpCompression::None,
        Some((var, v)) => {
            return Err(err(
                var,
                v,
                ConfigProblem::UnknownValue {
                    expected: "gzip, none",
                },
            ));
        }
    };
    Ok(OtlpConfig {
        protocol,
        endpoint,
        headers,
        timeout,
        compression,
        retry: retry(env)?,
    })
}

fn retry(env: &RawEnv) -> Result<RetryConfig, ConfigError> {
    const RETRIES: &str = "THROUGHLINE_OTLP_RETRIES";
    const MAX_DELAY: &str = "THROUGHLINE_OTLP_RETRY_MAX_DELAY";
    let mut retry = RetryConfig::default();
    if let Some(v) = env.get(RETRIES) {
        retry.max_retries = v
            .parse::<usize>()
            .map_err(|_| err(RETRIES, v, ConfigProblem::NotACount))?;
    }
    if let Some(v) = env.get(MAX_DELAY) {
        retry.max_delay = match parse_millis(MAX_DELAY, v)? {
            d if d.is_zero() => return Err(err(MAX_DELAY, v, ConfigProblem::NotAPositiveCount)),
            d => d,
        };
        retry.initial_delay = retry.initial_delay.min(retry.max_delay);
    }
    Ok(retry)
}

/// The generic endpoint is a base URL: over HTTP the signal's path is appended (after a `/` if the
/// base lacks one); over gRPC it is used as is.
fn signal_url(protocol: OtlpProtocol, base: &str, signal: &Signal) -> String {
    match protocol {
        OtlpProtocol::Grpc => base.to_owned(),
        OtlpProtocol::HttpProtobuf if base.ends_with('/') => format!("{base}{}", signal.http_path),
        OtlpProtocol::HttpProtobuf => format!("{base}/{}", signal.http_path),
    }
}

fn check_url(variable: &str, value: &str) -> Result<(), ConfigError> {
    let rest = value
        .strip_prefix("http://")
        .or_else(|| value.strip_prefix("https://"));
    let host = rest.and_then(|r| r.split(['/', '?', '#']).next());
    match host {
        Some(h) if !h.is_empty() && !h.contains(char::is_whitespace) => Ok(()),
        _ => Err(err(variable, value, ConfigProblem::NotAnHttpUrl)),
    }
}

fn sampler(env: &RawEnv) -> Result<SamplerConfig, ConfigError> {
    const VAR: &str = "OTEL_TRACES_SAMPLER";
    const ARG: &str = "OTEL_TRACES_SAMPLER_ARG";
    let ratio = match env.get(ARG) {
        None => 1.0,
        Some(v) => match v.parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => r,
            _ => return Err(err(ARG, v, ConfigProblem::NotARatio)),
        },
    };
    let value = env.get(VAR).unwrap_or("parentbased_always_on");
    Ok(match value {
        "always_on" => SamplerConfig::AlwaysOn,
        "always_off" => SamplerConfig::AlwaysOff,
        "traceidratio" => SamplerConfig::TraceIdRatio(ratio),
        "parentbased_always_on" => SamplerConfig::ParentBasedAlwaysOn,
        "parentbased_always_off" => SamplerConfig::ParentBasedAlwaysOff,
        "parentbased_traceidratio" => SamplerConfig::ParentBasedTraceIdRatio(ratio),
        "jaeger_remote" | "parentbased_jaeger_remote" | "xray" => {
            return Err(err(
                VAR,
                value,
                ConfigProblem::Unsupported {
                    why: "remote samplers need network calls at start-up",
                },
            ));
        }
        _ => {
            return Err(err(
                VAR,
                value,
                ConfigProblem::UnknownValue {
                    expected: "always_on, always_off, traceidratio, parentbased_always_on, \
                               parentbased_always_off, parentbased_traceidratio",
                },
            ));
        }
    })
}

fn batch(env: &RawEnv) -> Result<BatchConfig, ConfigError> {
    let millis = |var: &str, default_ms: u64| match env.get(var) {
        None => Ok(Duration::from_millis(default_ms)),
        Some(v) => parse_millis(var, v),
    };
    let count = |var: &str, default: usize| match env.get(var) {
        None => Ok(default),
        Some(v) => parse_count(var, v),
    };
    let schedule_delay = millis("OTEL_BSP_SCHEDULE_DELAY", 5000)?;
    let export_timeout = millis("OTEL_BSP_EXPORT_TIMEOUT", 30000)?;
    let max_queue_size = count("OTEL_BSP_MAX_QUEUE_SIZE", 2048)?;
    let max_export_batch_size = count("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512.min(max_queue_size))?;
    if max_export_batch_size > max_queue_size {
        let value = env
            .get("OTEL_BSP_MAX_EXPORT_BATCH_SIZE")
            .unwrap_or_default();
        return Err(err(
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
            value,
            ConfigProblem::BatchLargerThanQueue {
                queue_size: max_queue_size,
            },
        ));
    }
    Ok(BatchConfig {
        schedule_delay,
        export_timeout,
        max_queue_size,
        max_export_batch_size,
    })
}

fn propagators(value: &str) -> Result<Vec<PropagatorName>, ConfigError> {
    use throughline_propagation::{Propagators, PropagatorsError};
    const VAR: &str = "OTEL_PROPAGATORS";
    match Propagators::from_otel_propagators(value) {
        Ok(p) => Ok(p.names().to_vec()),
        Err(PropagatorsError::Unknown { .. }) => Err(err(
            VAR,
            value,
            ConfigProblem::UnknownValue {
                expected: "tracecontext, baggage, xray, none",
            },
        )),
        Err(PropagatorsError::NoneCombined { .. }) => {
            Err(err(VAR, value, ConfigProblem::NoneWithOthers))
        }
    }
}

impl fmt::Display for OtlpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OtlpProtocol::Grpc => "grpc",
            OtlpProtocol::HttpProtobuf => "http/protobuf",
        })
    }
}

#[cfg(test)]
mod tests;
