//! The database as the spans show it, read from the spans of a window: statement classes with
//! their figures, slow queries with their own attributes, connection-pool pressure, and each
//! service's time in the database against its time serving.
//!
//! Read at query time from the stored spans (nothing is derived at ingest), so every figure is
//! exact for the window asked for; the cost is a scan of the window's blocks.

use std::collections::{BTreeSet, HashMap};

use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_semantic_conventions::attribute as semconv;

use crate::StoreError;
use crate::api::*;
use crate::facts::{db_statement, db_system, string_attribute, value_string};
use crate::statement;
use crate::store::Store;

/// The seed's attribute that marks a query its application found slow.
pub const DB_SLOW_QUERY: &str = "db.slow_query";
/// The prefix of the seed's connection-pool attributes (`db.connection.pool.exhausted`, `.size`,
/// `.wait_time_ms`).
pub const DB_CONNECTION_POOL_PREFIX: &str = "db.connection.pool.";
const DB_POOL_EXHAUSTED: &str = "db.connection.pool.exhausted";
const DB_POOL_SIZE: &str = "db.connection.pool.size";
const DB_POOL_WAIT_MS: &str = "db.connection.pool.wait_time_ms";

/// The slow-query list's threshold when none is asked for.
pub const DEFAULT_SLOW_QUERY_MS: u64 = 100;
/// The most slow queries one report lists (the slowest).
pub const MAX_SLOW_QUERIES: usize = 100;
/// The most spans one report (or error grouping) reads, newest first; past it the report says it
/// covers only the most recent part of the window.
pub const MAX_SCANNED_SPANS: usize = 2_000_000;

/// Which spans a database report reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseQuery {
    /// Only this service's calls (and its time).
    pub service: Option<String>,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    /// Queries at least this long are listed as slow (as are those marked `db.slow_query`).
    pub slow_query_nanos: u64,
    /// Spans read at most, newest first ([`MAX_SCANNED_SPANS`] is the pages' and the API's);
    /// past it the report is `truncated`.
    pub max_scanned_spans: usize,
}

/// A span a row points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanRef {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub start_unix_nanos: u64,
    pub duration_nanos: u64,
}

/// One statement class of one database.
#[derive(Debug, Clone, PartialEq)]
pub struct StatementClass {
    pub db_system: String,
    /// `db.namespace`, else the server address, else empty.
    pub database: String,
    /// The normalized statement ([`statement::normalize`]).
    pub statement: String,
    pub calls: u64,
    pub errors: u64,
    pub total_nanos: u64,
    pub p50_nanos: u64,
    pub p95_nanos: u64,
    pub p99_nanos: u64,
    /// Calls over the window's minutes.
    pub calls_per_minute: f64,
    /// This class's share (0 to 1) of the database time of the services that call it.
    pub share_of_service_db_time: f64,
    pub callers: Vec<String>,
    pub tables: Vec<String>,
    pub slowest: SpanRef,
    pub most_recent: SpanRef,
}

/// A query over the slow threshold, with its own attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct SlowQuery {
    pub span: SpanRef,
    pub service: String,
    pub db_system: String,
    pub database: String,
    pub statement: String,
    pub error: bool,
    /// Every attribute of the span, values as strings (`db.slow_query`, `db.missing_index`,
    /// `db.rows_scanned` among them when the application set them).
    pub attributes: Vec<(String, String)>,
}

/// What the spans of one service and database say of its connection pool.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolPressure {
    pub service: String,
    pub database: String,
    /// Spans carrying `db.connection.pool.*` attributes.
    pub spans: u64,
    /// Of them, those with `db.connection.pool.exhausted` true.
    pub exhausted: u64,
    pub max_pool_size: Option<i64>,
    pub max_wait_ms: Option<f64>,
    /// The most recent span that found the pool exhausted.
    pub last_exhausted: Option<SpanRef>,
    /// From the `db.client.connection.*` metrics, when the service exports them: the most
    /// connections in use, the pool's limit, the most requests waiting for a connection, the
    /// timeouts counted, and how many data points showed the pool at its limit or requests
    /// waiting.
    pub metrics: Option<PoolMetrics>,
}

/// A pool as the `db.client.connection.*` metrics describe it over the window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolMetrics {
    pub max_in_use: Option<i64>,
    pub limit: Option<i64>,
    pub max_pending_requests: Option<i64>,
    pub timeouts: Option<i64>,
    pub points_at_limit: u64,
}

/// A service's time in the database against its time serving (its entry spans).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceDatabaseTime {
    pub service: String,
    pub db_calls: u64,
    pub db_nanos: u64,
    /// SERVER and CONSUMER spans.
    pub entry_calls: u64,
    pub entry_nanos: u64,
}

/// Everything the Database page shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DatabaseReport {
    /// By total time, largest first.
    pub statements: Vec<StatementClass>,
    /// Slowest first, at most [`MAX_SLOW_QUERIES`].
    pub slow_queries: Vec<SlowQuery>,
    pub pools: Vec<PoolPressure>,
    pub services: Vec<ServiceDatabaseTime>,
    /// The window held more than [`MAX_SCANNED_SPANS`] spans: only the most recent were read.
    pub truncated: bool,
}

#[derive(Default)]
struct ClassAgg {
    durations: Vec<u64>,
    errors: u64,
    callers: BTreeSet<String>,
    tables: Vec<String>,
    slowest: Option<SpanRef>,
    most_recent: Option<SpanRef>,
}

fn span_ref(span: &Span) -> SpanRef {
    SpanRef {
        trace_id: TraceId::from_slice(&span.trace_id).unwrap_or(TraceId([0; 16])),
        span_id: SpanId::from_slice(&span.span_id).unwrap_or(SpanId([0; 8])),
        start_unix_nanos: span.start_time_unix_nano,
        duration_nanos: span
            .end_time_unix_nano
            .saturating_sub(span.start_time_unix_nano),
    }
}

fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a AnyValue> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
}

fn is_error(span: &Span) -> bool {
    span.status
        .as_ref()
        .is_some_and(|s| s.code == StatusCode::Error as i32)
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Builds a report from spans fed one at a time.
struct ReportBuilder {
    query: DatabaseQuery,
    classes: HashMap<(String, String, String), ClassAgg>,
    slow: Vec<SlowQuery>,
    pools: HashMap<(String, String), PoolPressure>,
    /// `db.client.connection.count{state=used}` values per pool.
    in_use_points: HashMap<(String, String), Vec<i64>>,
    services: HashMap<String, ServiceDatabaseTime>,
}

impl ReportBuilder {
    fn new(query: DatabaseQuery) -> Self {
        Self {
            query,
            classes: HashMap::new(),
            slow: Vec::new(),
            pools: HashMap::new(),
            in_use_points: HashMap::new(),
            services: HashMap::new(),
        }
    }

    fn service(&mut self, name: &str) -> &mut ServiceDatabaseTime {
        self.services
            .entry(name.to_owned())
            .or_insert_with(|| ServiceDatabaseTime {
                service: name.to_owned(),
                db_calls: 0,
                db_nanos: 0,
                entry_calls: 0,
                entry_nanos: 0,
            })
    }

    fn add(&mut self, service: &str, span: &Span) {
        let start = span.start_time_unix_nano;
        if start < self.query.start_unix_nanos || start > self.query.end_unix_nanos {
            return;
        }
        let r = span_ref(span);
        if span.kind == SpanKind::Server as i32 || span.kind == SpanKind::Consumer as i32 {
            let s = self.service(service);
            s.entry_calls += 1;
            s.entry_nanos += r.duration_nanos;
        }
        let Some(system) = db_system(&span.attributes) else {
            return;
        };
        let database = string_attribute(&span.attributes, semconv::DB_NAMESPACE)
            .or_else(|| string_attribute(&span.attributes, semconv::SERVER_ADDRESS))
            .unwrap_or_default()
            .to_owned();
        let text = db_statement(&span.attributes, &span.name);
        let class = statement::normalize(text);
        let error = is_error(span);
        {
            let s = self.service(service);
            s.db_calls += 1;
            s.db_nanos += r.duration_nanos;
        }
        let agg = self
            .classes
            .entry((system.to_owned(), database.clone(), class.clone()))
            .or_default();
        agg.durations.push(r.duration_nanos);
        agg.errors += u64::from(error);
        if !agg.callers.contains(service) {
            agg.callers.insert(service.to_owned());
        }
        if agg.tables.is_empty() {
            agg.tables = match string_attribute(&span.attributes, semconv::DB_COLLECTION_NAME) {
                Some(table) if !table.is_empty() => vec![table.to_owned()],
                _ => statement::tables(text),
            };
        }
        if agg
            .slowest
            .as_ref()
            .is_none_or(|s| r.duration_nanos > s.duration_nanos)
        {
            agg.slowest = Some(r.clone());
        }
        if agg
            .most_recent
            .as_ref()
            .is_none_or(|s| r.start_unix_nanos > s.start_unix_nanos)
        {
            agg.most_recent = Some(r.clone());
        }
        let marked_slow = attribute(span, DB_SLOW_QUERY)
            .and_then(value_string)
            .is_some_and(|v| v == "true");
        if r.duration_nanos >= self.query.slow_query_nanos || marked_slow {
            self.slow.push(SlowQuery {
                span: r.clone(),
                service: service.to_owned(),
                db_system: system.to_owned(),
                database: database.clone(),
                statement: class,
                error,
                attributes: span
                    .attributes
                    .iter()
                    .filter_map(|kv| Some((kv.key.clone(), value_string(kv.value.as_ref()?)?)))
                    .collect(),
            });
        }
        if span
            .attributes
            .iter()
            .any(|kv| kv.key.starts_with(DB_CONNECTION_POOL_PREFIX))
        {
            let pool = self
                .pools
                .entry((service.to_owned(), database.clone()))
                .or_insert_with(|| PoolPressure {
                    service: service.to_owned(),
                    database,
                    spans: 0,
                    exhausted: 0,
                    max_pool_size: None,
                    max_wait_ms: None,
                    last_exhausted: None,
                    metrics: None,
                });
            pool.spans += 1;
            let number = |key| {
                attribute(span, key)
                    .and_then(value_string)
                    .and_then(|v| v.parse::<f64>().ok())
            };
            if let Some(size) = number(DB_POOL_SIZE) {
                pool.max_pool_size = Some(pool.max_pool_size.unwrap_or(0).max(size as i64));
            }
            if let Some(wait) = number(DB_POOL_WAIT_MS) {
                pool.max_wait_ms = Some(pool.max_wait_ms.unwrap_or(0.0).max(wait));
            }
            let exhausted = attribute(span, DB_POOL_EXHAUSTED)
                .and_then(value_string)
                .is_some_and(|v| v == "true");
            if exhausted {
                pool.exhausted += 1;
                if pool
                    .last_exhausted
                    .as_ref()
                    .is_none_or(|l| r.start_unix_nanos > l.start_unix_nanos)
                {
                    pool.last_exhausted = Some(r);
                }
            }
        }
    }

    /// Takes in the `db.client.connection.*` metrics of one export (pools keyed by service and
    /// `db.client.connection.pool.name`).
    fn add_metrics(&mut self, request: &ExportMetricsServiceRequest) {
        use opentelemetry_proto::tonic::metrics::v1::metric::Data;
        use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value;
        use opentelemetry_semantic_conventions::metric as semmetric;
        for rm in &request.resource_metrics {
            let service = rm
                .resource
                .as_ref()
                .map_or(crate::UNKNOWN_SERVICE, crate::facts::service_name_of)
                .to_owned();
            if self.query.service.as_ref().is_some_and(|s| *s != service) {
                continue;
            }
            for metric in rm.scope_metrics.iter().flat_map(|s| &s.metrics) {
                let name = metric.name.as_str();
                let known = [
                    semmetric::DB_CLIENT_CONNECTION_COUNT,
                    semmetric::DB_CLIENT_CONNECTION_MAX,
                    semmetric::DB_CLIENT_CONNECTION_PENDING_REQUESTS,
                    semmetric::DB_CLIENT_CONNECTION_TIMEOUTS,
                ];
                if !known.contains(&name) {
                    continue;
                }
                let points = match &metric.data {
                    Some(Data::Gauge(g)) => &g.data_points,
                    Some(Data::Sum(s)) => &s.data_points,
                    _ => continue,
                };
                for p in points {
                    let at = p.time_unix_nano;
                    if at < self.query.start_unix_nanos || at > self.query.end_unix_nanos {
                        continue;
                    }
                    let value = match p.value {
                        Some(Value::AsInt(i)) => i,
                        Some(Value::AsDouble(d)) => d as i64,
                        None => continue,
                    };
                    let pool_name =
                        string_attribute(&p.attributes, semconv::DB_CLIENT_CONNECTION_POOL_NAME)
                            .unwrap_or_default()
                            .to_owned();
                    let state =
                        string_attribute(&p.attributes, semconv::DB_CLIENT_CONNECTION_STATE);
                    let pool = self
                        .pools
                        .entry((service.clone(), pool_name.clone()))
                        .or_insert_with(|| PoolPressure {
                            service: service.clone(),
                            database: pool_name,
                            spans: 0,
                            exhausted: 0,
                            max_pool_size: None,
                            max_wait_ms: None,
                            last_exhausted: None,
                            metrics: None,
                        });
                    let m = pool.metrics.get_or_insert_with(PoolMetrics::default);
                    let keep_max =
                        |slot: &mut Option<i64>| *slot = Some(slot.map_or(value, |v| v.max(value)));
                    match name {
                        semmetric::DB_CLIENT_CONNECTION_COUNT if state == Some("used") => {
                            keep_max(&mut m.max_in_use);
                            // Compared with the limit once every export is in (`finish`).
                            self.in_use_points
                                .entry((service.clone(), pool.database.clone()))
                                .or_default()
                                .push(value);
                        }
                        semmetric::DB_CLIENT_CONNECTION_MAX => keep_max(&mut m.limit),
                        semmetric::DB_CLIENT_CONNECTION_PENDING_REQUESTS => {
                            keep_max(&mut m.max_pending_requests);
                            if value > 0 {
                                m.points_at_limit += 1;
                            }
                        }
                        semmetric::DB_CLIENT_CONNECTION_TIMEOUTS => keep_max(&mut m.timeouts),
                        _ => {}
                    }
                }
            }
        }
    }

    fn finish(self) -> DatabaseReport {
        let window_minutes = (self
            .query
            .end_unix_nanos
            .saturating_sub(self.query.start_unix_nanos) as f64
            / 60e9)
            .max(1.0 / 60.0);
        let db_time: HashMap<&str, u64> = self
            .services
            .values()
            .map(|s| (s.service.as_str(), s.db_nanos))
            .collect();
        let mut statements: Vec<StatementClass> = self
            .classes
            .into_iter()
            .filter_map(|((db_system, database, statement), mut agg)| {
                agg.durations.sort_unstable();
                let total: u64 = agg.durations.iter().sum();
                let callers: Vec<String> = agg.callers.into_iter().collect();
                let callers_time: u64 = callers
                    .iter()
                    .map(|c| db_time.get(c.as_str()).copied().unwrap_or(0))
                    .sum();
                Some(StatementClass {
                    db_system,
                    database,
                    statement,
                    calls: agg.durations.len() as u64,
                    errors: agg.errors,
                    total_nanos: total,
                    p50_nanos: percentile(&agg.durations, 50.0),
                    p95_nanos: percentile(&agg.durations, 95.0),
                    p99_nanos: percentile(&agg.durations, 99.0),
                    calls_per_minute: agg.durations.len() as f64 / window_minutes,
                    share_of_service_db_time: if callers_time == 0 {
                        0.0
                    } else {
                        total as f64 / callers_time as f64
                    },
                    callers,
                    tables: agg.tables,
                    slowest: agg.slowest?,
                    most_recent: agg.most_recent?,
                })
            })
            .collect();
        statements.sort_by(|a, b| {
            b.total_nanos
                .cmp(&a.total_nanos)
                .then_with(|| a.statement.cmp(&b.statement))
        });
        let mut slow_queries = self.slow;
        slow_queries.sort_by_key(|s| std::cmp::Reverse(s.span.duration_nanos));
        slow_queries.truncate(MAX_SLOW_QUERIES);
        let mut pools: Vec<PoolPressure> = self.pools.into_values().collect();
        for pool in &mut pools {
            let key = (pool.service.clone(), pool.database.clone());
            if let (Some(m), Some(points)) = (&mut pool.metrics, self.in_use_points.get(&key))
                && let Some(limit) = m.limit
            {
                m.points_at_limit += points.iter().filter(|v| **v >= limit).count() as u64;
            }
        }
        pools.sort_by(|a, b| (&a.service, &a.database).cmp(&(&b.service, &b.database)));
        let mut services: Vec<ServiceDatabaseTime> = self.services.into_values().collect();
        services.sort_by(|a, b| a.service.cmp(&b.service));
        DatabaseReport {
            statements,
            slow_queries,
            pools,
            services,
            truncated: false,
        }
    }
}

impl Store {
    pub(crate) fn database_report(
        &self,
        query: &DatabaseQuery,
    ) -> Result<DatabaseReport, StoreError> {
        let mut builder = ReportBuilder::new(query.clone());
        let truncated = self.scan_spans(
            query.start_unix_nanos,
            query.end_unix_nanos,
            query.service.as_deref(),
            query.max_scanned_spans,
            &mut |service, span| builder.add(service, span),
        )?;
        for (_, request) in self.metrics(query.start_unix_nanos, query.end_unix_nanos)? {
            builder.add_metrics(&request);
        }
        Ok(DatabaseReport {
            truncated,
            ..builder.finish()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::kv;

    const MS: u64 = 1_000_000;

    fn db_span(id: u8, statement: &str, start_ms: u64, ms: u64, extra: Vec<KeyValue>) -> Span {
        let mut attributes = vec![
            kv(semconv::DB_SYSTEM_NAME, "postgresql"),
            kv(semconv::DB_NAMESPACE, "shop"),
            kv(semconv::DB_QUERY_TEXT, statement),
        ];
        attributes.extend(extra);
        Span {
            trace_id: vec![1; 16],
            span_id: vec![id; 8],
            name: "query".into(),
            kind: SpanKind::Client as i32,
            start_time_unix_nano: start_ms * MS,
            end_time_unix_nano: (start_ms + ms) * MS,
            attributes,
            ..Default::default()
        }
    }

    fn report(spans: &[(&str, Span)]) -> DatabaseReport {
        let mut b = ReportBuilder::new(DatabaseQuery {
            service: None,
            start_unix_nanos: 0,
            end_unix_nanos: 60_000 * MS,
            slow_query_nanos: 100 * MS,
            max_scanned_spans: MAX_SCANNED_SPANS,
        });
        for (service, span) in spans {
            b.add(service, span);
        }
        b.finish()
    }

    #[test]
    fn classes_rank_by_total_time_with_percentiles_callers_and_tables() {
        let mut spans: Vec<(&str, Span)> = (0..10)
            .map(|i| {
                let s = format!("SELECT * FROM items WHERE id = {i}");
                (
                    "api",
                    db_span(i, &s, u64::from(i) * 10, u64::from(i) + 1, vec![]),
                )
            })
            .collect();
        spans.push((
            "worker",
            db_span(50, "SELECT * FROM items WHERE id = 99", 500, 5, vec![]),
        ));
        spans.push((
            "api",
            db_span(60, "UPDATE stock SET qty = 1", 600, 200, vec![]),
        ));
        let r = report(&spans);
        assert_eq!(r.statements.len(), 2);
        let update = &r.statements[0];
        assert_eq!(update.statement, "UPDATE stock SET qty = ?");
        assert_eq!(update.total_nanos, 200 * MS);
        assert_eq!(update.tables, ["stock"]);
        let select = &r.statements[1];
        assert_eq!(select.calls, 11);
        assert_eq!(select.callers, ["api", "worker"]);
        assert_eq!(select.tables, ["items"]);
        assert_eq!(select.p50_nanos, 5 * MS);
        assert_eq!(select.p99_nanos, 10 * MS);
        assert_eq!(select.slowest.span_id, SpanId([9; 8]));
        assert_eq!(select.most_recent.span_id, SpanId([50; 8]));
        assert!((select.calls_per_minute - 11.0).abs() < 1e-9);
        // api: 55 + 200 ms in the database; worker: 5 ms; the select is 60 of 260.
        assert!((select.share_of_service_db_time - 60.0 / 260.0).abs() < 1e-9);
        assert_eq!(r.slow_queries.len(), 1);
        assert_eq!(r.slow_queries[0].span.span_id, SpanId([60; 8]));
    }

    /// A metrics export with a pool's `db.client.connection.*` figures at `at`.
    pub(crate) fn pool_metrics(
        service: &str,
        at: u64,
        used: i64,
        limit: i64,
        pending: i64,
    ) -> ExportMetricsServiceRequest {
        use opentelemetry_proto::tonic::metrics::v1::{
            Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, metric::Data,
            number_data_point::Value,
        };
        use opentelemetry_semantic_conventions::metric as semmetric;
        let point = |value: i64, state: Option<&str>| {
            let mut attributes = vec![kv(semconv::DB_CLIENT_CONNECTION_POOL_NAME, "main")];
            attributes.extend(state.map(|s| kv(semconv::DB_CLIENT_CONNECTION_STATE, s)));
            NumberDataPoint {
                attributes,
                time_unix_nano: at,
                value: Some(Value::AsInt(value)),
                ..Default::default()
            }
        };
        let gauge = |name: &str, points| Metric {
            name: name.into(),
            data: Some(Data::Gauge(Gauge {
                data_points: points,
            })),
            ..Default::default()
        };
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(crate::testdata::resource(service)),
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![
                        Metric {
                            name: semmetric::DB_CLIENT_CONNECTION_COUNT.into(),
                            data: Some(Data::Sum(Sum {
                                data_points: vec![
                                    point(used, Some("used")),
                                    point(1, Some("idle")),
                                ],
                                ..Default::default()
                            })),
                            ..Default::default()
                        },
                        gauge(
                            semmetric::DB_CLIENT_CONNECTION_MAX,
                            vec![point(limit, None)],
                        ),
                        gauge(
                            semmetric::DB_CLIENT_CONNECTION_PENDING_REQUESTS,
                            vec![point(pending, None)],
                        ),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn pool_metrics_show_a_pool_at_its_limit() {
        let mut b = ReportBuilder::new(DatabaseQuery {
            service: None,
            start_unix_nanos: 0,
            end_unix_nanos: 60_000 * MS,
            slow_query_nanos: 100 * MS,
            max_scanned_spans: MAX_SCANNED_SPANS,
        });
        // The count comes before the limit in the export: still compared with it.
        b.add_metrics(&pool_metrics("shop", 1_000 * MS, 10, 10, 3));
        b.add_metrics(&pool_metrics("shop", 2_000 * MS, 4, 10, 0));
        b.add_metrics(&pool_metrics("shop", 90_000 * MS, 10, 10, 9));
        let r = b.finish();
        assert_eq!(r.pools.len(), 1);
        let m = r.pools[0].metrics.as_ref().expect("pool metrics");
        assert_eq!(r.pools[0].database, "main");
        assert_eq!(
            (m.max_in_use, m.limit, m.max_pending_requests),
            (Some(10), Some(10), Some(3)),
            "the point after the window is left out"
        );
        // At its limit once, requests waiting once (the same moment).
        assert_eq!(m.points_at_limit, 2);
    }

    #[test]
    fn marked_slow_queries_and_pool_exhaustion_are_reported() {
        let slow = db_span(
            1,
            "SELECT * FROM products WHERE category = 'x'",
            0,
            40,
            vec![
                kv(DB_SLOW_QUERY, "true"),
                kv("db.missing_index", "idx_products_category"),
                kv("db.rows_scanned", 10_000i64),
            ],
        );
        let exhausted = db_span(
            2,
            "INSERT INTO orders VALUES (1)",
            100,
            5,
            vec![
                kv(DB_POOL_EXHAUSTED, "true"),
                kv(DB_POOL_SIZE, 20i64),
                kv(DB_POOL_WAIT_MS, 5000i64),
            ],
        );
        let r = report(&[("shop", slow), ("shop", exhausted)]);
        assert_eq!(r.slow_queries.len(), 1);
        assert!(
            r.slow_queries[0]
                .attributes
                .contains(&("db.missing_index".into(), "idx_products_category".into()))
        );
        assert_eq!(r.pools.len(), 1);
        let pool = &r.pools[0];
        assert_eq!((pool.spans, pool.exhausted), (1, 1));
        assert_eq!(pool.max_pool_size, Some(20));
        assert_eq!(pool.max_wait_ms, Some(5000.0));
        assert_eq!(
            pool.last_exhausted.as_ref().map(|s| s.span_id),
            Some(SpanId([2; 8]))
        );
    }
}
