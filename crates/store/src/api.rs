//! The store's API boundary: what the collector writes, and what the query API, the APM pages and
//! `throughline verify` read.
//!
//! Spans travel in OpenTelemetry's own protobuf model (`opentelemetry-proto`) so that nothing is
//! lost between the wire and the store; the read side adds the few summaries that queries need.
//! Times are Unix nanoseconds (`*_unix_nanos`), as in OTLP.

use std::fmt;
use std::str::FromStr;

pub use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
pub use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
pub use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
pub use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
pub use opentelemetry_proto::tonic::resource::v1::Resource;
pub use opentelemetry_proto::tonic::trace::v1::Span;
pub use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

use crate::StoreError;
pub use crate::encoded::EncodedTraces;

/// A 16-byte W3C trace id. Displays and parses as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId(pub [u8; 16]);

/// An 8-byte span id. Displays and parses as 16 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanId(pub [u8; 8]);

/// An id that did not parse: wrong length or a character that is not hex.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not {expected_hex_digits} hex digits")]
pub struct IdParseError {
    pub input: String,
    pub expected_hex_digits: usize,
}

macro_rules! hex_id {
    ($ty:ident, $len:literal) => {
        impl $ty {
            /// The id from raw OTLP bytes; `None` unless exactly the right length.
            pub fn from_slice(bytes: &[u8]) -> Option<Self> {
                Some(Self(bytes.try_into().ok()?))
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                for b in self.0 {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($ty))
            }
        }
        impl FromStr for $ty {
            type Err = IdParseError;
            /// Accepts upper or lower case hex; Jaeger clients also send shorter ids, which are
            /// left-padded with zeros, as Jaeger does.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let err = || IdParseError {
                    input: s.to_owned(),
                    expected_hex_digits: $len * 2,
                };
                // Checked byte by byte before anything is sliced: a multi-byte character
                // would otherwise put a slice off a char boundary (a panic on outside input).
                if s.is_empty() || s.len() > $len * 2 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(err());
                }
                let digits = s.as_bytes();
                let pad = $len * 2 - digits.len();
                let nibble = |i: usize| {
                    if i < pad {
                        0
                    } else {
                        // An ASCII hex digit, checked above.
                        (digits[i - pad] as char).to_digit(16).unwrap_or(0) as u8
                    }
                };
                let mut out = [0u8; $len];
                for (i, byte) in out.iter_mut().enumerate() {
                    *byte = nibble(i * 2) << 4 | nibble(i * 2 + 1);
                }
                Ok(Self(out))
            }
        }
    };
}
hex_id!(TraceId, 16);
hex_id!(SpanId, 8);

/// One span as stored, with the resource and scope it was sent under.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSpan {
    /// `service.name` of the resource (`unknown_service` when absent, as the SDKs do).
    pub service_name: String,
    pub resource: Resource,
    pub scope: Option<InstrumentationScope>,
    pub span: Span,
}

/// What a write did: how many spans were kept and, for a partial success, why the rest were not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteReport {
    pub accepted_spans: u64,
    pub rejected_spans: u64,
    /// Why spans were rejected (OTLP `partial_success.error_message`); empty when none were.
    pub rejection_reason: String,
}

/// The write side. A call that returns `Ok` has made the data durable: it survives `kill -9`.
pub trait SpanSink: Send + Sync {
    fn write_traces(&self, request: ExportTraceServiceRequest) -> Result<WriteReport, StoreError>;
    /// Writes a binary export read in place: what [`write_traces`](Self::write_traces) does
    /// with it decoded (which is what a sink without a faster way does).
    fn write_encoded_traces(&self, traces: EncodedTraces) -> Result<WriteReport, StoreError> {
        self.write_traces(traces.to_request())
    }
    fn write_logs(&self, request: ExportLogsServiceRequest) -> Result<u64, StoreError>;
    fn write_metrics(&self, request: ExportMetricsServiceRequest) -> Result<u64, StoreError>;
}

/// A search for traces. Every `Some`/non-empty field narrows the result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceQuery {
    pub service: Option<String>,
    pub operation: Option<String>,
    /// Attribute `key=value` pairs that one span of the trace must all carry (span or resource
    /// attributes), as Jaeger's `tags` parameter.
    pub tags: Vec<(String, String)>,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    pub min_duration_nanos: Option<u64>,
    pub max_duration_nanos: Option<u64>,
    pub errors_only: bool,
    /// Only traces whose integrity is not whole.
    pub incomplete_only: bool,
    /// Most recent first, at most this many.
    pub limit: usize,
}

/// A trace as a search result lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceSummary {
    pub trace_id: TraceId,
    pub root_service: Option<String>,
    pub root_name: Option<String>,
    /// Every service the trace crossed, in order of first appearance.
    pub services: Vec<String>,
    pub span_count: u64,
    pub start_unix_nanos: u64,
    pub duration_nanos: u64,
    pub has_error: bool,
    /// The earliest error span, for a list to show what went wrong.
    pub first_error: Option<crate::ErrorSpan>,
    pub integrity: TraceIntegrity,
}

/// Whether a trace arrived whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceIntegrity {
    /// A root span is present and every span's parent arrived.
    Whole,
    /// The trace is younger than the settle time; spans may still arrive.
    Settling,
    /// Something is missing, with every reason found.
    Incomplete(Vec<IntegrityProblem>),
}

/// Why a trace is not whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntegrityProblem {
    /// No span without a parent.
    MissingRoot,
    /// Spans whose parent never arrived; the parents that are missing.
    OrphanSpans {
        count: u64,
        missing_parents: Vec<SpanId>,
    },
}

/// An operation (span name) of a service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Operation {
    pub name: String,
    pub span_kind: SpanKind,
}

/// Fixed latency buckets shared by span metrics and the service graph, in milliseconds (the
/// OpenTelemetry Collector `spanmetrics` connector's defaults).
pub const LATENCY_BUCKETS_MS: &[f64] = &[
    2.0, 4.0, 6.0, 8.0, 10.0, 50.0, 100.0, 200.0, 400.0, 800.0, 1000.0, 1400.0, 2000.0, 5000.0,
    10_000.0, 15_000.0,
];

/// A latency histogram over [`LATENCY_BUCKETS_MS`]: `bucket_counts` has one more entry than the
/// bounds (the overflow bucket); counts are per bucket, not cumulative.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LatencyHistogram {
    pub bucket_counts: Vec<u64>,
    pub count: u64,
    pub sum_ms: f64,
}

impl LatencyHistogram {
    /// The `q` quantile (0..=1) in milliseconds, interpolated linearly inside its bucket, as
    /// Prometheus' `histogram_quantile` does; `None` for an empty histogram.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let total: u64 = self.bucket_counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut seen = 0u64;
        for (i, &count) in self.bucket_counts.iter().enumerate() {
            if count == 0 {
                continue;
            }
            if (seen + count) as f64 >= rank {
                let lower = if i == 0 {
                    0.0
                } else {
                    LATENCY_BUCKETS_MS.get(i - 1).copied().unwrap_or(0.0)
                };
                let Some(&upper) = LATENCY_BUCKETS_MS.get(i) else {
                    // The overflow bucket has no upper bound: report its lower bound.
                    return Some(lower);
                };
                let within = (rank - seen as f64) / count as f64;
                return Some(lower + (upper - lower) * within.clamp(0.0, 1.0));
            }
            seen += count;
        }
        LATENCY_BUCKETS_MS.last().copied()
    }

    /// Adds `other` into this one, bucket by bucket.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        if self.bucket_counts.len() < other.bucket_counts.len() {
            self.bucket_counts.resize(other.bucket_counts.len(), 0);
        }
        for (a, b) in self.bucket_counts.iter_mut().zip(&other.bucket_counts) {
            *a += b;
        }
        self.count += other.count;
        self.sum_ms += other.sum_ms;
    }
}

/// Span metrics for one series (RED: rate, errors, duration), cumulative over a window.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanMetricsSeries {
    pub service: String,
    pub span_name: String,
    pub span_kind: SpanKind,
    /// `STATUS_CODE_UNSET`, `STATUS_CODE_OK` or `STATUS_CODE_ERROR`, as the spanmetrics connector.
    pub status_code: &'static str,
    pub calls: u64,
    pub latency: LatencyHistogram,
}

/// One time bucket of RED figures for a service (or one of its operations).
#[derive(Debug, Clone, PartialEq)]
pub struct RedPoint {
    pub bucket_start_unix_nanos: u64,
    pub calls: u64,
    pub errors: u64,
    pub latency: LatencyHistogram,
}

/// Which spans of a service RED figures count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedScope<'a> {
    /// The requests the service serves: its SERVER and CONSUMER spans (what "calls" of a
    /// service means; its own outgoing calls are not requests to it).
    Entry,
    /// The calls it makes: its CLIENT and PRODUCER spans.
    Outgoing,
    /// Every span of one operation (span name), whatever its kind.
    Operation(&'a str),
}

/// What kind of neighbour a service-graph node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NodeKind {
    Service,
    /// A queue or topic, named from `messaging.system` / `messaging.destination.name`.
    MessagingSystem,
    /// A database, named from `db.system` / `db.namespace`.
    Database,
    /// A peer known only by `server.address` or `peer.service`.
    External,
}

/// An edge of the service graph: calls from `client` to `server` in a window.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceGraphEdge {
    pub client: String,
    pub client_kind: NodeKind,
    pub server: String,
    pub server_kind: NodeKind,
    pub connection: ConnectionType,
    pub calls: u64,
    pub failed_calls: u64,
    /// Latency seen by the server side (or the client side for virtual servers).
    pub latency: LatencyHistogram,
    /// Latency seen by the client side.
    pub client_latency: LatencyHistogram,
}

/// How the two nodes of an edge are connected, as the OpenTelemetry Collector's servicegraph
/// connector labels it (`connection_type`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConnectionType {
    /// A CLIENT span answered by a SERVER span (`""`).
    #[default]
    Direct,
    /// A PRODUCER span paired with a CONSUMER span (`"messaging_system"`).
    MessagingSystem,
    /// A client span with `db.system.name`/`db.system` (`"database"`).
    Database,
    /// A client or producer no span answered within the settle time (`"virtual_node"`).
    VirtualNode,
}

impl ConnectionType {
    /// The connector's label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionType::Direct => "",
            ConnectionType::MessagingSystem => "messaging_system",
            ConnectionType::Database => "database",
            ConnectionType::VirtualNode => "virtual_node",
        }
    }
}

/// Trace integrity counted per time bucket, for the integrity page's chart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegrityPoint {
    pub bucket_start_unix_nanos: u64,
    pub whole: u64,
    pub incomplete: u64,
    pub settling: u64,
}

/// Figures about the store itself, for `/metrics` and start-up logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub spans: u64,
    pub traces: u64,
    pub disk_bytes: u64,
}

/// A pattern the detector finds in a trace's spans when the trace settles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FindingKind {
    /// At least `min_repeats` consecutive sibling database spans with one statement class.
    NPlusOneDb,
    /// The same HTTP client call (method and URL with ids folded) repeated under one parent.
    RepeatedHttp,
    /// One message sent per item in a loop, where one batch call would do.
    UnbatchedSend,
}

impl FindingKind {
    pub const ALL: [FindingKind; 3] = [
        FindingKind::NPlusOneDb,
        FindingKind::RepeatedHttp,
        FindingKind::UnbatchedSend,
    ];

    /// The name the findings API and `verify --fail-on` use.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::NPlusOneDb => "n_plus_one_db",
            FindingKind::RepeatedHttp => "repeated_http",
            FindingKind::UnbatchedSend => "unbatched_send",
        }
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A finding kind that is not one of [`FindingKind::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not one of n_plus_one_db, repeated_http, unbatched_send")]
pub struct FindingKindParseError(pub String);

impl FromStr for FindingKind {
    type Err = FindingKindParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FindingKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| FindingKindParseError(s.to_owned()))
    }
}

/// One pattern found in one trace: the repeating spans under their parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub kind: FindingKind,
    pub trace_id: TraceId,
    pub parent_span_id: SpanId,
    /// The repeating spans, in start order.
    pub span_ids: Vec<SpanId>,
    /// The normalized statement, the HTTP call (`GET host/items/?`) or the destination sent to.
    pub statement: String,
    pub count: u64,
    /// Wall time the repeating spans cover together (overlaps counted once).
    pub duration_nanos: u64,
    /// The service that made the calls.
    pub service: String,
    pub start_unix_nanos: u64,
}

/// Which findings to list: those whose first repeating span started in the range.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FindingQuery {
    pub service: Option<String>,
    pub kind: Option<FindingKind>,
    pub trace_id: Option<TraceId>,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
}

/// The read side, shared by the Jaeger query API, the APM pages and `throughline verify`.
pub trait TraceReader: Send + Sync {
    /// Every span of a trace; empty when the store holds none.
    fn trace(&self, trace_id: TraceId) -> Result<Vec<StoredSpan>, StoreError>;
    fn services(&self) -> Result<Vec<String>, StoreError>;
    fn operations(&self, service: &str) -> Result<Vec<Operation>, StoreError>;
    fn find_traces(&self, query: &TraceQuery) -> Result<Vec<TraceSummary>, StoreError>;
    fn dependencies(
        &self,
        start_unix_nanos: u64,
        end_unix_nanos: u64,
    ) -> Result<Vec<ServiceGraphEdge>, StoreError>;
    /// Span metrics since the store was created (counters only grow, as Prometheus expects).
    fn span_metrics(&self) -> Result<Vec<SpanMetricsSeries>, StoreError>;
    /// RED figures of a service's entry spans, its outgoing calls or one operation of it, in
    /// buckets of `step_nanos`.
    fn red_series(
        &self,
        service: &str,
        scope: RedScope<'_>,
        start_unix_nanos: u64,
        end_unix_nanos: u64,
        step_nanos: u64,
    ) -> Result<Vec<RedPoint>, StoreError>;
    fn integrity_series(
        &self,
        start_unix_nanos: u64,
        end_unix_nanos: u64,
        step_nanos: u64,
    ) -> Result<Vec<IntegrityPoint>, StoreError>;
    fn stats(&self) -> Result<StoreStats, StoreError>;
    /// Findings of settled traces, most recent first.
    fn findings(&self, query: &FindingQuery) -> Result<Vec<Finding>, StoreError>;
    /// Statement classes, slow queries, pool pressure and database time of a window.
    fn database(&self, query: &crate::DatabaseQuery) -> Result<crate::DatabaseReport, StoreError>;
    /// Error spans of a window grouped by service, exception type and message, most first.
    fn errors(&self, query: &crate::ErrorQuery) -> Result<Vec<crate::ErrorGroup>, StoreError>;
    /// Stored OTLP metric series of one name (see [`crate::Store::metric_series`]).
    fn metric_series(
        &self,
        query: &crate::MetricQuery,
    ) -> Result<Vec<crate::MetricSeries>, StoreError>;
    /// The names of the stored OTLP metrics, of one service when given, sorted.
    fn metric_names(&self, service: Option<&str>) -> Result<Vec<String>, StoreError>;
    /// Log records matching the query, newest first.
    fn search_logs(&self, query: &crate::LogQuery) -> Result<Vec<crate::StoredLog>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_padded_and_in_either_case() {
        assert_eq!(
            "4BF92F3577B34DA6A3CE929D0E0E4736"
                .parse::<TraceId>()
                .map(|t| t.to_string()),
            Ok("4bf92f3577b34da6a3ce929d0e0e4736".to_owned())
        );
        assert_eq!(
            "abc".parse::<SpanId>(),
            Ok(SpanId([0, 0, 0, 0, 0, 0, 0x0a, 0xbc]))
        );
        assert_eq!("1".parse::<TraceId>().map(|t| t.0[15]), Ok(1));
    }

    #[test]
    fn non_ascii_ids_are_refused_not_a_panic() {
        let thirty_zeros_then_e = format!("{}é", "0".repeat(30));
        let fourteen_zeros_then_e = format!("{}é", "0".repeat(14));
        for input in [
            "é",
            "😀",
            "0é",
            thirty_zeros_then_e.as_str(),
            "ab\u{0}",
            " 1",
            "+1",
        ] {
            assert!(input.parse::<TraceId>().is_err(), "{input:?}");
            assert!(input.parse::<SpanId>().is_err(), "{input:?}");
        }
        assert!(fourteen_zeros_then_e.parse::<SpanId>().is_err());
        assert!("".parse::<TraceId>().is_err());
        assert!("0".repeat(33).parse::<TraceId>().is_err());
        assert!("0".repeat(17).parse::<SpanId>().is_err());
    }
}
