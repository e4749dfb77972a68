//! The processors every admitted export passes through, in this fixed order, before anything is
//! stored or queued for upstream:
//!
//! 1. **Memory bound** ([`IngestLimits`](crate::IngestLimits), at admission) — refuses with
//!    retry info beyond the in-flight bytes.
//! 2. **Redaction** ([`Redaction`]) — attribute values under secret-like keys
//!    (`authorization`, `cookie`, `password`, … by default) are replaced by `[REDACTED]`;
//!    e-mail addresses, card numbers (Luhn-checked 13–19 digits) and `Bearer` tokens inside any
//!    string value are masked. Applied to resource, span, event and link attributes, and to log
//!    records' attributes and bodies (nested maps and arrays too), and to metric data points'
//!    attributes. Every replacement is counted by rule.
//! 3. **Resource attributes** ([`ResourceEdits`]) — `set` overwrites, `insert` adds when absent
//!    (`cx.application.name`, `deployment.environment`, as the seeds' collectors do).
//! 4. **Tail sampling** ([`TailSampler`](crate::tail_sampling::TailSampler), when configured)
//!    — trace exports wait in a durable spool until their trace settles; kept spans go on to
//!    the store and the export queues, sampled-out spans nowhere.
//! 5. **Batching toward upstream** happens in the export queue (consecutive requests sent as
//!    one).

use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::resource::v1::Resource;
use throughline_store::{
    ExportLogsServiceRequest, ExportMetricsServiceRequest, ExportTraceServiceRequest,
};

/// What replaces a redacted value or substring.
pub const MASK: &str = "[REDACTED]";

/// The keys redacted by default: any attribute key containing one of these (ignoring case).
pub const DEFAULT_SECRET_KEYS: [&str; 8] = [
    "authorization",
    "cookie",
    "password",
    "passwd",
    "secret",
    "api_key",
    "apikey",
    "x-api-key",
];

/// Which rules redaction applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redaction {
    /// Lowercase substrings of attribute keys whose whole value is masked.
    pub secret_keys: Vec<String>,
    pub emails: bool,
    pub card_numbers: bool,
    pub bearer_tokens: bool,
}

impl Default for Redaction {
    fn default() -> Self {
        Self {
            secret_keys: DEFAULT_SECRET_KEYS
                .iter()
                .map(|k| (*k).to_owned())
                .collect(),
            emails: true,
            card_numbers: true,
            bearer_tokens: true,
        }
    }
}

/// Resource attributes to set (overwrite) or insert (when absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceEdits {
    pub set: Vec<(String, String)>,
    pub insert: Vec<(String, String)>,
}

/// Counters of what the processors changed.
#[derive(Debug, Default)]
pub struct ProcessorFigures {
    pub redacted_keys: AtomicU64,
    pub redacted_emails: AtomicU64,
    pub redacted_cards: AtomicU64,
    pub redacted_bearer: AtomicU64,
}

/// The configured processors (redaction off and no edits: a no-op).
#[derive(Debug, Default)]
pub struct Processors {
    pub redaction: Option<Redaction>,
    pub resource: ResourceEdits,
    pub figures: ProcessorFigures,
}

impl Processors {
    pub fn is_noop(&self) -> bool {
        self.redaction.is_none() && self.resource == ResourceEdits::default()
    }

    pub fn traces(&self, request: &mut ExportTraceServiceRequest) {
        for rs in &mut request.resource_spans {
            self.resource(rs.resource.get_or_insert_with(Resource::default));
            for ss in &mut rs.scope_spans {
                for span in &mut ss.spans {
                    self.attributes(&mut span.attributes);
                    for event in &mut span.events {
                        self.attributes(&mut event.attributes);
                    }
                    for link in &mut span.links {
                        self.attributes(&mut link.attributes);
                    }
                    if let Some(status) = &mut span.status {
                        self.string(&mut status.message);
                    }
                }
            }
        }
    }

    pub fn logs(&self, request: &mut ExportLogsServiceRequest) {
        for rl in &mut request.resource_logs {
            self.resource(rl.resource.get_or_insert_with(Resource::default));
            for sl in &mut rl.scope_logs {
                for record in &mut sl.log_records {
                    self.attributes(&mut record.attributes);
                    if let Some(body) = &mut record.body {
                        self.value(body);
                    }
                }
            }
        }
    }

    pub fn metrics(&self, request: &mut ExportMetricsServiceRequest) {
        for rm in &mut request.resource_metrics {
            self.resource(rm.resource.get_or_insert_with(Resource::default));
            for sm in &mut rm.scope_metrics {
                for metric in &mut sm.metrics {
                    match &mut metric.data {
                        Some(Data::Gauge(g)) => g
                            .data_points
                            .iter_mut()
                            .for_each(|p| self.attributes(&mut p.attributes)),
                        Some(Data::Sum(s)) => s
                            .data_points
                            .iter_mut()
                            .for_each(|p| self.attributes(&mut p.attributes)),
                        Some(Data::Histogram(h)) => h
                            .data_points
                            .iter_mut()
                            .for_each(|p| self.attributes(&mut p.attributes)),
                        Some(Data::ExponentialHistogram(h)) => h
                            .data_points
                            .iter_mut()
                            .for_each(|p| self.attributes(&mut p.attributes)),
                        Some(Data::Summary(s)) => s
                            .data_points
                            .iter_mut()
                            .for_each(|p| self.attributes(&mut p.attributes)),
                        None => {}
                    }
                }
            }
        }
    }

    fn resource(&self, resource: &mut Resource) {
        self.attributes(&mut resource.attributes);
        for (key, value) in &self.resource.set {
            let value = string_value(value);
            match resource.attributes.iter_mut().find(|kv| &kv.key == key) {
                Some(kv) => kv.value = Some(value),
                None => resource.attributes.push(KeyValue {
                    key: key.clone(),
                    value: Some(value),
                    ..KeyValue::default()
                }),
            }
        }
        for (key, value) in &self.resource.insert {
            if !resource.attributes.iter().any(|kv| &kv.key == key) {
                resource.attributes.push(KeyValue {
                    key: key.clone(),
                    value: Some(string_value(value)),
                    ..KeyValue::default()
                });
            }
        }
    }

    fn attributes(&self, attributes: &mut [KeyValue]) {
        let Some(rules) = &self.redaction else { return };
        for kv in attributes {
            let key = kv.key.to_ascii_lowercase();
            if rules.secret_keys.iter().any(|k| key.contains(k.as_str())) {
                if kv.value.as_ref().is_none_or(|v| !is_mask(v)) {
                    kv.value = Some(string_value(MASK));
                    self.figures.redacted_keys.fetch_add(1, Ordering::Relaxed);
                }
                continue;
            }
            if let Some(value) = &mut kv.value {
                self.value(value);
            }
        }
    }

    fn value(&self, value: &mut AnyValue) {
        match &mut value.value {
            Some(Value::StringValue(s)) => self.string(s),
            Some(Value::ArrayValue(array)) => {
                for v in &mut array.values {
                    self.value(v);
                }
            }
            Some(Value::KvlistValue(list)) => self.attributes(&mut list.values),
            _ => {}
        }
    }

    fn string(&self, s: &mut String) {
        let Some(rules) = &self.redaction else { return };
        if rules.bearer_tokens {
            let n = mask_bearer(s);
            self.figures.redacted_bearer.fetch_add(n, Ordering::Relaxed);
        }
        if rules.emails {
            let n = mask_emails(s);
            self.figures.redacted_emails.fetch_add(n, Ordering::Relaxed);
        }
        if rules.card_numbers {
            let n = mask_cards(s);
            self.figures.redacted_cards.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// The figures in the Prometheus text format.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write as _;
        let name = "throughline_collector_redacted_values_total";
        let _ = writeln!(
            out,
            "# HELP {name} Values or substrings masked before storing or forwarding, by rule."
        );
        let _ = writeln!(out, "# TYPE {name} counter");
        for (rule, counter) in [
            ("secret_key", &self.figures.redacted_keys),
            ("email", &self.figures.redacted_emails),
            ("card_number", &self.figures.redacted_cards),
            ("bearer_token", &self.figures.redacted_bearer),
        ] {
            let _ = writeln!(
                out,
                "{name}{{rule=\"{rule}\"}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
    }
}

fn is_mask(value: &AnyValue) -> bool {
    matches!(&value.value, Some(Value::StringValue(s)) if s == MASK)
}

fn string_value(s: &str) -> AnyValue {
    AnyValue {
        value: Some(Value::StringValue(s.to_owned())),
    }
}

fn is_email_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"._%+-".contains(&b)
}

fn is_domain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'.'
}

/// Masks every `local@domain.tld` in `s`; returns how many.
pub fn mask_emails(s: &mut String) -> u64 {
    if !s.contains('@') {
        return 0;
    }
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut count = 0;
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'@' {
            let mut start = i;
            while start > copied && is_email_local(bytes[start - 1]) {
                start -= 1;
            }
            let mut end = i + 1;
            while end < bytes.len() && is_domain(bytes[end]) {
                end += 1;
            }
            // Trailing dots end a sentence, not a domain.
            while end > i + 1 && bytes[end - 1] == b'.' {
                end -= 1;
            }
            let domain = &s[i + 1..end];
            let valid = start < i
                && domain.contains('.')
                && !domain.starts_with('.')
                && domain.rsplit('.').next().is_some_and(|tld| tld.len() >= 2);
            if valid {
                out.push_str(&s[copied..start]);
                out.push_str(MASK);
                copied = end;
                count += 1;
                i = end;
                continue;
            }
        }
        i += 1;
    }
    if count > 0 {
        out.push_str(&s[copied..]);
        *s = out;
    }
    count
}

fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(*d);
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Masks every Luhn-valid run of 13–19 digits (spaces or dashes between them allowed); returns
/// how many.
pub fn mask_cards(s: &mut String) -> u64 {
    let bytes = s.as_bytes();
    if bytes.iter().filter(|b| b.is_ascii_digit()).count() < 13 {
        return 0;
    }
    let mut out = String::with_capacity(s.len());
    let mut copied = 0;
    let mut count = 0;
    let mut i = 0;
    while i < bytes.len() {
        let boundary = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        if bytes[i].is_ascii_digit() && boundary {
            let mut digits = Vec::new();
            let mut end = i;
            let mut j = i;
            while j < bytes.len() {
                if bytes[j].is_ascii_digit() {
                    digits.push(bytes[j] - b'0');
                    end = j + 1;
                } else if !(bytes[j] == b' ' || bytes[j] == b'-') || digits.len() >= 19 {
                    break;
                }
                j += 1;
            }
            let clean_end = end == bytes.len() || !bytes[end].is_ascii_alphanumeric();
            if (13..=19).contains(&digits.len()) && clean_end && luhn(&digits) {
                out.push_str(&s[copied..i]);
                out.push_str(MASK);
                copied = end;
                count += 1;
                i = end;
                continue;
            }
            i = end.max(i + 1);
            continue;
        }
        i += 1;
    }
    if count > 0 {
        out.push_str(&s[copied..]);
        *s = out;
    }
    count
}

/// Masks the token after every `Bearer ` (any case); returns how many.
pub fn mask_bearer(s: &mut String) -> u64 {
    let lower = s.to_ascii_lowercase();
    if !lower.contains("bearer ") {
        return 0;
    }
    let mut out = String::with_capacity(s.len());
    let mut copied = 0;
    let mut count = 0;
    let mut search = 0;
    while let Some(found) = lower[search..].find("bearer ") {
        let token_start = search + found + "bearer ".len();
        let token_end = s[token_start..]
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == ',')
            .map_or(s.len(), |n| token_start + n);
        if token_end > token_start && &s[token_start..token_end] != MASK {
            out.push_str(&s[copied..token_start]);
            out.push_str(MASK);
            copied = token_end;
            count += 1;
        }
        search = token_end.max(token_start);
    }
    if count > 0 {
        out.push_str(&s[copied..]);
        *s = out;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(f: fn(&mut String) -> u64, input: &str) -> (String, u64) {
        let mut s = input.to_owned();
        let n = f(&mut s);
        (s, n)
    }

    #[test]
    fn emails_are_masked_in_running_text() {
        assert_eq!(
            masked(
                mask_emails,
                "sent to jane.doe+x@example.co.uk. And bob@corp.io"
            ),
            ("sent to [REDACTED]. And [REDACTED]".to_owned(), 2)
        );
        assert_eq!(
            masked(mask_emails, "user@localhost and @handle"),
            ("user@localhost and @handle".to_owned(), 0)
        );
    }

    #[test]
    fn only_luhn_valid_card_numbers_are_masked() {
        assert_eq!(
            masked(mask_cards, "card 4111 1111 1111 1111 ok"),
            ("card [REDACTED] ok".to_owned(), 1)
        );
        assert_eq!(
            masked(mask_cards, "4111-1111-1111-1111"),
            ("[REDACTED]".to_owned(), 1)
        );
        assert_eq!(
            masked(mask_cards, "order 1234567890123 ts"),
            ("order 1234567890123 ts".to_owned(), 0)
        );
        assert_eq!(
            masked(mask_cards, "trace 4111111111111111ab"),
            ("trace 4111111111111111ab".to_owned(), 0)
        );
    }

    #[test]
    fn bearer_tokens_are_masked_keeping_the_scheme() {
        assert_eq!(
            masked(
                mask_bearer,
                "calling with Authorization: Bearer abc.def-123, then bearer xyz"
            ),
            (
                "calling with Authorization: Bearer [REDACTED], then bearer [REDACTED]".to_owned(),
                2
            )
        );
    }

    #[test]
    fn secret_keys_are_masked_and_resource_edits_apply() {
        let processors = Processors {
            redaction: Some(Redaction::default()),
            resource: ResourceEdits {
                set: vec![("deployment.environment".into(), "prod".into())],
                insert: vec![
                    ("cx.application.name".into(), "shop".into()),
                    ("service.name".into(), "x".into()),
                ],
            },
            ..Processors::default()
        };
        let mut resource = Resource {
            attributes: vec![
                KeyValue {
                    key: "service.name".into(),
                    value: Some(string_value("api")),
                    ..KeyValue::default()
                },
                KeyValue {
                    key: "deployment.environment".into(),
                    value: Some(string_value("dev")),
                    ..KeyValue::default()
                },
                KeyValue {
                    key: "http.request.header.Authorization".into(),
                    value: Some(string_value("Basic dXNlcg==")),
                    ..KeyValue::default()
                },
            ],
            ..Resource::default()
        };
        processors.resource(&mut resource);
        let get = |k: &str| {
            resource
                .attributes
                .iter()
                .find(|kv| kv.key == k)
                .and_then(|kv| match &kv.value {
                    Some(AnyValue {
                        value: Some(Value::StringValue(s)),
                    }) => Some(s.clone()),
                    _ => None,
                })
        };
        assert_eq!(
            get("service.name").as_deref(),
            Some("api"),
            "insert keeps what is there"
        );
        assert_eq!(
            get("deployment.environment").as_deref(),
            Some("prod"),
            "set overwrites"
        );
        assert_eq!(get("cx.application.name").as_deref(), Some("shop"));
        assert_eq!(
            get("http.request.header.Authorization").as_deref(),
            Some(MASK)
        );
        assert_eq!(processors.figures.redacted_keys.load(Ordering::Relaxed), 1);
    }
}
