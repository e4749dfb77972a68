//! OTLP receivers (gRPC and HTTP), the Jaeger-compatible query API and Prometheus metrics.
