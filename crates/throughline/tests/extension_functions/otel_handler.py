"""A Lambda function instrumented as seed 001 does it, with the OpenTelemetry Python SDK: its
spans go to OTEL_EXPORTER_OTLP_ENDPOINT (OTLP/HTTP protobuf) and it flushes them before it
answers. Each invocation makes one span named after the event's "name" and answers with its
trace id and whether the flush was acknowledged."""

import time

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

provider = TracerProvider(resource=Resource.create({"service.name": "extension-test"}))
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
tracer = provider.get_tracer("extension-test")


def handler(event, context):
    with tracer.start_as_current_span(event.get("name", "work")) as span:
        span.set_attribute("faas.invocation_id", context.aws_request_id)
        trace_id = format(span.get_span_context().trace_id, "032x")
    started = time.monotonic()
    flushed = provider.force_flush(5000)
    return {
        "trace_id": trace_id,
        "flushed": flushed,
        "flush_ms": (time.monotonic() - started) * 1000.0,
    }
