//! The CLIENT span of a database call, with the current database conventions: `db.system.name`,
//! `db.namespace`, `db.operation.name`, `db.collection.name`, `db.query.text`, `server.address`,
//! `server.port`; named `{operation} {collection}`.
//!
//! `OTEL_SEMCONV_STABILITY_OPT_IN=database/dup` (read from the service's environment map by
//! [`DbSemconv::from_env`]) adds the names older backends read: `db.system`, `db.name`,
//! `db.operation`, `db.sql.table`, `db.statement`.
//!
//! The SQL commenter ([`DbClient::sql_commenter`], off unless asked for) appends the span's
//! context to the statement as [sqlcommenter](https://google.github.io/sqlcommenter/spec/) says,
//! so the database's own logs name the trace: `SELECT 1 /*traceparent='00-…-01'*/` (keys sorted,
//! values URL-encoded then quoted); a statement that already holds a comment is left alone.
//!
//! ```
//! use std::collections::HashMap;
//! use throughline_instrument::{DbClient, DbOperation, DbSemconv, DbTarget};
//! use throughline_telemetry::testing::TestTracing;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let env = HashMap::from([("OTEL_SEMCONV_STABILITY_OPT_IN".to_owned(), "database/dup".to_owned())]);
//! let tracing = TestTracing::new();
//! let db = DbClient::new(tracing.tracer("shop"), DbTarget::new("postgresql").namespace("shop"))
//!     .semconv(DbSemconv::from_env(&env))
//!     .sql_commenter(true);
//! let sql = "SELECT * FROM orders WHERE id = $1";
//! let span = db.start(DbOperation::new("SELECT").collection("orders").query_text(sql));
//! let commented = db.comment(&span, sql);
//! assert!(commented.starts_with("SELECT * FROM orders WHERE id = $1 /*traceparent='00-"));
//! span.end();
//! tracing.spans().assert_attribute("SELECT orders", "db.sql.table", "orders");
//! # });
//! ```

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use opentelemetry::global::BoxedTracer;
use opentelemetry::trace::{SpanKind, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};
use opentelemetry_semantic_conventions::attribute as semconv;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use throughline_propagation::format_traceparent;

use crate::SharedTracer;
use crate::span::ActiveSpan;

/// The variable that opts in to (or doubles) the stable conventions.
pub const SEMCONV_STABILITY_OPT_IN: &str = "OTEL_SEMCONV_STABILITY_OPT_IN";

/// Which database attribute names a span carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DbSemconv {
    /// The stable names only.
    #[default]
    Stable,
    /// The stable names and the old ones (`database/dup`).
    Dup,
}

impl DbSemconv {
    /// `Dup` when `OTEL_SEMCONV_STABILITY_OPT_IN` (a comma-separated list) names
    /// `database/dup`; `Stable` otherwise (`database` or nothing: the stable names are what
    /// this crate always wrote).
    pub fn from_env(env: &HashMap<String, String>) -> Self {
        let dup = env.get(SEMCONV_STABILITY_OPT_IN).is_some_and(|list| {
            list.split(',')
                .any(|item| item.trim().eq_ignore_ascii_case("database/dup"))
        });
        if dup { Self::Dup } else { Self::Stable }
    }
}

/// The database a client talks to, as every span of it names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbTarget {
    /// `db.system.name`: a well-known value (`postgresql`, `sqlite`, …).
    pub system: Cow<'static, str>,
    /// `db.namespace`: the database name.
    pub namespace: Option<String>,
    pub server_address: Option<String>,
    pub server_port: Option<u16>,
}

impl DbTarget {
    pub fn new(system: impl Into<Cow<'static, str>>) -> Self {
        Self {
            system: system.into(),
            namespace: None,
            server_address: None,
            server_port: None,
        }
    }

    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    pub fn server(mut self, address: impl Into<String>, port: Option<u16>) -> Self {
        self.server_address = Some(address.into());
        self.server_port = port;
        self
    }

    #[allow(deprecated)] // the old names are what `database/dup` asks for
    fn attributes(&self, semconv: DbSemconv) -> Vec<KeyValue> {
        let mut attributes = vec![KeyValue::new(semconv::DB_SYSTEM_NAME, self.system.clone())];
        if let Some(namespace) = &self.namespace {
            attributes.push(KeyValue::new(semconv::DB_NAMESPACE, namespace.clone()));
        }
        if let Some(address) = &self.server_address {
            attributes.push(KeyValue::new(semconv::SERVER_ADDRESS, address.clone()));
        }
        if let Some(port) = self.server_port {
            attributes.push(KeyValue::new(semconv::SERVER_PORT, i64::from(port)));
        }
        if semconv == DbSemconv::Dup {
            attributes.push(KeyValue::new(semconv::DB_SYSTEM, self.system.clone()));
            if let Some(namespace) = &self.namespace {
                attributes.push(KeyValue::new(semconv::DB_NAME, namespace.clone()));
            }
        }
        attributes
    }
}

/// One call: its operation, the table it touches, the statement, and the caller's attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct DbOperation {
    name: Cow<'static, str>,
    collection: Option<Cow<'static, str>>,
    query_text: Option<Cow<'static, str>>,
    attributes: Vec<KeyValue>,
}

impl DbOperation {
    /// `db.operation.name`: `SELECT`, `INSERT`, …
    pub fn new(name: impl Into<Cow<'static, str>>) -> Self {
        Self {
            name: name.into(),
            collection: None,
            query_text: None,
            attributes: Vec::new(),
        }
    }

    /// `db.collection.name`: the table.
    pub fn collection(mut self, collection: impl Into<Cow<'static, str>>) -> Self {
        self.collection = Some(collection.into());
        self
    }

    /// `db.query.text`: the statement with its parameters as placeholders (never the values:
    /// they may be personal data). A `&'static str` (a statement of the code's own) is kept
    /// without a copy.
    pub fn query_text(mut self, text: impl Into<Cow<'static, str>>) -> Self {
        self.query_text = Some(text.into());
        self
    }

    /// An attribute of the caller's own.
    pub fn attribute(mut self, attribute: KeyValue) -> Self {
        self.attributes.push(attribute);
        self
    }

    fn span_name(&self) -> String {
        match &self.collection {
            Some(collection) => format!("{} {collection}", self.name),
            None => self.name.to_string(),
        }
    }
}

/// CLIENT spans of the calls to one database (see the module docs).
#[derive(Debug, Clone)]
pub struct DbClient {
    tracer: SharedTracer,
    target: DbTarget,
    target_attributes: Arc<[KeyValue]>,
    semconv: DbSemconv,
    commenter: bool,
}

impl DbClient {
    /// Calls to `target`, traced with `tracer`; stable names, no SQL comments.
    pub fn new<T>(tracer: T, target: DbTarget) -> Self
    where
        T: Tracer + Send + Sync + 'static,
        T::Span: Send + Sync + 'static,
    {
        Self::shared(Arc::new(BoxedTracer::new(Box::new(tracer))), target)
    }

    /// Calls to `target` with a tracer already shared with other helpers.
    pub fn shared(tracer: SharedTracer, target: DbTarget) -> Self {
        let target_attributes = target.attributes(DbSemconv::Stable).into();
        Self {
            tracer,
            target,
            target_attributes,
            semconv: DbSemconv::Stable,
            commenter: false,
        }
    }

    /// Which attribute names spans carry.
    pub fn semconv(mut self, semconv: DbSemconv) -> Self {
        self.semconv = semconv;
        self.target_attributes = self.target.attributes(semconv).into();
        self
    }

    /// Appends the trace context to statements passed through [`Self::comment`].
    pub fn sql_commenter(mut self, on: bool) -> Self {
        self.commenter = on;
        self
    }

    /// The database these spans name.
    pub fn target(&self) -> &DbTarget {
        &self.target
    }

    /// Starts the CLIENT span of `operation` under the current context.
    #[allow(deprecated)] // the old names are what `database/dup` asks for
    pub fn start(&self, operation: DbOperation) -> ActiveSpan {
        let name = operation.span_name();
        let DbOperation {
            name: operation_name,
            collection,
            query_text,
            attributes: callers,
        } = operation;
        let dup = self.semconv == DbSemconv::Dup;
        let mut attributes = Vec::with_capacity(
            self.target_attributes.len() + 3 * (1 + usize::from(dup)) + callers.len(),
        );
        attributes.extend(self.target_attributes.iter().cloned());
        // Each value under its current name, then (`database/dup`) under the old one too: moved
        // into the last of them, copied only for a second name.
        let mut push = |current: &'static str, old: &'static str, value: Cow<'static, str>| {
            if dup {
                attributes.push(KeyValue::new(current, value.clone()));
                attributes.push(KeyValue::new(old, value));
            } else {
                attributes.push(KeyValue::new(current, value));
            }
        };
        push(
            semconv::DB_OPERATION_NAME,
            semconv::DB_OPERATION,
            operation_name,
        );
        if let Some(collection) = collection {
            push(
                semconv::DB_COLLECTION_NAME,
                semconv::DB_SQL_TABLE,
                collection,
            );
        }
        if let Some(text) = query_text {
            push(semconv::DB_QUERY_TEXT, semconv::DB_STATEMENT, text);
        }
        attributes.extend(callers);
        let builder = self
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Client)
            .with_attributes(attributes);
        ActiveSpan::start(&self.tracer, builder, &Context::current())
    }

    /// `sql` with the span's context appended as a sqlcommenter comment when the commenter is
    /// on; `sql` unchanged when it is off, the span is not valid, or `sql` has a comment.
    pub fn comment<'a>(&self, span: &ActiveSpan, sql: &'a str) -> Cow<'a, str> {
        if !self.commenter {
            return Cow::Borrowed(sql);
        }
        SqlCommenter::comment(span.context(), sql)
    }
}

/// The sqlcommenter format: `/*key='value',…*/` appended to a statement.
#[derive(Debug, Clone, Copy)]
pub struct SqlCommenter;

/// What sqlcommenter URL-encodes: everything but RFC 3986's unreserved characters.
const SQLCOMMENTER_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

impl SqlCommenter {
    /// `sql` with `traceparent` (and `tracestate` when not empty) of the span in `cx`
    /// appended, or `sql` unchanged when the span is not valid or `sql` already holds a
    /// comment (the spec forbids changing such a statement).
    pub fn comment<'a>(cx: &Context, sql: &'a str) -> Cow<'a, str> {
        if sql.contains("/*") || sql.contains("--") {
            return Cow::Borrowed(sql);
        }
        let span = cx.span();
        let span_context = span.span_context();
        let Some(traceparent) = format_traceparent(span_context) else {
            return Cow::Borrowed(sql);
        };
        let tracestate = span_context.trace_state().header();
        // Keys sorted: `traceparent` < `tracestate`.
        let mut pairs = vec![("traceparent", traceparent)];
        if !tracestate.is_empty() {
            pairs.push(("tracestate", tracestate));
        }
        let body = pairs
            .iter()
            .map(|(key, value)| format!("{}={}", encode(key), quote(&encode(value))))
            .collect::<Vec<_>>()
            .join(",");
        let sql = sql.trim_end();
        let (statement, terminator) = match sql.strip_suffix(';') {
            Some(statement) => (statement.trim_end(), ";"),
            None => (sql, ""),
        };
        Cow::Owned(format!("{statement} /*{body}*/{terminator}"))
    }
}

fn encode(s: &str) -> String {
    utf8_percent_encode(s, SQLCOMMENTER_ENCODE).to_string()
}

/// Escapes `'` (after URL-encoding nothing else needs it) and quotes in single quotes.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "\\'"))
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

    use super::*;

    fn cx(tracestate: &str) -> Context {
        let state = if tracestate.is_empty() {
            TraceState::default()
        } else {
            tracestate.parse().expect("a valid tracestate")
        };
        Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from_hex("5bd66ef5095369c7b0d1f8f4bd33716a").unwrap(),
            SpanId::from_hex("c532cb4098ac3dd2").unwrap(),
            TraceFlags::SAMPLED,
            true,
            state,
        ))
    }

    #[test]
    fn the_comment_follows_the_sqlcommenter_spec_example() {
        // The spec's own example values.
        let sql = SqlCommenter::comment(
            &cx("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"),
            "SELECT * FROM FOO",
        );
        assert_eq!(
            sql,
            "SELECT * FROM FOO /*traceparent='00-5bd66ef5095369c7b0d1f8f4bd33716a-c532cb4098ac3dd2-01',\
             tracestate='congo%3Dt61rcWkgMzE%2Crojo%3D00f067aa0ba902b7'*/"
        );
    }

    #[test]
    fn a_statement_with_a_comment_or_no_valid_span_is_left_alone() {
        for sql in ["SELECT 1 /* mine */", "SELECT 1 -- mine"] {
            assert_eq!(SqlCommenter::comment(&cx(""), sql), sql);
        }
        assert_eq!(
            SqlCommenter::comment(&Context::new(), "SELECT 1"),
            "SELECT 1"
        );
    }

    #[test]
    fn the_comment_goes_before_a_final_semicolon() {
        assert_eq!(
            SqlCommenter::comment(&cx(""), "SELECT 1;"),
            "SELECT 1 /*traceparent='00-5bd66ef5095369c7b0d1f8f4bd33716a-c532cb4098ac3dd2-01'*/;"
        );
    }

    #[test]
    fn dup_is_read_from_the_env_map_in_a_list() {
        let env = |v: &str| HashMap::from([(SEMCONV_STABILITY_OPT_IN.to_owned(), v.to_owned())]);
        assert_eq!(
            DbSemconv::from_env(&env("http, database/dup")),
            DbSemconv::Dup
        );
        assert_eq!(DbSemconv::from_env(&env("database")), DbSemconv::Stable);
        assert_eq!(DbSemconv::from_env(&HashMap::new()), DbSemconv::Stable);
    }
}
