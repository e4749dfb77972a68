//! Stored OTLP metrics decoded into series and queried: sums, gauges, histograms and
//! exponential histograms indexed by name, service (`service.name` of the resource), point
//! attributes and time, answering [`MetricQuery`] with rates for counters and percentiles for
//! histograms per step.
//!
//! Invariants:
//! - Every sample is kept as a *delta* of its series: cumulative sums and histograms are turned
//!   into the increase since the previous export of the same series and process
//!   (`service.instance.id`), a drop in the value or a new start time counting as a reset (the
//!   new value is then the increase, as after a restart). The first cumulative sample of a
//!   series counts whole: it is the increase since its `start_time_unix_nano`.
//! - Samples are bucketed by their own `time_unix_nano`, not by arrival.
//! - The index is rebuilt from the log at open (metrics records replay in log order, so the
//!   deltas come out the same) and pruned to the store's retention by point time.
//! - At most [`MAX_SERIES`] series are kept; samples of further series are dropped and counted.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, ExponentialHistogramDataPoint, HistogramDataPoint, NumberDataPoint,
    metric::Data, number_data_point,
};
use serde::Serialize;

use crate::api::{ExportMetricsServiceRequest, KeyValue};
use crate::facts::{service_name_of, string_attribute, value_string};

/// The most series the index keeps (name × service × attribute set).
pub const MAX_SERIES: usize = 50_000;
/// The most buckets (`(end - start) / step`) one query may ask for.
pub const MAX_STEPS: u64 = 2_000;

const NANOS_PER_SEC: f64 = 1e9;

/// What kind of instrument a series comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// A monotonic sum (a counter): points carry the increase and the rate.
    Counter,
    /// A non-monotonic sum (an up-down counter): points carry the value.
    UpDownCounter,
    Gauge,
    /// An explicit-bucket or exponential histogram: points carry count, rate and percentiles.
    Histogram,
}

/// A question to the metric index: one metric name, optionally one service and attributes that
/// must all hold (on the point or its resource), over `[start, end]` in buckets of `step`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricQuery {
    pub name: String,
    pub service: Option<String>,
    pub attributes: Vec<(String, String)>,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    /// Bucket width; 0 means one bucket over the whole window.
    pub step_nanos: u64,
}

/// One bucket of a series (or the whole window, as [`MetricSeries::total`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricPoint {
    /// The bucket's start.
    pub time_unix_nanos: u64,
    /// Counter: the increase in the bucket; up-down counter and gauge: the last value;
    /// histogram: the number of recorded values.
    pub value: f64,
    /// Counters and histograms: `value` per second of the bucket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Histograms: the sum of the recorded values, when the exporter sent it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sum: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p95: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99: Option<f64>,
}

/// One series of a metric: its identity and its buckets that hold samples, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricSeries {
    pub name: String,
    pub service: String,
    pub kind: MetricKind,
    pub unit: String,
    pub description: String,
    /// The point attributes that tell this series from its siblings, sorted by key.
    pub attributes: BTreeMap<String, String>,
    pub points: Vec<MetricPoint>,
    /// The whole window as one bucket (its `time_unix_nanos` is the window's start).
    pub total: MetricPoint,
}

/// The identity of a series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct SeriesKey {
    name: String,
    service: String,
    attributes: Vec<(String, String)>,
}

/// The buckets of one histogram sample: upper bounds ascending (the last is `+inf`) and counts.
#[derive(Debug, Clone, PartialEq)]
struct Buckets64 {
    bounds: Arc<[f64]>,
    counts: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Number(f64),
    Histogram {
        buckets: Buckets64,
        count: u64,
        sum: Option<f64>,
        min: Option<f64>,
        max: Option<f64>,
    },
}

#[derive(Debug, Clone, PartialEq)]
struct Sample {
    time: u64,
    value: Value,
}

#[derive(Debug)]
struct Series {
    kind: MetricKind,
    unit: String,
    description: String,
    /// Resource attributes (without `service.name`), for attribute filters; the latest seen.
    resource: Vec<(String, String)>,
    /// Sorted by time.
    samples: Vec<Sample>,
}

/// The last cumulative value of a series from one process, to turn the next into a delta.
#[derive(Debug, Clone)]
struct Cumulative {
    start: u64,
    value: Value,
}

/// The in-memory index of every stored metric sample.
#[derive(Debug, Default)]
pub(crate) struct MetricIndex {
    series: HashMap<SeriesKey, Series>,
    /// (series, `service.instance.id`) → its last cumulative sample.
    cumulative: HashMap<(SeriesKey, String), Cumulative>,
    /// Samples dropped because [`MAX_SERIES`] was reached.
    pub dropped_samples: u64,
}

fn attributes_of(kvs: &[KeyValue]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = kvs
        .iter()
        .filter_map(|kv| Some((kv.key.clone(), value_string(kv.value.as_ref()?)?)))
        .collect();
    out.sort();
    out.dedup_by(|a, b| a.0 == b.0);
    out
}

fn is_cumulative(temporality: i32) -> bool {
    temporality == AggregationTemporality::Cumulative as i32
}

fn number(p: &NumberDataPoint) -> f64 {
    match p.value {
        Some(number_data_point::Value::AsDouble(d)) => d,
        Some(number_data_point::Value::AsInt(i)) => i as f64,
        None => 0.0,
    }
}

fn explicit_buckets(p: &HistogramDataPoint) -> Buckets64 {
    let mut bounds: Vec<f64> = p.explicit_bounds.clone();
    bounds.push(f64::INFINITY);
    let mut counts = p.bucket_counts.clone();
    // A point with fewer counts than bounds + 1 is malformed; pad rather than misread it.
    counts.resize(bounds.len(), 0);
    if counts.len() > bounds.len() {
        let extra: u64 = counts[bounds.len()..].iter().sum();
        counts.truncate(bounds.len());
        if let Some(last) = counts.last_mut() {
            *last += extra;
        }
    }
    Buckets64 {
        bounds: bounds.into(),
        counts,
    }
}

/// An exponential histogram as explicit buckets: the negative and zero buckets fold into one
/// bucket bounded by 0 (percentiles of durations and sizes never need their shape), each
/// positive bucket `i` is bounded by `base^(offset + i + 1)`, `base = 2^(2^-scale)`.
fn exponential_buckets(p: &ExponentialHistogramDataPoint) -> Buckets64 {
    let below: u64 = p.zero_count
        + p.negative
            .as_ref()
            .map_or(0, |b: &Buckets| b.bucket_counts.iter().sum());
    let scale = p.scale.clamp(-10, 20);
    let base = 2f64.powf(2f64.powi(-scale));
    let mut bounds = vec![0.0];
    let mut counts = vec![below];
    if let Some(pos) = &p.positive {
        // The lower edge of the first positive bucket, so interpolation starts there.
        bounds.push(base.powf(f64::from(pos.offset)));
        counts.push(0);
        // Bounded so a hostile point cannot ask for millions of buckets.
        for (i, c) in pos.bucket_counts.iter().take(4096).enumerate() {
            let exponent = f64::from(pos.offset) + i as f64 + 1.0;
            bounds.push(base.powf(exponent));
            counts.push(*c);
        }
    }
    bounds.push(f64::INFINITY);
    counts.push(0);
    Buckets64 {
        bounds: bounds.into(),
        counts,
    }
}

/// `current − previous` of a cumulative series, or `current` whole after a reset.
fn delta(previous: Option<&Cumulative>, start: u64, current: &Value) -> Value {
    let Some(prev) = previous.filter(|p| p.start == start) else {
        return current.clone();
    };
    match (&prev.value, current) {
        (Value::Number(a), Value::Number(b)) if b >= a => Value::Number(b - a),
        (
            Value::Histogram {
                buckets: pb,
                count: pc,
                sum: ps,
                ..
            },
            Value::Histogram {
                buckets,
                count,
                sum,
                min,
                max,
            },
        ) if pb.bounds == buckets.bounds
            && count >= pc
            && pb.counts.iter().zip(&buckets.counts).all(|(a, b)| b >= a) =>
        {
            Value::Histogram {
                buckets: Buckets64 {
                    bounds: Arc::clone(&buckets.bounds),
                    counts: buckets
                        .counts
                        .iter()
                        .zip(&pb.counts)
                        .map(|(b, a)| b - a)
                        .collect(),
                },
                count: count - pc,
                sum: match (sum, ps) {
                    (Some(s), Some(p)) => Some(s - p),
                    (s, _) => *s,
                },
                // Cumulative min/max cover the whole life, not the delta: leave them out.
                min: if count == pc { None } else { *min },
                max: if count == pc { None } else { *max },
            }
        }
        _ => current.clone(),
    }
}

impl MetricIndex {
    /// Takes in one metrics export.
    pub fn record(&mut self, request: &ExportMetricsServiceRequest) {
        for rm in &request.resource_metrics {
            let resource = rm.resource.clone().unwrap_or_default();
            let service = service_name_of(&resource).to_owned();
            let instance = string_attribute(&resource.attributes, "service.instance.id")
                .unwrap_or_default()
                .to_owned();
            let resource_attrs: Vec<(String, String)> = attributes_of(&resource.attributes)
                .into_iter()
                .filter(|(k, _)| k != "service.name")
                .collect();
            for metric in rm.scope_metrics.iter().flat_map(|s| &s.metrics) {
                let ctx = Context {
                    name: &metric.name,
                    service: &service,
                    instance: &instance,
                    unit: &metric.unit,
                    description: &metric.description,
                    resource: &resource_attrs,
                };
                match &metric.data {
                    Some(Data::Sum(sum)) => {
                        let kind = if sum.is_monotonic {
                            MetricKind::Counter
                        } else {
                            MetricKind::UpDownCounter
                        };
                        let cumulative = is_cumulative(sum.aggregation_temporality);
                        for p in &sum.data_points {
                            let value = Value::Number(number(p));
                            // An up-down counter's cumulative value is its level: keep it
                            // as is; its deltas are summed per bucket like a counter's.
                            let as_delta = cumulative && kind == MetricKind::Counter;
                            self.add(&ctx, kind, &p.attributes, p, value, as_delta);
                        }
                    }
                    Some(Data::Gauge(g)) => {
                        for p in &g.data_points {
                            let value = Value::Number(number(p));
                            self.add(&ctx, MetricKind::Gauge, &p.attributes, p, value, false);
                        }
                    }
                    Some(Data::Histogram(h)) => {
                        let cumulative = is_cumulative(h.aggregation_temporality);
                        for p in &h.data_points {
                            let value = Value::Histogram {
                                buckets: explicit_buckets(p),
                                count: p.count,
                                sum: p.sum,
                                min: p.min,
                                max: p.max,
                            };
                            let times = (p.start_time_unix_nano, p.time_unix_nano);
                            self.add_at(&ctx, &p.attributes, times, value, cumulative);
                        }
                    }
                    Some(Data::ExponentialHistogram(h)) => {
                        let cumulative = is_cumulative(h.aggregation_temporality);
                        for p in &h.data_points {
                            let value = Value::Histogram {
                                buckets: exponential_buckets(p),
                                count: p.count,
                                sum: p.sum,
                                min: p.min,
                                max: p.max,
                            };
                            let times = (p.start_time_unix_nano, p.time_unix_nano);
                            self.add_at(&ctx, &p.attributes, times, value, cumulative);
                        }
                    }
                    // Summaries carry no mergeable buckets; they are kept raw only.
                    Some(Data::Summary(_)) | None => {}
                }
            }
        }
    }

    fn add(
        &mut self,
        ctx: &Context<'_>,
        kind: MetricKind,
        attributes: &[KeyValue],
        p: &NumberDataPoint,
        value: Value,
        as_delta: bool,
    ) {
        let times = (p.start_time_unix_nano, p.time_unix_nano);
        self.insert(ctx, kind, attributes, times, value, as_delta);
    }

    fn add_at(
        &mut self,
        ctx: &Context<'_>,
        attributes: &[KeyValue],
        times: (u64, u64),
        value: Value,
        cumulative: bool,
    ) {
        self.insert(
            ctx,
            MetricKind::Histogram,
            attributes,
            times,
            value,
            cumulative,
        );
    }

    fn insert(
        &mut self,
        ctx: &Context<'_>,
        kind: MetricKind,
        attributes: &[KeyValue],
        (start, time): (u64, u64),
        value: Value,
        as_delta: bool,
    ) {
        let key = SeriesKey {
            name: ctx.name.to_owned(),
            service: ctx.service.to_owned(),
            attributes: attributes_of(attributes),
        };
        if !self.series.contains_key(&key) && self.series.len() >= MAX_SERIES {
            self.dropped_samples += 1;
            return;
        }
        let value = if as_delta {
            let state_key = (key.clone(), ctx.instance.to_owned());
            let d = delta(self.cumulative.get(&state_key), start, &value);
            self.cumulative
                .insert(state_key, Cumulative { start, value });
            d
        } else {
            value
        };
        let series = self.series.entry(key).or_insert_with(|| Series {
            kind,
            unit: ctx.unit.to_owned(),
            description: ctx.description.to_owned(),
            resource: Vec::new(),
            samples: Vec::new(),
        });
        series.kind = kind;
        if series.resource.as_slice() != ctx.resource {
            series.resource = ctx.resource.to_vec();
        }
        let sample = Sample { time, value };
        // Exports arrive in time order almost always; insert in place otherwise.
        match series.samples.last() {
            Some(last) if last.time > time => {
                let at = series.samples.partition_point(|s| s.time <= time);
                series.samples.insert(at, sample);
            }
            _ => series.samples.push(sample),
        }
    }

    /// Forgets samples older than `cutoff` and the series left empty.
    pub fn prune(&mut self, cutoff: u64) {
        self.series.retain(|_, s| {
            let keep_from = s.samples.partition_point(|p| p.time < cutoff);
            s.samples.drain(..keep_from);
            !s.samples.is_empty()
        });
        let live = &self.series;
        self.cumulative.retain(|(k, _), _| live.contains_key(k));
    }

    /// The distinct metric names, of one service when given, sorted.
    pub fn names(&self, service: Option<&str>) -> Vec<String> {
        let mut names: Vec<String> = self
            .series
            .keys()
            .filter(|k| service.is_none_or(|s| s == k.service))
            .map(|k| k.name.clone())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// The series that answer `query`, sorted by service then attributes.
    pub fn query(&self, query: &MetricQuery) -> Vec<MetricSeries> {
        let mut keys: Vec<&SeriesKey> = self
            .series
            .iter()
            .filter(|(k, s)| {
                k.name == query.name
                    && query.service.as_ref().is_none_or(|svc| *svc == k.service)
                    && query.attributes.iter().all(|(qk, qv)| {
                        k.attributes
                            .iter()
                            .chain(&s.resource)
                            .any(|(ak, av)| ak == qk && av == qv)
                    })
            })
            .map(|(k, _)| k)
            .collect();
        keys.sort();
        keys.into_iter()
            .filter_map(|k| {
                let s = self.series.get(k)?;
                answer(k, s, query)
            })
            .collect()
    }
}

struct Context<'a> {
    name: &'a str,
    service: &'a str,
    instance: &'a str,
    unit: &'a str,
    description: &'a str,
    resource: &'a [(String, String)],
}

fn answer(key: &SeriesKey, s: &Series, q: &MetricQuery) -> Option<MetricSeries> {
    let from = s.samples.partition_point(|p| p.time < q.start_unix_nanos);
    let to = s.samples.partition_point(|p| p.time <= q.end_unix_nanos);
    let window = s.samples.get(from..to).filter(|w| !w.is_empty())?;
    let span = q.end_unix_nanos.saturating_sub(q.start_unix_nanos).max(1);
    let step = if q.step_nanos == 0 {
        span
    } else {
        q.step_nanos
    };
    let mut points = Vec::new();
    let mut i = 0;
    while i < window.len() {
        let bucket = (window[i].time - q.start_unix_nanos) / step;
        let j = i + window[i..]
            .iter()
            .take_while(|p| (p.time - q.start_unix_nanos) / step == bucket)
            .count();
        let bucket_start = q.start_unix_nanos + bucket * step;
        points.push(aggregate(s.kind, &window[i..j], bucket_start, step));
        i = j;
    }
    Some(MetricSeries {
        name: key.name.clone(),
        service: key.service.clone(),
        kind: s.kind,
        unit: s.unit.clone(),
        description: s.description.clone(),
        attributes: key.attributes.iter().cloned().collect(),
        points,
        total: aggregate(s.kind, window, q.start_unix_nanos, span),
    })
}

fn aggregate(kind: MetricKind, samples: &[Sample], start: u64, width_nanos: u64) -> MetricPoint {
    let secs = width_nanos as f64 / NANOS_PER_SEC;
    let mut point = MetricPoint {
        time_unix_nanos: start,
        ..MetricPoint::default()
    };
    match kind {
        MetricKind::Counter => {
            point.value = samples.iter().map(|s| number_of(&s.value)).sum();
            point.rate = Some(point.value / secs);
        }
        MetricKind::UpDownCounter | MetricKind::Gauge => {
            point.value = samples.last().map_or(0.0, |s| number_of(&s.value));
        }
        MetricKind::Histogram => {
            let mut merged: BTreeMap<u64, u64> = BTreeMap::new();
            let (mut count, mut sum, mut has_sum) = (0u64, 0.0, false);
            let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
            for s in samples {
                if let Value::Histogram {
                    buckets,
                    count: c,
                    sum: sm,
                    min: mn,
                    max: mx,
                } = &s.value
                {
                    count += c;
                    if let Some(v) = sm {
                        sum += v;
                        has_sum = true;
                    }
                    if let Some(v) = mn {
                        min = min.min(*v);
                    }
                    if let Some(v) = mx {
                        max = max.max(*v);
                    }
                    for (b, c) in buckets.bounds.iter().zip(&buckets.counts) {
                        *merged.entry(ordered(*b)).or_default() += c;
                    }
                }
            }
            point.value = count as f64;
            point.rate = Some(count as f64 / secs);
            point.sum = has_sum.then_some(sum);
            let buckets: Vec<(f64, u64)> =
                merged.into_iter().map(|(b, c)| (unordered(b), c)).collect();
            let clamp = (
                min.is_finite().then_some(min),
                max.is_finite().then_some(max),
            );
            point.p50 = quantile(&buckets, 0.50, clamp);
            point.p95 = quantile(&buckets, 0.95, clamp);
            point.p99 = quantile(&buckets, 0.99, clamp);
        }
    }
    point
}

fn number_of(v: &Value) -> f64 {
    match v {
        Value::Number(n) => *n,
        Value::Histogram { count, .. } => *count as f64,
    }
}

/// An f64 as a u64 that sorts as the number does (bounds are never NaN in practice; a NaN
/// sorts last).
fn ordered(f: f64) -> u64 {
    let bits = f.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | 1 << 63
    }
}

fn unordered(u: u64) -> f64 {
    if u >> 63 == 1 {
        f64::from_bits(u & !(1 << 63))
    } else {
        f64::from_bits(!u)
    }
}

/// The `q` quantile of merged buckets (upper bound, count), interpolated linearly inside its
/// bucket as Prometheus' `histogram_quantile` does, the lowest bucket starting at 0 (or the
/// minimum) and the `+inf` bucket answering its lower bound (or the maximum); clamped to the
/// recorded minimum and maximum when known.
fn quantile(buckets: &[(f64, u64)], q: f64, (min, max): (Option<f64>, Option<f64>)) -> Option<f64> {
    let total: u64 = buckets.iter().map(|(_, c)| c).sum();
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut seen = 0u64;
    let mut lower = min.map_or(0.0, |m| m.min(0.0));
    for (upper, count) in buckets {
        if *count > 0 && (seen + count) as f64 >= rank {
            let value = if upper.is_infinite() {
                max.unwrap_or(lower)
            } else {
                let within = (rank - seen as f64) / *count as f64;
                lower + (upper - lower) * within
            };
            let value = min.map_or(value, |m| value.max(m));
            return Some(max.map_or(value, |m| value.min(m)));
        }
        seen += count;
        if upper.is_finite() {
            lower = *upper;
        }
    }
    max.or(Some(lower))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
    use opentelemetry_proto::tonic::metrics::v1::{
        ExponentialHistogram, Gauge, Histogram, Metric, ResourceMetrics, ScopeMetrics, Sum,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;

    const SEC: u64 = 1_000_000_000;

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.into())),
            }),
            ..KeyValue::default()
        }
    }

    fn export(service: &str, instance: &str, data: Data) -> ExportMetricsServiceRequest {
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", service),
                        kv("service.instance.id", instance),
                    ],
                    ..Resource::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: "m".into(),
                        unit: "1".into(),
                        data: Some(data),
                        ..Metric::default()
                    }],
                    ..ScopeMetrics::default()
                }],
                ..ResourceMetrics::default()
            }],
        }
    }

    fn point(start: u64, time: u64, v: f64, attrs: Vec<KeyValue>) -> NumberDataPoint {
        NumberDataPoint {
            attributes: attrs,
            start_time_unix_nano: start,
            time_unix_nano: time,
            value: Some(number_data_point::Value::AsDouble(v)),
            ..NumberDataPoint::default()
        }
    }

    fn sum(temporality: AggregationTemporality, points: Vec<NumberDataPoint>) -> Data {
        Data::Sum(Sum {
            data_points: points,
            aggregation_temporality: temporality as i32,
            is_monotonic: true,
        })
    }

    fn query(step: u64) -> MetricQuery {
        MetricQuery {
            name: "m".into(),
            service: None,
            attributes: vec![],
            start_unix_nanos: 100 * SEC,
            end_unix_nanos: 160 * SEC,
            step_nanos: step,
        }
    }

    #[test]
    fn cumulative_counters_become_increases_and_resets_count_whole() {
        let mut index = MetricIndex::default();
        let c = AggregationTemporality::Cumulative;
        for (start, t, v) in [
            (90, 100, 5.0),
            (90, 110, 8.0),
            (90, 130, 20.0),
            (125, 140, 3.0),
        ] {
            index.record(&export(
                "a",
                "i1",
                sum(c, vec![point(start * SEC, t * SEC, v, vec![])]),
            ));
        }
        let got = index.query(&query(20 * SEC));
        assert_eq!(got.len(), 1);
        let points: Vec<(u64, f64)> = got[0]
            .points
            .iter()
            .map(|p| (p.time_unix_nanos / SEC, p.value))
            .collect();
        // 5 (first, whole) + 3 in [100,120); 12 in [120,140); 3 after the restart in [140,160).
        assert_eq!(points, vec![(100, 8.0), (120, 12.0), (140, 3.0)]);
        assert_eq!(got[0].total.value, 23.0);
        assert_eq!(got[0].points[1].rate, Some(12.0 / 20.0));
        assert_eq!(got[0].kind, MetricKind::Counter);
    }

    #[test]
    fn two_processes_of_one_service_keep_their_own_cumulative_state() {
        let mut index = MetricIndex::default();
        let c = AggregationTemporality::Cumulative;
        for (inst, t, v) in [
            ("i1", 101, 10.0),
            ("i2", 102, 1.0),
            ("i1", 111, 12.0),
            ("i2", 112, 4.0),
        ] {
            index.record(&export(
                "a",
                inst,
                sum(c, vec![point(SEC, t * SEC, v, vec![])]),
            ));
        }
        assert_eq!(index.query(&query(0))[0].total.value, 16.0);
    }

    #[test]
    fn delta_counters_sum_and_attributes_split_and_filter_series() {
        let mut index = MetricIndex::default();
        let d = AggregationTemporality::Delta;
        let premium = vec![kv("customer.type", "premium")];
        let standard = vec![kv("customer.type", "standard")];
        index.record(&export(
            "a",
            "",
            sum(
                d,
                vec![
                    point(0, 101 * SEC, 2.0, premium.clone()),
                    point(0, 101 * SEC, 7.0, standard.clone()),
                ],
            ),
        ));
        index.record(&export(
            "a",
            "",
            sum(d, vec![point(0, 111 * SEC, 3.0, premium.clone())]),
        ));
        assert_eq!(index.query(&query(0)).len(), 2);
        let mut q = query(0);
        q.attributes = vec![("customer.type".into(), "premium".into())];
        let got = index.query(&q);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].total.value, 5.0);
        q.attributes = vec![("customer.type".into(), "gold".into())];
        assert!(index.query(&q).is_empty());
        q.attributes = vec![("service.instance.id".into(), "".into())];
        assert_eq!(index.query(&q).len(), 2, "resource attributes filter too");
        let mut q = query(0);
        q.service = Some("b".into());
        assert!(index.query(&q).is_empty());
        assert_eq!(index.names(Some("a")), vec!["m".to_owned()]);
    }

    #[test]
    fn gauges_answer_the_last_value_of_each_bucket() {
        let mut index = MetricIndex::default();
        for (t, v) in [(101, 4.0), (105, 9.0), (125, 1.0)] {
            index.record(&export(
                "a",
                "",
                Data::Gauge(Gauge {
                    data_points: vec![point(0, t * SEC, v, vec![])],
                }),
            ));
        }
        let got = index.query(&query(20 * SEC));
        let values: Vec<f64> = got[0].points.iter().map(|p| p.value).collect();
        assert_eq!(values, vec![9.0, 1.0]);
        assert_eq!(got[0].points[0].rate, None);
    }

    fn histogram(
        temporality: AggregationTemporality,
        start: u64,
        t: u64,
        counts: Vec<u64>,
    ) -> Data {
        Data::Histogram(Histogram {
            data_points: vec![HistogramDataPoint {
                start_time_unix_nano: start,
                time_unix_nano: t,
                count: counts.iter().sum(),
                sum: Some(1.0),
                bucket_counts: counts,
                explicit_bounds: vec![10.0, 20.0, 40.0],
                ..HistogramDataPoint::default()
            }],
            aggregation_temporality: temporality as i32,
        })
    }

    #[test]
    fn histogram_percentiles_interpolate_within_buckets_of_the_deltas() {
        let mut index = MetricIndex::default();
        let c = AggregationTemporality::Cumulative;
        index.record(&export(
            "a",
            "",
            histogram(c, SEC, 101 * SEC, vec![100, 0, 0, 0]),
        ));
        index.record(&export(
            "a",
            "",
            histogram(c, SEC, 121 * SEC, vec![100, 100, 0, 0]),
        ));
        let got = index.query(&query(20 * SEC));
        let p = &got[0].points;
        assert_eq!(p.len(), 2);
        // First bucket: 100 values in [0,10] → p50 at 5.
        assert_eq!(p[0].p50, Some(5.0));
        // Second bucket: the delta is 100 values in (10,20] → p50 at 15, p99 at 19.9.
        assert_eq!(p[1].value, 100.0);
        assert_eq!(p[1].p50, Some(15.0));
        assert!((p[1].p99.unwrap() - 19.9).abs() < 1e-9);
        // The whole window: 200 values, median at the 10 boundary.
        assert_eq!(got[0].total.value, 200.0);
        assert_eq!(got[0].total.p50, Some(10.0));
        assert_eq!(got[0].total.p95, Some(19.0));
    }

    #[test]
    fn values_in_the_overflow_bucket_answer_the_maximum() {
        let mut index = MetricIndex::default();
        let mut data = histogram(
            AggregationTemporality::Delta,
            0,
            101 * SEC,
            vec![0, 0, 0, 10],
        );
        if let Data::Histogram(h) = &mut data {
            h.data_points[0].max = Some(75.0);
        }
        index.record(&export("a", "", data));
        assert_eq!(index.query(&query(0))[0].total.p99, Some(75.0));
    }

    #[test]
    fn exponential_histograms_give_percentiles_within_a_bucket_width() {
        let mut index = MetricIndex::default();
        // scale 0: bucket i covers (2^i, 2^(i+1)]; 10 values in (8,16], 10 in (16,32].
        let data = Data::ExponentialHistogram(ExponentialHistogram {
            data_points: vec![ExponentialHistogramDataPoint {
                time_unix_nano: 101 * SEC,
                count: 20,
                scale: 0,
                positive: Some(Buckets {
                    offset: 3,
                    bucket_counts: vec![10, 10],
                }),
                ..ExponentialHistogramDataPoint::default()
            }],
            aggregation_temporality: AggregationTemporality::Delta as i32,
        });
        index.record(&export("a", "", data));
        let total = &index.query(&query(0))[0].total;
        assert_eq!(total.value, 20.0);
        assert_eq!(total.p50, Some(16.0));
        let p95 = total.p95.unwrap();
        assert!((16.0..=32.0).contains(&p95), "{p95}");
    }

    #[test]
    fn pruning_forgets_old_samples_and_empty_series() {
        let mut index = MetricIndex::default();
        let d = AggregationTemporality::Delta;
        index.record(&export(
            "a",
            "",
            sum(d, vec![point(0, 101 * SEC, 1.0, vec![])]),
        ));
        index.record(&export(
            "a",
            "",
            sum(d, vec![point(0, 131 * SEC, 1.0, vec![])]),
        ));
        index.prune(120 * SEC);
        assert_eq!(index.query(&query(0))[0].total.value, 1.0);
        index.prune(200 * SEC);
        assert!(index.names(None).is_empty());
    }

    #[test]
    fn ordered_floats_sort_as_numbers() {
        let mut v = vec![3.5, -1.0, 0.0, f64::INFINITY, 1e-9, -7.25];
        let mut keys: Vec<u64> = v.iter().map(|f| ordered(*f)).collect();
        keys.sort();
        v.sort_by(f64::total_cmp);
        assert_eq!(keys.into_iter().map(unordered).collect::<Vec<_>>(), v);
    }
}
