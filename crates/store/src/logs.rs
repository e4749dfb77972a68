//! The log index: every stored logs export (one raw record of the log) is a *log block* whose
//! time range, services, highest severity and trace ids are kept in memory, so that a search by
//! trace id reads only the blocks that hold that trace, and a search by service, severity or
//! time skips the blocks that cannot match.
//!
//! The index is rebuilt from the log records themselves when the store opens (the records are
//! what `write_logs` made durable), so it never disagrees with them; it lives and dies with its
//! segment, which is what retains logs exactly as long as spans.

use std::collections::HashMap;
use std::fs::File;
use std::sync::Arc;

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use prost::Message;

use crate::StoreError;
use crate::api::{
    AnyValue, ExportLogsServiceRequest, InstrumentationScope, KeyValue, Resource, SpanId, TraceId,
};
use crate::block::{self, trace_key};
use crate::facts::{IdHash, service_name_of};
use crate::segment;

/// Results when a [`LogQuery`] has a `limit` of 0.
pub const DEFAULT_LOG_LIMIT: usize = 100;

/// A log search. Every `Some` field narrows the result; records come newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogQuery {
    /// `service.name` of the record's resource.
    pub service: Option<String>,
    /// Records at this severity or above ([`Severity`]).
    pub min_severity: Option<Severity>,
    /// A case-insensitive substring of the body, an attribute's key or value.
    pub text: Option<String>,
    pub trace_id: Option<TraceId>,
    pub span_id: Option<SpanId>,
    /// The record's time (its `time_unix_nano`, else observed time, else arrival) is in range.
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    /// At most this many; 0 means [`DEFAULT_LOG_LIMIT`].
    pub limit: usize,
}

/// The six severity ranges of OTLP's `SeverityNumber` (each spans four numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Trace = 1,
    Debug = 5,
    Info = 9,
    Warn = 13,
    Error = 17,
    Fatal = 21,
}

impl Severity {
    pub const ALL: [Severity; 6] = [
        Severity::Trace,
        Severity::Debug,
        Severity::Info,
        Severity::Warn,
        Severity::Error,
        Severity::Fatal,
    ];

    /// The lowest `SeverityNumber` of the range.
    pub fn number(self) -> i32 {
        self as i32
    }

    /// The range a `SeverityNumber` (1..=24) is in.
    pub fn of_number(n: i32) -> Option<Severity> {
        Severity::ALL
            .into_iter()
            .rev()
            .find(|s| n >= s.number() && n <= 24)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Trace => "TRACE",
            Severity::Debug => "DEBUG",
            Severity::Info => "INFO",
            Severity::Warn => "WARN",
            Severity::Error => "ERROR",
            Severity::Fatal => "FATAL",
        }
    }

    /// A severity name in any case (`warning` and `critical` as Python's logging names them).
    pub fn parse(name: &str) -> Option<Severity> {
        let upper = name.trim().to_ascii_uppercase();
        let base = upper.trim_end_matches(|c: char| c.is_ascii_digit());
        Some(match base {
            "TRACE" => Severity::Trace,
            "DEBUG" => Severity::Debug,
            "INFO" | "INFORMATION" => Severity::Info,
            "WARN" | "WARNING" => Severity::Warn,
            "ERROR" | "ERR" => Severity::Error,
            "FATAL" | "CRITICAL" => Severity::Fatal,
            _ => return None,
        })
    }
}

/// A record's severity number: its `severity_number`, else one read from `severity_text`, else 0.
pub fn severity_number(record: &LogRecord) -> i32 {
    if (1..=24).contains(&record.severity_number) {
        return record.severity_number;
    }
    Severity::parse(&record.severity_text).map_or(0, Severity::number)
}

/// The time a record is filed under: when it happened, else when it was observed, else when it
/// arrived.
pub fn record_time(record: &LogRecord, arrival_unix_nanos: u64) -> u64 {
    match (record.time_unix_nano, record.observed_time_unix_nano) {
        (t, _) if t != 0 => t,
        (_, o) if o != 0 => o,
        _ => arrival_unix_nanos,
    }
}

/// One log record as stored, with the resource and scope it was sent under.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredLog {
    /// `service.name` of the resource (`unknown_service` when absent).
    pub service_name: String,
    pub resource: Arc<Resource>,
    pub scope: Option<InstrumentationScope>,
    pub record: LogRecord,
    /// [`record_time`] of the record.
    pub time_unix_nanos: u64,
    pub arrival_unix_nanos: u64,
}

impl StoredLog {
    pub fn trace_id(&self) -> Option<TraceId> {
        TraceId::from_slice(&self.record.trace_id).filter(|t| t.0 != [0; 16])
    }
    pub fn span_id(&self) -> Option<SpanId> {
        SpanId::from_slice(&self.record.span_id).filter(|s| s.0 != [0; 8])
    }
    /// The severity as text: the record's own text, else its number's range name.
    pub fn severity_text(&self) -> String {
        if !self.record.severity_text.is_empty() {
            return self.record.severity_text.clone();
        }
        Severity::of_number(severity_number(&self.record))
            .map_or("UNSPECIFIED", Severity::as_str)
            .to_owned()
    }
    /// The body as text (a string body as is, other values as JSON-ish text).
    pub fn body_text(&self) -> String {
        self.record
            .body
            .as_ref()
            .map(any_value_text)
            .unwrap_or_default()
    }
}

/// An attribute or body value as text: strings as they are, the rest as JSON would write them.
pub fn any_value_text(value: &AnyValue) -> String {
    match &value.value {
        None => String::new(),
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        Some(Value::BytesValue(b)) => hex::encode(b),
        Some(Value::ArrayValue(a)) => {
            let items: Vec<String> = a.values.iter().map(any_value_text).collect();
            format!("[{}]", items.join(", "))
        }
        Some(Value::KvlistValue(kv)) => {
            let items: Vec<String> = kv.values.iter().map(key_value_text).collect();
            format!("{{{}}}", items.join(", "))
        }
        // An index into a dictionary this store does not keep (profiles only).
        Some(_) => String::new(),
    }
}

fn key_value_text(kv: &KeyValue) -> String {
    format!(
        "{}={}",
        kv.key,
        kv.value.as_ref().map(any_value_text).unwrap_or_default()
    )
}

/// What the index keeps of one logs export.
#[derive(Debug, Clone)]
pub struct LogBlock {
    pub offset: u64,
    pub len: u32,
    pub arrival: u64,
    pub min_time: u64,
    pub max_time: u64,
    /// Interned service names.
    pub services: Vec<u32>,
    pub max_severity: i32,
    /// Whether any record carries a span id (a span-id search skips the rest).
    pub has_span_ids: bool,
    pub records: u32,
}

/// The log index of one segment.
#[derive(Debug, Default)]
pub struct LogIndex {
    pub blocks: Vec<LogBlock>,
    /// Trace key → the log blocks holding it, while the segment is the head.
    head_keys: HashMap<u64, Vec<u32>, IdHash>,
    /// Sorted (trace key, block) pairs once sealed.
    sealed_keys: Vec<(u64, u32)>,
    sealed: bool,
}

impl LogIndex {
    pub fn records(&self) -> u64 {
        self.blocks.iter().map(|b| u64::from(b.records)).sum()
    }

    /// Adds a block with the trace keys of its records.
    pub fn add(&mut self, block: LogBlock, keys: &[u64]) {
        let number = self.blocks.len() as u32;
        self.blocks.push(block);
        for key in keys {
            if self.sealed {
                self.sealed_keys.push((*key, number));
            } else {
                self.head_keys.entry(*key).or_default().push(number);
            }
        }
        if self.sealed {
            self.sealed_keys.sort_unstable();
        }
    }

    /// Turns the head's map into a sorted array (a few bytes per trace and block).
    pub fn seal(&mut self) {
        let mut pairs: Vec<(u64, u32)> = std::mem::take(&mut self.head_keys)
            .into_iter()
            .flat_map(|(k, blocks)| blocks.into_iter().map(move |b| (k, b)))
            .collect();
        pairs.extend(std::mem::take(&mut self.sealed_keys));
        pairs.sort_unstable();
        pairs.dedup();
        pairs.shrink_to_fit();
        self.sealed_keys = pairs;
        self.blocks.shrink_to_fit();
        self.sealed = true;
    }

    /// The numbers of the blocks that may hold records of the trace with this key.
    pub fn blocks_of(&self, key: u64, out: &mut Vec<u32>) {
        if let Some(numbers) = self.head_keys.get(&key) {
            out.extend_from_slice(numbers);
        }
        let from = self.sealed_keys.partition_point(|(k, _)| *k < key);
        out.extend(
            self.sealed_keys[from..]
                .iter()
                .take_while(|(k, _)| *k == key)
                .map(|(_, b)| *b),
        );
    }
}

/// What ingest learns of a logs export before it is written: its block (offset and length are
/// filled in once written) and trace keys.
#[derive(Debug)]
pub struct LogFacts {
    pub min_time: u64,
    pub max_time: u64,
    pub services: Vec<String>,
    pub max_severity: i32,
    pub has_span_ids: bool,
    pub records: u32,
    pub keys: Vec<u64>,
}

impl LogFacts {
    pub fn of(request: &ExportLogsServiceRequest, arrival: u64) -> LogFacts {
        let mut facts = LogFacts {
            min_time: u64::MAX,
            max_time: 0,
            services: Vec::new(),
            max_severity: 0,
            has_span_ids: false,
            records: 0,
            keys: Vec::new(),
        };
        for rl in &request.resource_logs {
            let service = rl
                .resource
                .as_ref()
                .map_or(crate::facts::UNKNOWN_SERVICE, service_name_of);
            let mut any = false;
            for record in rl.scope_logs.iter().flat_map(|s| &s.log_records) {
                any = true;
                facts.records += 1;
                let t = record_time(record, arrival);
                facts.min_time = facts.min_time.min(t);
                facts.max_time = facts.max_time.max(t);
                facts.max_severity = facts.max_severity.max(severity_number(record));
                facts.has_span_ids |= record.span_id.len() == 8;
                if let Ok(id) = <[u8; 16]>::try_from(record.trace_id.as_slice())
                    && id != [0; 16]
                {
                    facts.keys.push(trace_key(&id));
                }
            }
            if any && !facts.services.iter().any(|s| s == service) {
                facts.services.push(service.to_owned());
            }
        }
        if facts.records == 0 {
            facts.min_time = arrival;
            facts.max_time = arrival;
        }
        facts.keys.sort_unstable();
        facts.keys.dedup();
        facts
    }
}

/// A log block to read, found under the lock and read after it is released.
#[derive(Debug, Clone)]
pub struct LogBlockRef {
    pub file: Arc<File>,
    pub offset: u64,
    pub len: u32,
    pub max_time: u64,
}

/// Whether a block can hold records the query wants (`service` already interned: `None` inside
/// means the service is unknown, so nothing matches).
pub fn block_may_match(b: &LogBlock, q: &LogQuery, service: Option<Option<u32>>) -> bool {
    if b.max_time < q.start_unix_nanos || b.min_time > q.end_unix_nanos {
        return false;
    }
    match service {
        Some(Some(id)) if !b.services.contains(&id) => return false,
        Some(None) => return false,
        _ => {}
    }
    if q.min_severity.is_some_and(|s| b.max_severity < s.number()) {
        return false;
    }
    q.span_id.is_none() || b.has_span_ids
}

/// Reads a log block and adds the records the query wants to `out`.
pub fn read_block(
    r: &LogBlockRef,
    q: &LogQuery,
    out: &mut Vec<StoredLog>,
) -> Result<(), StoreError> {
    let payload = segment::read_record(&r.file, r.offset, r.len)?;
    let (_, arrival, bytes) = block::parse_raw(&payload).map_err(StoreError::corrupt)?;
    let request = ExportLogsServiceRequest::decode(&bytes[..]).map_err(StoreError::corrupt)?;
    let needle = q.text.as_deref().map(str::to_lowercase);
    for rl in request.resource_logs {
        let resource = Arc::new(rl.resource.unwrap_or_default());
        let service = service_name_of(&resource).to_owned();
        if q.service.as_ref().is_some_and(|s| *s != service) {
            continue;
        }
        for sl in rl.scope_logs {
            for record in sl.log_records {
                let time = record_time(&record, arrival);
                if time < q.start_unix_nanos || time > q.end_unix_nanos {
                    continue;
                }
                if q.min_severity
                    .is_some_and(|s| severity_number(&record) < s.number())
                {
                    continue;
                }
                if q.trace_id.is_some_and(|t| record.trace_id != t.0) {
                    continue;
                }
                if q.span_id.is_some_and(|s| record.span_id != s.0) {
                    continue;
                }
                if let Some(needle) = &needle
                    && !text_matches(&record, needle)
                {
                    continue;
                }
                out.push(StoredLog {
                    service_name: service.clone(),
                    resource: Arc::clone(&resource),
                    scope: sl.scope.clone(),
                    record,
                    time_unix_nanos: time,
                    arrival_unix_nanos: arrival,
                });
            }
        }
    }
    Ok(())
}

/// Whether the lower-case `needle` is in the body or an attribute's key or value.
fn text_matches(record: &LogRecord, needle: &str) -> bool {
    let has = |s: &str| s.to_lowercase().contains(needle);
    record
        .body
        .as_ref()
        .is_some_and(|b| has(&any_value_text(b)))
        || record
            .attributes
            .iter()
            .any(|kv| has(&kv.key) || kv.value.as_ref().is_some_and(|v| has(&any_value_text(v))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_parse_by_name_and_number() {
        assert_eq!(Severity::parse("warning"), Some(Severity::Warn));
        assert_eq!(Severity::parse("ERROR2"), Some(Severity::Error));
        assert_eq!(Severity::parse("critical"), Some(Severity::Fatal));
        assert_eq!(Severity::parse("loud"), None);
        assert_eq!(Severity::of_number(12), Some(Severity::Info));
        assert_eq!(Severity::of_number(13), Some(Severity::Warn));
        assert_eq!(Severity::of_number(0), None);
        assert_eq!(Severity::of_number(25), None);
        let text_only = LogRecord {
            severity_text: "Error".into(),
            ..Default::default()
        };
        assert_eq!(severity_number(&text_only), 17);
    }

    #[test]
    fn an_index_finds_a_trace_before_and_after_sealing() {
        let mut index = LogIndex::default();
        let block = |n| LogBlock {
            offset: n,
            len: 1,
            arrival: 1,
            min_time: 1,
            max_time: 2,
            services: vec![0],
            max_severity: 9,
            has_span_ids: false,
            records: 1,
        };
        index.add(block(0), &[7, 9]);
        index.add(block(1), &[9]);
        let mut out = Vec::new();
        index.blocks_of(9, &mut out);
        assert_eq!(out, vec![0, 1]);
        index.seal();
        index.add(block(2), &[9]);
        out.clear();
        index.blocks_of(9, &mut out);
        assert_eq!(out, vec![0, 1, 2]);
        out.clear();
        index.blocks_of(8, &mut out);
        assert!(out.is_empty());
        assert_eq!(index.records(), 3);
    }
}
