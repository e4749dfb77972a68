//! Trace-context carriers: HTTP headers, SQS message attributes, Lambda SQS records, EventBridge detail.
