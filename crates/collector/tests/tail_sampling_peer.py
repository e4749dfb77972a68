"""Sends N traces through the Python OpenTelemetry SDK's OTLP/gRPC exporter, each split over two
exports: first its two child spans, then — after PAUSE seconds, longer than the collector's
decision wait — its root. Every 50th trace has a child with the error status, every 50th
(offset 25) a child lasting 2 s; the rest are ordinary.

Usage: tail_sampling_peer.py ENDPOINT N PAUSE
Prints one JSON line: {"error": [trace id hex...], "slow": [...], "ordinary": [...]}.
"""
import json
import sys
import time

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode, set_span_in_context

endpoint, count, pause = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])

provider = TracerProvider(resource=Resource.create({"service.name": "py-sampled"}))
provider.add_span_processor(
    BatchSpanProcessor(
        OTLPSpanExporter(endpoint=endpoint, insecure=True),
        max_queue_size=4 * count + 1024,
        max_export_batch_size=512,
        schedule_delay_millis=200,
    )
)
tracer = provider.get_tracer("tail-sampling-peer", "1.0")

kinds = {"error": [], "slow": [], "ordinary": []}
roots = []
for i in range(count):
    now = time.time_ns()
    root = tracer.start_span(f"GET /item/{i}", start_time=now - 10_000_000)
    ctx = set_span_in_context(root)
    first = tracer.start_span("SELECT items", context=ctx, start_time=now - 3_000_000)
    first.end(end_time=now)
    if i % 50 == 0:
        kind = "error"
        second = tracer.start_span("charge card", context=ctx, start_time=now - 5_000_000)
        second.set_status(Status(StatusCode.ERROR, "card declined"))
        second.end(end_time=now)
    elif i % 50 == 25:
        kind = "slow"
        second = tracer.start_span("render report", context=ctx, start_time=now - 2_000_000_000)
        second.end(end_time=now)
    else:
        kind = "ordinary"
        second = tracer.start_span("GET cache", context=ctx, start_time=now - 1_000_000)
        second.end(end_time=now)
    kinds[kind].append(format(root.get_span_context().trace_id, "032x"))
    roots.append((root, now))

if not provider.force_flush(60_000):
    sys.exit("the children were not exported")
time.sleep(pause)
for root, now in roots:
    # Ended now, timed as it ran: 10 ms, not slow.
    root.end(end_time=now)
if not provider.force_flush(60_000):
    sys.exit("the roots were not exported")
provider.shutdown()
print(json.dumps(kinds), flush=True)
