"""An OTLP upstream nobody here wrote the protocol of: the official `opentelemetry-proto` package's
generated gRPC services (served by grpcio) and an OTLP/HTTP protobuf receiver (http.server), which
can be told to fail, throttle or hang. It counts every span by (trace id, span id), so duplicates
are told apart from new spans.

Prints one JSON line `{"grpc": PORT, "http": PORT}` once both listen on 127.0.0.1.
Control (on the HTTP port):
  POST /control  {"mode": "ok" | "unavailable" | "throttle" | "invalid" | "hang" | "partial",
                  "times": N (then back to ok; -1 = until told otherwise), "retry_after": SECS,
                  "record": true (keep every string value received, for /strings)}
  GET  /stats    {"spans": unique, "duplicates", "requests", "refused", "logs", "metrics",
                  "headers": the last request's headers}
  GET  /strings  every string value (attributes, events, bodies, names) received while recording
  GET  /traces   {"<trace id hex>": distinct spans received of it, ...}
  POST /missing  ["<trace id hex><span id hex>", ...] -> the ones never received
"""
import gzip
import json
import sys
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2

lock = threading.Lock()
state = {"mode": "ok", "times": -1, "retry_after": 1, "record": False}
stats = {"spans": 0, "duplicates": 0, "requests": 0, "refused": 0, "logs": 0, "metrics": 0, "headers": {}}
seen = set()
strings = []


def collect_strings(message):
    """Every string field and string AnyValue in a protobuf message, recursively."""
    for field, value in message.ListFields():
        repeated = getattr(field, "is_repeated", None)
        if repeated is None:
            repeated = field.label == field.LABEL_REPEATED
        if field.type == field.TYPE_MESSAGE:
            values = value if repeated else [value]
            for v in values:
                if hasattr(v, "ListFields"):
                    collect_strings(v)
        elif field.type == field.TYPE_STRING:
            if repeated:
                strings.extend(value)
            else:
                strings.append(value)


def decide():
    """The answer for the next request: (mode, retry_after); counts down `times`."""
    with lock:
        mode = state["mode"]
        if mode != "ok" and state["times"] > 0:
            state["times"] -= 1
            if state["times"] == 0:
                state["mode"] = "ok"
        return mode, state["retry_after"]


def take(signal, request, headers):
    with lock:
        stats["requests"] += 1
        stats["headers"] = headers
        if state["record"]:
            collect_strings(request)
        if signal == "traces":
            for rs in request.resource_spans:
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        key = (span.trace_id, span.span_id)
                        if key in seen:
                            stats["duplicates"] += 1
                        else:
                            seen.add(key)
                            stats["spans"] += 1
        elif signal == "logs":
            stats["logs"] += sum(len(sl.log_records) for rl in request.resource_logs for sl in rl.scope_logs)
        else:
            stats["metrics"] += sum(len(sm.metrics) for rm in request.resource_metrics for sm in rm.scope_metrics)


RESPONSES = {
    "traces": trace_service_pb2.ExportTraceServiceResponse,
    "logs": logs_service_pb2.ExportLogsServiceResponse,
    "metrics": metrics_service_pb2.ExportMetricsServiceResponse,
}
REQUESTS = {
    "traces": trace_service_pb2.ExportTraceServiceRequest,
    "logs": logs_service_pb2.ExportLogsServiceRequest,
    "metrics": metrics_service_pb2.ExportMetricsServiceRequest,
}


def partial_response(signal):
    response = RESPONSES[signal]()
    if signal == "traces":
        response.partial_success.rejected_spans = 1
    elif signal == "logs":
        response.partial_success.rejected_log_records = 1
    else:
        response.partial_success.rejected_data_points = 1
    response.partial_success.error_message = "one item refused by the test upstream"
    return response


def grpc_export(signal):
    def export(self, request, context):
        mode, retry_after = decide()
        if mode == "hang":
            time.sleep(30)
            mode = "unavailable"
        if mode == "unavailable":
            with lock:
                stats["refused"] += 1
            context.abort(grpc.StatusCode.UNAVAILABLE, "test upstream unavailable")
        if mode == "throttle":
            with lock:
                stats["refused"] += 1
            info = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=retry_after))
            detail = any_pb2.Any()
            detail.Pack(info)
            status = status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED, message="slow down", details=[detail])
            context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down")
        if mode == "invalid":
            with lock:
                stats["refused"] += 1
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the test upstream refuses this for good")
        take(signal, request, {k: v for k, v in context.invocation_metadata()})
        return partial_response(signal) if mode == "partial" else RESPONSES[signal]()

    return export


class Traces(trace_service_pb2_grpc.TraceServiceServicer):
    Export = grpc_export("traces")


class Logs(logs_service_pb2_grpc.LogsServiceServicer):
    Export = grpc_export("logs")


class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    Export = grpc_export("metrics")


class Http(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, code, body=b"", content_type="application/x-protobuf", extra=()):
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        with lock:
            if self.path == "/stats":
                body = json.dumps(stats).encode()
            elif self.path == "/strings":
                body = json.dumps(strings).encode()
            elif self.path == "/traces":
                per_trace = {}
                for trace_id, _ in seen:
                    key = trace_id.hex()
                    per_trace[key] = per_trace.get(key, 0) + 1
                body = json.dumps(per_trace).encode()
            else:
                return self.reply(404, b"no such path", "text/plain")
        self.reply(200, body, "application/json")

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        if self.path == "/missing":
            wanted = json.loads(body)
            with lock:
                missing = [k for k in wanted if (bytes.fromhex(k[:32]), bytes.fromhex(k[32:])) not in seen]
            return self.reply(200, json.dumps(missing).encode(), "application/json")
        if self.path == "/control":
            with lock:
                state.update(json.loads(body))
            return self.reply(200, b"{}", "application/json")
        signal = self.path.rsplit("/", 1)[-1]
        if signal not in REQUESTS or not self.path.startswith("/v1/"):
            return self.reply(404, b"no such path", "text/plain")
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        mode, retry_after = decide()
        if mode == "hang":
            time.sleep(30)
            mode = "unavailable"
        if mode in ("unavailable", "throttle", "invalid"):
            with lock:
                stats["refused"] += 1
            code = {"unavailable": 503, "throttle": 429, "invalid": 400}[mode]
            extra = (("Retry-After", str(retry_after)),) if mode == "throttle" else ()
            status = status_pb2.Status(code=code_pb2.UNAVAILABLE, message=f"test upstream: {mode}")
            return self.reply(code, status.SerializeToString(), extra=extra)
        request = REQUESTS[signal]()
        request.ParseFromString(body)
        take(signal, request, {k.lower(): v for k, v in self.headers.items()})
        response = partial_response(signal) if mode == "partial" else RESPONSES[signal]()
        self.reply(200, response.SerializeToString())


def main():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), server)
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(Logs(), server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), server)
    grpc_port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    http = ThreadingHTTPServer(("127.0.0.1", 0), Http)
    http.daemon_threads = True
    print(json.dumps({"grpc": grpc_port, "http": http.server_address[1]}), flush=True)
    http.serve_forever()


if __name__ == "__main__":
    # Exit when the test that started us goes away (stdin closes).
    threading.Thread(target=lambda: (sys.stdin.read(), __import__("os")._exit(0)), daemon=True).start()
    main()
