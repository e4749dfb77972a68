"""Emits a trace through the Python OpenTelemetry SDK's OTLP span exporter and log records through
its OTLP log exporter (Python's own `logging` through the SDK's LoggingHandler): one warning inside
the trace's child span, one info inside the root, one error outside any span. Prints the trace id,
the child span's id and the root span's id. Usage: otlp_log_peer.py grpc|http ENDPOINT SERVICE"""
import logging
import sys

from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind

mode, endpoint, service = sys.argv[1], sys.argv[2], sys.argv[3]

if mode == "grpc":
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    span_exporter = OTLPSpanExporter(endpoint=endpoint, insecure=True)
    log_exporter = OTLPLogExporter(endpoint=endpoint, insecure=True)
else:
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    span_exporter = OTLPSpanExporter(endpoint=endpoint + "/v1/traces")
    log_exporter = OTLPLogExporter(endpoint=endpoint + "/v1/logs")

resource = Resource.create({"service.name": service})
tracer_provider = TracerProvider(resource=resource)
tracer_provider.add_span_processor(SimpleSpanProcessor(span_exporter))
logger_provider = LoggerProvider(resource=resource)
logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))

log = logging.getLogger("onboarding.payments")
log.setLevel(logging.DEBUG)
log.addHandler(LoggingHandler(level=logging.DEBUG, logger_provider=logger_provider))
log.propagate = False

tracer = tracer_provider.get_tracer("interop-logs", "1.0")
with tracer.start_as_current_span("POST /charge", kind=SpanKind.SERVER) as root:
    log.info("charge requested", extra={"customer.type": "business"})
    with tracer.start_as_current_span("card authorise", kind=SpanKind.CLIENT) as child:
        log.warning("card declined for order %s", "ord-42", extra={"order.id": "ord-42"})
log.error("nightly settlement file missing")

tracer_provider.shutdown()
logger_provider.shutdown()
print(format(root.get_span_context().trace_id, "032x"))
print(format(child.get_span_context().span_id, "016x"))
print(format(root.get_span_context().span_id, "016x"))
