"""Records onboarding-like business metrics with the Python OpenTelemetry SDK and exports them
over OTLP: a counter and a histogram by customer.type, an up-down counter, an observable gauge,
and an exponential histogram, in the temporality asked for.
Usage: otlp_metrics_peer.py grpc|http ENDPOINT cumulative|delta SERVICE"""
import sys

from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    MeterProvider,
    ObservableGauge,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import AggregationTemporality, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.metrics import Observation
from opentelemetry.sdk.resources import Resource

mode, endpoint, temporality, service = sys.argv[1:5]
chosen = AggregationTemporality.DELTA if temporality == "delta" else AggregationTemporality.CUMULATIVE
preference = {
    Counter: chosen,
    UpDownCounter: AggregationTemporality.CUMULATIVE,
    Histogram: chosen,
    ObservableGauge: AggregationTemporality.CUMULATIVE,
}

if mode == "grpc":
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

    exporter = OTLPMetricExporter(endpoint=endpoint, insecure=True, preferred_temporality=preference)
else:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    exporter = OTLPMetricExporter(endpoint=endpoint + "/v1/metrics", preferred_temporality=preference)

# Exported by hand (force_flush) between batches, so each batch is one export.
reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
provider = MeterProvider(
    resource=Resource.create({"service.name": service}),
    metric_readers=[reader],
    views=[View(instrument_name="onboarding.step.size", aggregation=ExponentialBucketHistogramAggregation())],
)
meter = provider.get_meter("onboarding-business", "1.0")
requests = meter.create_counter("onboarding.requests", unit="{request}", description="onboardings asked for")
duration = meter.create_histogram("onboarding.duration", unit="ms", description="time to onboard")
active = meter.create_up_down_counter("onboarding.active", unit="{request}")
size = meter.create_histogram("onboarding.step.size", unit="By")
meter.create_observable_gauge("onboarding.queue.lag", callbacks=[lambda _options: [Observation(42.5)]], unit="s")

# Two exports: premium 3 then 4 more (7), standard 10 then 0 more (10).
for premium, standard in [(3, 10), (4, 0)]:
    for _ in range(premium):
        requests.add(1, {"customer.type": "premium"})
        duration.record(180.0, {"customer.type": "premium"})
    for _ in range(standard):
        requests.add(1, {"customer.type": "standard"})
        duration.record(40.0, {"customer.type": "standard"})
    active.add(2)
    for v in (100, 200, 300, 400):
        size.record(v)
    provider.force_flush()
provider.shutdown()
print("exported")
