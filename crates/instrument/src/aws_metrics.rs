//! The metrics CloudWatch reports for Lambda functions (`AWS/Lambda`) and SQS queues
//! (`AWS/SQS`), as OpenTelemetry instruments, so the local stand-ins report what AWS does: the
//! FaaS metrics of the semantic conventions where they exist, `aws.lambda.*` and `aws.sqs.*`
//! (CloudWatch's names in snake case) for the rest. The names, units and the CloudWatch metric
//! each one maps to are in [`LAMBDA_METRICS`] and [`SQS_METRICS`] (and `docs/aws-metrics.md`).
//!
//! - [`FunctionMetrics`]: what the Lambda host records per invocation, by `faas.name`.
//! - [`observe_queues`]: observable instruments over a caller's snapshot of its queues, by
//!   `messaging.destination.name`, read at each export.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter, ObservableCounter, ObservableGauge};
use opentelemetry_semantic_conventions::attribute::{
    FAAS_NAME, FAAS_TRIGGER, MESSAGING_DESTINATION_NAME,
};
use opentelemetry_semantic_conventions::metric as semconv;

pub const FAAS_INVOCATIONS: &str = semconv::FAAS_INVOCATIONS;
pub const FAAS_ERRORS: &str = semconv::FAAS_ERRORS;
pub const FAAS_TIMEOUTS: &str = semconv::FAAS_TIMEOUTS;
pub const FAAS_COLDSTARTS: &str = semconv::FAAS_COLDSTARTS;
pub const FAAS_INVOKE_DURATION: &str = semconv::FAAS_INVOKE_DURATION;
pub const FAAS_INIT_DURATION: &str = semconv::FAAS_INIT_DURATION;
pub const LAMBDA_THROTTLES: &str = "aws.lambda.throttles";
pub const LAMBDA_CONCURRENT_EXECUTIONS: &str = "aws.lambda.concurrent_executions";

pub const SQS_VISIBLE: &str = "aws.sqs.approximate_number_of_messages_visible";
pub const SQS_NOT_VISIBLE: &str = "aws.sqs.approximate_number_of_messages_not_visible";
pub const SQS_DELAYED: &str = "aws.sqs.approximate_number_of_messages_delayed";
pub const SQS_OLDEST_AGE: &str = "aws.sqs.approximate_age_of_oldest_message";
pub const SQS_SENT: &str = "aws.sqs.number_of_messages_sent";
pub const SQS_RECEIVED: &str = "aws.sqs.number_of_messages_received";
pub const SQS_DELETED: &str = "aws.sqs.number_of_messages_deleted";
pub const SQS_MOVED_TO_DEAD_LETTER: &str = "aws.sqs.number_of_messages_moved_to_dead_letter";

/// The attribute that names a function (CloudWatch's `FunctionName` dimension).
pub const FUNCTION_ATTRIBUTE: &str = FAAS_NAME;
/// The attribute that names a queue (CloudWatch's `QueueName` dimension).
pub const QUEUE_ATTRIBUTE: &str = MESSAGING_DESTINATION_NAME;

/// One metric: its name, instrument, unit and the CloudWatch metric it stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AwsMetric {
    pub name: &'static str,
    pub instrument: &'static str,
    pub unit: &'static str,
    pub cloudwatch: &'static str,
}

const fn metric(
    name: &'static str,
    instrument: &'static str,
    unit: &'static str,
    cloudwatch: &'static str,
) -> AwsMetric {
    AwsMetric {
        name,
        instrument,
        unit,
        cloudwatch,
    }
}

/// The Lambda host's metrics, each with `faas.name` and `faas.trigger`.
pub const LAMBDA_METRICS: &[AwsMetric] = &[
    metric(
        FAAS_INVOCATIONS,
        "counter",
        "{invocation}",
        "AWS/Lambda Invocations",
    ),
    metric(
        FAAS_ERRORS,
        "counter",
        "{error}",
        "AWS/Lambda Errors (function errors, timeouts and runtime failures)",
    ),
    metric(
        FAAS_TIMEOUTS,
        "counter",
        "{timeout}",
        "Errors with Status: timeout in the REPORT line",
    ),
    metric(
        FAAS_COLDSTARTS,
        "counter",
        "{coldstart}",
        "Init Duration present in the REPORT line",
    ),
    metric(
        FAAS_INVOKE_DURATION,
        "histogram",
        "s",
        "AWS/Lambda Duration (CloudWatch reports ms)",
    ),
    metric(
        FAAS_INIT_DURATION,
        "histogram",
        "s",
        "Init Duration of the REPORT line",
    ),
    metric(
        LAMBDA_THROTTLES,
        "counter",
        "{throttle}",
        "AWS/Lambda Throttles",
    ),
    metric(
        LAMBDA_CONCURRENT_EXECUTIONS,
        "gauge",
        "{execution}",
        "AWS/Lambda ConcurrentExecutions",
    ),
];

/// The broker's metrics, each with `messaging.destination.name`.
pub const SQS_METRICS: &[AwsMetric] = &[
    metric(
        SQS_VISIBLE,
        "gauge",
        "{message}",
        "AWS/SQS ApproximateNumberOfMessagesVisible",
    ),
    metric(
        SQS_NOT_VISIBLE,
        "gauge",
        "{message}",
        "AWS/SQS ApproximateNumberOfMessagesNotVisible",
    ),
    metric(
        SQS_DELAYED,
        "gauge",
        "{message}",
        "AWS/SQS ApproximateNumberOfMessagesDelayed",
    ),
    metric(
        SQS_OLDEST_AGE,
        "gauge",
        "s",
        "AWS/SQS ApproximateAgeOfOldestMessage",
    ),
    metric(
        SQS_SENT,
        "counter",
        "{message}",
        "AWS/SQS NumberOfMessagesSent",
    ),
    metric(
        SQS_RECEIVED,
        "counter",
        "{message}",
        "AWS/SQS NumberOfMessagesReceived",
    ),
    metric(
        SQS_DELETED,
        "counter",
        "{message}",
        "AWS/SQS NumberOfMessagesDeleted",
    ),
    metric(
        SQS_MOVED_TO_DEAD_LETTER,
        "counter",
        "{message}",
        "none (CloudWatch shows the dead-letter queue's own ApproximateNumberOfMessagesVisible)",
    ),
];

fn unit_of(name: &str) -> &'static str {
    LAMBDA_METRICS
        .iter()
        .chain(SQS_METRICS)
        .find(|m| m.name == name)
        .map_or("", |m| m.unit)
}

/// How one invocation ended, as the metrics count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvocationResult {
    /// The function answered (its own batch item failures included).
    Success,
    /// The function posted an error.
    FunctionError,
    /// The invocation ran past the function's timeout.
    Timeout,
    /// The environment failed (init error, runtime exit).
    Failed,
}

/// The `AWS/Lambda` figures of one function, recorded by whoever runs its invocations.
#[derive(Debug, Clone)]
pub struct FunctionMetrics {
    attributes: Arc<[KeyValue]>,
    invocations: Counter<u64>,
    errors: Counter<u64>,
    timeouts: Counter<u64>,
    coldstarts: Counter<u64>,
    throttles: Counter<u64>,
    invoke_duration: Histogram<f64>,
    init_duration: Histogram<f64>,
    running: Arc<AtomicI64>,
    _concurrent: ObservableGauge<i64>,
}

impl FunctionMetrics {
    /// The instruments of `function` on `meter`. Every counter is created at zero, so a
    /// function that was never throttled shows `0` rather than nothing.
    pub fn new(meter: &Meter, function: &str) -> Self {
        let attributes: Arc<[KeyValue]> = Arc::from(vec![
            KeyValue::new(FAAS_NAME, function.to_owned()),
            KeyValue::new(FAAS_TRIGGER, "pubsub"),
        ]);
        let counter = |name: &'static str| {
            let c = meter.u64_counter(name).with_unit(unit_of(name)).build();
            c.add(0, &attributes);
            c
        };
        let histogram = |name: &'static str| {
            meter
                .f64_histogram(name)
                .with_unit(unit_of(name))
                // Lambda durations run from a millisecond to 15 minutes.
                .with_boundaries(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
                    5.0, 7.5, 10.0, 30.0, 60.0, 300.0, 900.0,
                ])
                .build()
        };
        let running = Arc::new(AtomicI64::new(0));
        let observed = Arc::clone(&running);
        let gauge_attributes = Arc::clone(&attributes);
        let concurrent = meter
            .i64_observable_gauge(LAMBDA_CONCURRENT_EXECUTIONS)
            .with_unit(unit_of(LAMBDA_CONCURRENT_EXECUTIONS))
            .with_callback(move |o| o.observe(observed.load(Ordering::Relaxed), &gauge_attributes))
            .build();
        Self {
            invocations: counter(FAAS_INVOCATIONS),
            errors: counter(FAAS_ERRORS),
            timeouts: counter(FAAS_TIMEOUTS),
            coldstarts: counter(FAAS_COLDSTARTS),
            throttles: counter(LAMBDA_THROTTLES),
            invoke_duration: histogram(FAAS_INVOKE_DURATION),
            init_duration: histogram(FAAS_INIT_DURATION),
            attributes,
            running,
            _concurrent: concurrent,
        }
    }

    /// An invocation starts: counted among the concurrent executions until [`Self::finished`].
    pub fn started(&self) {
        self.running.fetch_add(1, Ordering::Relaxed);
    }

    /// An invocation ended after `duration`; `init` is the init phase of a cold start.
    pub fn finished(&self, result: InvocationResult, duration: Duration, init: Option<Duration>) {
        self.running.fetch_sub(1, Ordering::Relaxed);
        let a = &self.attributes;
        self.invocations.add(1, a);
        self.invoke_duration.record(duration.as_secs_f64(), a);
        if let Some(init) = init {
            self.coldstarts.add(1, a);
            self.init_duration.record(init.as_secs_f64(), a);
        }
        match result {
            InvocationResult::Success => {}
            InvocationResult::FunctionError | InvocationResult::Failed => self.errors.add(1, a),
            InvocationResult::Timeout => {
                self.errors.add(1, a);
                self.timeouts.add(1, a);
            }
        }
    }

    /// An invocation was refused for want of concurrency.
    pub fn throttled(&self) {
        self.throttles.add(1, &self.attributes);
    }
}

/// One queue's figures at one instant, as the broker knows them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueFigures {
    pub queue: String,
    pub visible: u64,
    pub not_visible: u64,
    pub delayed: u64,
    pub oldest_age_secs: u64,
    /// Counters since the broker started.
    pub sent: u64,
    pub received: u64,
    pub deleted: u64,
    pub moved_to_dead_letter: u64,
}

/// The observable instruments of [`observe_queues`]; they report while this is kept.
#[derive(Debug)]
pub struct QueueInstruments {
    _gauges: Vec<ObservableGauge<u64>>,
    _counters: Vec<ObservableCounter<u64>>,
}

/// Registers the `AWS/SQS` instruments on `meter`, each reading `snapshot` at collection (a
/// cheap call: it is made once per instrument per export).
pub fn observe_queues(
    meter: &Meter,
    snapshot: Arc<dyn Fn() -> Vec<QueueFigures> + Send + Sync>,
) -> QueueInstruments {
    type Pick = fn(&QueueFigures) -> u64;
    let gauges: [(&'static str, Pick); 4] = [
        (SQS_VISIBLE, |f| f.visible),
        (SQS_NOT_VISIBLE, |f| f.not_visible),
        (SQS_DELAYED, |f| f.delayed),
        (SQS_OLDEST_AGE, |f| f.oldest_age_secs),
    ];
    let counters: [(&'static str, Pick); 4] = [
        (SQS_SENT, |f| f.sent),
        (SQS_RECEIVED, |f| f.received),
        (SQS_DELETED, |f| f.deleted),
        (SQS_MOVED_TO_DEAD_LETTER, |f| f.moved_to_dead_letter),
    ];
    let gauges = gauges
        .into_iter()
        .map(|(name, pick)| {
            let snapshot = Arc::clone(&snapshot);
            meter
                .u64_observable_gauge(name)
                .with_unit(unit_of(name))
                .with_callback(move |o| {
                    for f in snapshot() {
                        o.observe(pick(&f), &[KeyValue::new(QUEUE_ATTRIBUTE, f.queue.clone())]);
                    }
                })
                .build()
        })
        .collect();
    let counters = counters
        .into_iter()
        .map(|(name, pick)| {
            let snapshot = Arc::clone(&snapshot);
            meter
                .u64_observable_counter(name)
                .with_unit(unit_of(name))
                .with_callback(move |o| {
                    for f in snapshot() {
                        o.observe(pick(&f), &[KeyValue::new(QUEUE_ATTRIBUTE, f.queue.clone())]);
                    }
                })
                .build()
        })
        .collect();
    QueueInstruments {
        _gauges: gauges,
        _counters: counters,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
    use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

    fn provider() -> (SdkMeterProvider, InMemoryMetricExporter) {
        let exporter = InMemoryMetricExporter::default();
        let reader = PeriodicReader::builder(exporter.clone()).build();
        (
            SdkMeterProvider::builder().with_reader(reader).build(),
            exporter,
        )
    }

    /// The u64 sum of `name` over the last export, every data point added.
    fn u64_sum(exported: &[ResourceMetrics], name: &str) -> Option<u64> {
        let last = exported.last()?;
        let metric = last
            .scope_metrics()
            .flat_map(|s| s.metrics())
            .find(|m| m.name() == name)?;
        match metric.data() {
            AggregatedMetrics::U64(MetricData::Sum(s)) => {
                Some(s.data_points().map(|p| p.value()).sum())
            }
            AggregatedMetrics::U64(MetricData::Gauge(g)) => {
                Some(g.data_points().map(|p| p.value()).sum())
            }
            _ => None,
        }
    }

    #[test]
    fn invocations_errors_timeouts_and_cold_starts_are_counted_apart() {
        let (provider, exporter) = provider();
        let m = FunctionMetrics::new(&provider.meter("t"), "fn");
        for (result, init) in [
            (InvocationResult::Success, Some(Duration::from_millis(80))),
            (InvocationResult::Success, None),
            (InvocationResult::FunctionError, None),
            (InvocationResult::Timeout, None),
            (InvocationResult::Failed, Some(Duration::from_millis(5))),
        ] {
            m.started();
            m.finished(result, Duration::from_millis(20), init);
        }
        provider.force_flush().expect("flushed");
        let out = exporter.get_finished_metrics().expect("exported");
        assert_eq!(u64_sum(&out, FAAS_INVOCATIONS), Some(5));
        assert_eq!(u64_sum(&out, FAAS_ERRORS), Some(3));
        assert_eq!(u64_sum(&out, FAAS_TIMEOUTS), Some(1));
        assert_eq!(u64_sum(&out, FAAS_COLDSTARTS), Some(2));
        assert_eq!(u64_sum(&out, LAMBDA_THROTTLES), Some(0), "present at zero");
    }

    #[test]
    fn queue_figures_are_read_at_export_per_queue() {
        let (provider, exporter) = provider();
        let figures = Arc::new(std::sync::Mutex::new(vec![QueueFigures {
            queue: "q".into(),
            visible: 4,
            sent: 9,
            ..QueueFigures::default()
        }]));
        let read = Arc::clone(&figures);
        let _instruments = observe_queues(
            &provider.meter("t"),
            Arc::new(move || read.lock().map(|f| f.clone()).unwrap_or_default()),
        );
        provider.force_flush().expect("flushed");
        if let Ok(mut f) = figures.lock() {
            f[0].visible = 1;
            f[0].sent = 12;
        }
        provider.force_flush().expect("flushed");
        let out = exporter.get_finished_metrics().expect("exported");
        assert_eq!(u64_sum(&out, SQS_VISIBLE), Some(1));
        assert_eq!(u64_sum(&out, SQS_SENT), Some(12));
        assert_eq!(u64_sum(&out[..1], SQS_VISIBLE), Some(4));
    }

    #[test]
    fn every_name_has_a_unit_and_a_cloudwatch_mapping() {
        for m in LAMBDA_METRICS.iter().chain(SQS_METRICS) {
            assert!(!m.unit.is_empty() && !m.cloudwatch.is_empty(), "{m:?}");
        }
        assert_eq!(LAMBDA_METRICS.len(), 8);
        assert_eq!(SQS_METRICS.len(), 8);
    }
}
