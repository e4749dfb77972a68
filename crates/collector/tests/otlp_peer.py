"""Emits one trace crossing two services (an API publishing to a queue, a worker consuming it
with a span link to the producer) through the Python OpenTelemetry SDK's OTLP exporter, then
prints the trace id. Usage: otlp_peer.py grpc|http ENDPOINT"""
import sys

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Link, NonRecordingSpan, SpanKind, set_span_in_context

mode, endpoint = sys.argv[1], sys.argv[2]


def exporter():
    if mode == "grpc":
        import grpc
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=endpoint, insecure=True, compression=grpc.Compression.Gzip)
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=endpoint + "/v1/traces", compression=Compression.Gzip)


def provider(service):
    p = TracerProvider(resource=Resource.create({"service.name": service}))
    p.add_span_processor(SimpleSpanProcessor(exporter()))
    return p


api = provider(f"py-api-{mode}")
worker = provider(f"py-worker-{mode}")
api_tracer = api.get_tracer("interop-api", "1.0")
worker_tracer = worker.get_tracer("interop-worker", "1.0")

with api_tracer.start_as_current_span("GET /py", kind=SpanKind.SERVER) as root:
    root.set_attribute("http.request.method", "GET")
    with api_tracer.start_as_current_span("py publish", kind=SpanKind.PRODUCER) as producer:
        producer_context = producer.get_span_context()

parent = set_span_in_context(NonRecordingSpan(producer_context))
with worker_tracer.start_as_current_span(
    "py process",
    kind=SpanKind.CONSUMER,
    context=parent,
    links=[Link(producer_context, {"messaging.operation.type": "process"})],
) as consumer:
    consumer.add_event("handled", {"attempt": 1})

api.shutdown()
worker.shutdown()
print(format(root.get_span_context().trace_id, "032x"))
print(format(producer_context.span_id, "016x"))
