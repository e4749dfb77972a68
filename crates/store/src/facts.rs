//! The few facts of a span that ingest derives everything from, read once from the OTLP model.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_semantic_conventions::attribute as semconv;
use opentelemetry_semantic_conventions::resource as semres;

use crate::api::{AnyValue, FindingKind, KeyValue, NodeKind, Resource, Span, SpanKind};
use crate::encoded::{EncodedSpan, LiteAttributes, LiteValue};
use crate::findings::SpanPattern;
use crate::statement;

/// `service.name` when a resource has none, as the SDKs name it.
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// Ids are kept as integers inside the store: a trace id as `u128`, a span id as `u64`.
pub fn trace_u128(bytes: &[u8]) -> u128 {
    let mut a = [0u8; 16];
    if bytes.len() == 16 {
        a.copy_from_slice(bytes);
    }
    u128::from_be_bytes(a)
}

/// A span id as `u64`; 0 for an absent (empty) or malformed id.
pub fn span_u64(bytes: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    if bytes.len() == 8 {
        a.copy_from_slice(bytes);
    }
    u64::from_be_bytes(a)
}

/// What ingest needs of one span.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanFacts {
    pub trace_id: u128,
    pub span_id: u64,
    /// 0 for a root span.
    pub parent_span_id: u64,
    pub service: Arc<str>,
    pub name: String,
    pub kind: i32,
    pub status_code: i32,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    /// Spans this one links to (`FOLLOWS_FROM`), as (trace id, span id).
    pub links: Vec<(u128, u64)>,
    /// The virtual node this span calls when no instrumented peer answers.
    pub peer: Option<(NodeKind, String)>,
    /// What the span could repeat in a loop (database, HTTP client and producer spans), when
    /// the findings detector is on.
    pub pattern: Option<SpanPattern>,
}

impl SpanFacts {
    /// The facts of a span that is no longer needed (its name is moved out, not copied).
    pub fn extract(service: &Arc<str>, trace_id: u128, span: &mut Span, detect: bool) -> Self {
        let (peer, pattern) = peer_and_pattern(span.kind, &span.name, &span.attributes, detect);
        let links = span.links.iter().map(|l| (&l.trace_id[..], &l.span_id[..]));
        Self {
            name: std::mem::take(&mut span.name),
            status_code: span.status.as_ref().map_or(0, |s| s.code),
            links: linked(links),
            peer,
            pattern,
            ..Self::head(
                service,
                trace_id,
                &span.span_id,
                &span.parent_span_id,
                span.kind,
            )
            .timed(span.start_time_unix_nano, span.end_time_unix_nano)
        }
    }

    /// The facts of a span read in place ([`crate::encoded`]): the same as
    /// [`extract`](Self::extract) gives for that span decoded.
    pub fn extract_lite(
        service: &Arc<str>,
        trace_id: u128,
        span: &EncodedSpan,
        detect: bool,
    ) -> Self {
        let view = &span.view;
        let name = span.name();
        let (peer, pattern) = peer_and_pattern(view.kind, name, &span.attributes(), detect);
        let links = (view.links.iter()).map(|l| (span.get(l.trace_id), span.get(l.span_id)));
        Self {
            name: name.to_owned(),
            status_code: view.status.as_ref().map_or(0, |s| s.code),
            links: linked(links),
            peer,
            pattern,
            ..Self::head(
                service,
                trace_id,
                span.span_id(),
                span.parent_span_id(),
                view.kind,
            )
            .timed(view.start_time_unix_nano, view.end_time_unix_nano)
        }
    }

    /// The ids, service and kind; everything else empty.
    fn head(service: &Arc<str>, trace_id: u128, span_id: &[u8], parent: &[u8], kind: i32) -> Self {
        Self {
            trace_id,
            span_id: span_u64(span_id),
            parent_span_id: span_u64(parent),
            service: Arc::clone(service),
            name: String::new(),
            kind,
            status_code: 0,
            start_unix_nanos: 0,
            end_unix_nanos: 0,
            links: Vec::new(),
            peer: None,
            pattern: None,
        }
    }

    fn timed(mut self, start: u64, end: u64) -> Self {
        self.start_unix_nanos = start;
        self.end_unix_nanos = end;
        self
    }

    pub fn is_error(&self) -> bool {
        self.status_code == StatusCode::Error as i32
    }

    pub fn duration_nanos(&self) -> u64 {
        self.end_unix_nanos.saturating_sub(self.start_unix_nanos)
    }
}

/// The (trace id, span id) pairs of links with well-formed ids.
fn linked<'a>(links: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> Vec<(u128, u64)> {
    links
        .filter(|(trace, span)| trace.len() == 16 && span.len() == 8)
        .map(|(trace, span)| (trace_u128(trace), span_u64(span)))
        .collect()
}

/// The virtual peer a span calls and, when the findings detector is on, what it could repeat.
fn peer_and_pattern<A: Attributes + ?Sized>(
    kind: i32,
    name: &str,
    attributes: &A,
    detect: bool,
) -> (Option<(NodeKind, String)>, Option<SpanPattern>) {
    let calls_out = kind == SpanKind::Client as i32 || kind == SpanKind::Producer as i32;
    let peer = if calls_out {
        virtual_peer(attributes)
    } else if kind == SpanKind::Consumer as i32 {
        // The queue a CONSUMER span reads: the service graph's node before the consumer.
        messaging_node(attributes)
    } else {
        None
    };
    let pattern = if detect {
        pattern_of(kind, name, attributes, peer.as_ref())
    } else {
        None
    };
    (peer, pattern)
}

/// A span's attributes as ingest reads them: decoded ([`KeyValue`]) or in place
/// ([`LiteAttributes`]).
pub trait Attributes {
    /// The string value of attribute `key`, when present and a string.
    fn string(&self, key: &str) -> Option<&str>;
    /// The value of attribute `key` in its string form ([`value_string`]).
    fn string_form(&self, key: &str) -> Option<String>;
}

impl Attributes for [KeyValue] {
    fn string(&self, key: &str) -> Option<&str> {
        string_attribute(self, key)
    }
    fn string_form(&self, key: &str) -> Option<String> {
        self.iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
            .and_then(value_string)
    }
}

impl Attributes for Vec<KeyValue> {
    fn string(&self, key: &str) -> Option<&str> {
        self[..].string(key)
    }
    fn string_form(&self, key: &str) -> Option<String> {
        self[..].string_form(key)
    }
}

impl Attributes for LiteAttributes<'_> {
    fn string(&self, key: &str) -> Option<&str> {
        match self.get(key)? {
            LiteValue::StringValue(s) => Some(self.text(*s)),
            _ => None,
        }
    }
    fn string_form(&self, key: &str) -> Option<String> {
        match self.get(key)? {
            LiteValue::StringValue(s) => Some(self.text(*s).to_owned()),
            LiteValue::BoolValue(b) => Some(b.to_string()),
            LiteValue::IntValue(i) => Some(i.to_string()),
            LiteValue::DoubleValue(d) => Some(d.to_string()),
            LiteValue::BytesValue(b) => Some(hex::encode(self.bytes(*b))),
            _ => None,
        }
    }
}

/// The string form of an attribute value, as tag search compares it (`None` for arrays/maps).
pub fn value_string(value: &AnyValue) -> Option<String> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    match value.value.as_ref()? {
        Value::StringValue(s) => Some(s.clone()),
        Value::BoolValue(b) => Some(b.to_string()),
        Value::IntValue(i) => Some(i.to_string()),
        Value::DoubleValue(d) => Some(d.to_string()),
        Value::BytesValue(b) => Some(hex::encode(b)),
        _ => None,
    }
}

/// The string value of attribute `key`, when present and a string.
pub fn string_attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        }
    })
}

/// `service.name` of a resource, or [`UNKNOWN_SERVICE`].
pub fn service_name_of(resource: &Resource) -> &str {
    match string_attribute(&resource.attributes, semres::SERVICE_NAME) {
        Some(s) if !s.is_empty() => s,
        _ => UNKNOWN_SERVICE,
    }
}

/// The virtual node a client or producer span talks to: a database, a messaging destination,
/// or a peer known only by name.
pub fn virtual_peer<A: Attributes + ?Sized>(attributes: &A) -> Option<(NodeKind, String)> {
    let db = db_system(attributes);
    if let Some(db) = db {
        let name = match attributes.string(semconv::DB_NAMESPACE) {
            Some(ns) if !ns.is_empty() => [db, "/", ns].concat(),
            _ => db.to_owned(),
        };
        return Some((NodeKind::Database, name));
    }
    if let Some(node) = messaging_node(attributes) {
        return Some(node);
    }
    // `peer.service` is deprecated in favour of `service.peer.name`; SDKs still send it.
    #[allow(deprecated)]
    let peer = attributes.string(semconv::PEER_SERVICE);
    peer.or_else(|| attributes.string(semconv::SERVICE_PEER_NAME))
        .or_else(|| attributes.string(semconv::SERVER_ADDRESS))
        .filter(|s| !s.is_empty())
        .map(|s| (NodeKind::External, s.to_owned()))
}

/// The messaging node a producer or consumer span names: `messaging.system/destination`
/// (`messaging.destination.name`), or the system alone.
pub fn messaging_node<A: Attributes + ?Sized>(attributes: &A) -> Option<(NodeKind, String)> {
    let system = attributes.string(semconv::MESSAGING_SYSTEM)?;
    let name = match attributes.string(semconv::MESSAGING_DESTINATION_NAME) {
        Some(dest) if !dest.is_empty() => [system, "/", dest].concat(),
        _ => system.to_owned(),
    };
    Some((NodeKind::MessagingSystem, name))
}

/// The system of a database span (`db.system.name`, or the deprecated `db.system`).
pub fn db_system<A: Attributes + ?Sized>(attributes: &A) -> Option<&str> {
    // `db.system` is deprecated in favour of `db.system.name`; SDKs still send either.
    #[allow(deprecated)]
    attributes
        .string(semconv::DB_SYSTEM_NAME)
        .or_else(|| attributes.string(semconv::DB_SYSTEM))
}

/// The statement of a database span: `db.query.text`, the deprecated `db.statement`, else the
/// span's name.
pub fn db_statement<'a, A: Attributes + ?Sized>(attributes: &'a A, name: &'a str) -> &'a str {
    #[allow(deprecated)]
    attributes
        .string(semconv::DB_QUERY_TEXT)
        .or_else(|| attributes.string(semconv::DB_STATEMENT))
        .unwrap_or(name)
}

/// A URL's path with the segments that look like ids (numbers, UUIDs, long hex) as `?`,
/// appended to `out`.
fn push_folded(out: &mut String, path: &str) {
    let looks_like_id = |seg: &str| {
        !seg.is_empty()
            && (seg.bytes().all(|b| b.is_ascii_digit())
                || (seg.len() >= 8 && seg.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')))
    };
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(if looks_like_id(seg) { "?" } else { seg });
    }
}

/// Classes already made on this thread, by the text they were made from: most statements are
/// sent with placeholders, so the same text arrives again and again and is normalized once.
/// Bounded: emptied when full (statements with inlined literals would otherwise grow it).
///
/// The hash is the store's fast id hash, not a keyed one: a sender that crafts colliding
/// statements only slows its own lookups, and never past the cache's bound.
struct ClassCache {
    classes: HashMap<Box<str>, Arc<str>, IdHash>,
}

/// Entries a [`ClassCache`] holds before it is emptied.
const CLASS_CACHE_ENTRIES: usize = 1024;

impl ClassCache {
    fn get_or_make(&mut self, text: &str, make: impl FnOnce(&str) -> String) -> Arc<str> {
        if let Some(class) = self.classes.get(text) {
            return Arc::clone(class);
        }
        if self.classes.len() >= CLASS_CACHE_ENTRIES {
            self.classes.clear();
        }
        let class: Arc<str> = Arc::from(make(text));
        self.classes.insert(Box::from(text), Arc::clone(&class));
        class
    }
}

thread_local! {
    static STATEMENT_CLASSES: RefCell<ClassCache> = RefCell::new(ClassCache {
        classes: HashMap::default(),
    });
    static DESTINATIONS: RefCell<ClassCache> = RefCell::new(ClassCache {
        classes: HashMap::default(),
    });
    static CALLS: RefCell<ClassCache> = RefCell::new(ClassCache {
        classes: HashMap::default(),
    });
    /// The HTTP call pattern being looked up in [`CALLS`], its buffer kept.
    static CALL_PATTERN: RefCell<String> = const { RefCell::new(String::new()) };
}

/// What a span could repeat: a database span its statement class, an HTTP client span its call
/// (method, host and path with ids folded), a producer span that sends one message its
/// destination.
///
/// A database span is a CLIENT span whose peer is a database (`peer`, already read) or an
/// INTERNAL span with `db.system.name` (an ORM's own span); SERVER and CONSUMER spans are never
/// database calls, so their attributes are not searched.
fn pattern_of<A: Attributes + ?Sized>(
    kind: i32,
    name: &str,
    attributes: &A,
    peer: Option<&(NodeKind, String)>,
) -> Option<SpanPattern> {
    let database = match peer {
        Some((NodeKind::Database, _)) => true,
        Some(_) => false,
        None => kind == SpanKind::Internal as i32 && db_system(attributes).is_some(),
    };
    if database {
        let text = db_statement(attributes, name);
        let class =
            STATEMENT_CLASSES.with(|c| c.borrow_mut().get_or_make(text, statement::normalize));
        return Some(SpanPattern::from_arc(FindingKind::NPlusOneDb, class));
    }
    if kind == SpanKind::Producer as i32 {
        let destination = attributes.string(semconv::MESSAGING_DESTINATION_NAME)?;
        let batch = attributes
            .string_form(semconv::MESSAGING_BATCH_MESSAGE_COUNT)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(1);
        return (batch <= 1).then(|| {
            let key = DESTINATIONS.with(|c| c.borrow_mut().get_or_make(destination, str::to_owned));
            SpanPattern::from_arc(FindingKind::UnbatchedSend, key)
        });
    }
    if kind != SpanKind::Client as i32 {
        return None;
    }
    #[allow(deprecated)]
    let method = attributes
        .string(semconv::HTTP_REQUEST_METHOD)
        .or_else(|| attributes.string(semconv::HTTP_METHOD))?;
    #[allow(deprecated)]
    let inputs = CallInputs {
        method,
        template: attributes.string(semconv::URL_TEMPLATE),
        url: attributes
            .string(semconv::URL_FULL)
            .or_else(|| attributes.string(semconv::HTTP_URL)),
        path: attributes.string(semconv::URL_PATH),
        host: attributes.string(semconv::SERVER_ADDRESS),
    };
    // Written into a buffer kept for the purpose, then found among the patterns already made
    // (ids folded, the same few calls come again and again): no allocation for a known one.
    let key = CALL_PATTERN.with(|pattern| {
        let mut pattern = pattern.borrow_mut();
        inputs.write_pattern(&mut pattern);
        CALLS.with(|c| c.borrow_mut().get_or_make(&pattern, str::to_owned))
    });
    Some(SpanPattern::from_arc(FindingKind::RepeatedHttp, key))
}

/// The attributes an HTTP client span's call pattern is made from.
struct CallInputs<'a> {
    method: &'a str,
    template: Option<&'a str>,
    url: Option<&'a str>,
    path: Option<&'a str>,
    host: Option<&'a str>,
}

impl CallInputs<'_> {
    /// `{method} {target}` into `out`: the URL template, else the URL without scheme, query and
    /// fragment (or the server address and path when there is no URL), ids folded.
    fn write_pattern(&self, out: &mut String) {
        out.clear();
        out.push_str(self.method);
        out.push(' ');
        if let Some(template) = self.template {
            out.push_str(template);
            return;
        }
        let url = self.url.unwrap_or_default();
        let url = url.split(['?', '#']).next().unwrap_or_default();
        let without_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
        match self.path {
            Some(path) if without_scheme.is_empty() => {
                out.push_str(self.host.unwrap_or(""));
                push_folded(out, path);
            }
            _ => push_folded(out, without_scheme),
        }
    }
}

/// A hasher for keys that are already random (trace and span ids): one multiply per word.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7C_C1_B7_27_22_0A_95);
    }
    fn write_u128(&mut self, n: u128) {
        self.write_u64(n as u64);
        self.write_u64((n >> 64) as u64);
    }
}

/// `HashMap` state for id keys.
pub type IdHash = std::hash::BuildHasherDefault<IdHasher>;

/// `HashMap` state for name keys from outside (services, span names, graph nodes): foldhash,
/// several times quicker than the standard SipHash on short strings, and seeded per process
/// (from address-space randomization), so a sender cannot choose names that collide in advance.
pub type NameHash = foldhash::fast::RandomState;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::kv;

    fn span(kind: SpanKind, attributes: Vec<KeyValue>) -> Span {
        Span {
            name: "op".into(),
            kind: kind as i32,
            attributes,
            ..Default::default()
        }
    }

    fn key(span: &Span) -> Option<(u8, String)> {
        let service: Arc<str> = Arc::from("svc");
        SpanFacts::extract(&service, 1, &mut span.clone(), true)
            .pattern
            .map(|p| (p.kind, p.key.to_string()))
    }

    #[test]
    fn patterns_of_database_http_and_producer_spans() {
        let db = span(
            SpanKind::Client,
            vec![
                kv(semconv::DB_SYSTEM_NAME, "sqlite"),
                kv(semconv::DB_QUERY_TEXT, "select * from notes where id = 4"),
            ],
        );
        assert_eq!(
            key(&db),
            Some((0, "SELECT * FROM notes WHERE id = ?".into()))
        );
        let by_name = span(SpanKind::Client, vec![kv(semconv::DB_SYSTEM_NAME, "redis")]);
        assert_eq!(key(&by_name), Some((0, "op".into())));
        let orm = span(
            SpanKind::Internal,
            vec![kv(semconv::DB_SYSTEM_NAME, "sqlite")],
        );
        assert_eq!(key(&orm), Some((0, "op".into())), "an ORM's internal span");
        let served = span(
            SpanKind::Server,
            vec![kv(semconv::DB_SYSTEM_NAME, "sqlite")],
        );
        assert_eq!(key(&served), None, "a server span is no database call");
        let http = |url: &str| {
            span(
                SpanKind::Client,
                vec![
                    kv(semconv::HTTP_REQUEST_METHOD, "GET"),
                    kv(semconv::URL_FULL, url),
                ],
            )
        };
        assert_eq!(
            key(&http("http://pricing:8080/items/42?full=1")),
            key(&http("http://pricing:8080/items/7")),
        );
        assert_eq!(
            key(&http(
                "https://pricing/items/3f2a9c1e-0000-4000-8000-000000000000"
            )),
            Some((1, "GET pricing/items/?".into()))
        );
        let send = |extra: Vec<KeyValue>| {
            let mut attributes = vec![
                kv(semconv::MESSAGING_SYSTEM, "aws_sqs"),
                kv(semconv::MESSAGING_DESTINATION_NAME, "orders"),
            ];
            attributes.extend(extra);
            span(SpanKind::Producer, attributes)
        };
        assert_eq!(key(&send(vec![])), Some((2, "orders".into())));
        assert_eq!(
            key(&send(vec![kv(
                semconv::MESSAGING_BATCH_MESSAGE_COUNT,
                10i64
            )])),
            None,
            "a batch send is what the finding asks for"
        );
        let server = span(
            SpanKind::Server,
            vec![kv(semconv::HTTP_REQUEST_METHOD, "GET")],
        );
        assert_eq!(key(&server), None);
    }

    #[test]
    fn http_call_patterns_are_the_same_made_fresh_or_found_again() {
        let method = |m: &'static str| kv(semconv::HTTP_REQUEST_METHOD, m);
        let cases = [
            (
                vec![method("GET"), kv(semconv::URL_TEMPLATE, "/orders/{id}")],
                "GET /orders/{id}",
            ),
            (
                vec![
                    method("GET"),
                    kv(semconv::URL_FULL, "http://catalog:8014/products/17"),
                ],
                "GET catalog:8014/products/?",
            ),
            (
                vec![
                    method("POST"),
                    kv(semconv::URL_PATH, "/orders/9"),
                    kv(semconv::SERVER_ADDRESS, "checkout"),
                ],
                "POST checkout/orders/?",
            ),
            (
                vec![method("GET x"), kv(semconv::URL_FULL, "http://a/b")],
                "GET x a/b",
            ),
            (
                vec![method("GET"), kv(semconv::URL_FULL, "x http://a/b")],
                "GET a/b",
            ),
            (
                vec![
                    method("GET"),
                    kv(semconv::URL_TEMPLATE, "/a"),
                    kv(semconv::URL_FULL, "http://h/b"),
                ],
                "GET /a",
            ),
        ];
        // Each twice: the second answer comes from the cache.
        for _ in 0..2 {
            for (attributes, pattern) in &cases {
                let call = span(SpanKind::Client, attributes.clone());
                assert_eq!(key(&call), Some((1, (*pattern).into())), "{pattern}");
            }
        }
    }
}
