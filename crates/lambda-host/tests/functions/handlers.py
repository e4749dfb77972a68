"""Lambda handlers the host's integration tests run under AWS's runtime interface client
(`python -m awslambdaric handlers.handler`). Each invocation is written to $OUT_DIR; what the
handler does is chosen by each record's body."""

import json
import os
import threading
import time


def _write(name, text):
    path = os.path.join(os.environ["OUT_DIR"], name)
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def _late_write(path):
    time.sleep(0.3)
    with open(path, "a") as f:
        f.write("late\n")


def handler(event, context):
    _write(
        "invocation-%s.json" % context.aws_request_id,
        json.dumps(
            {
                "event": event,
                "pid": os.getpid(),
                "function_name": context.function_name,
                "memory_limit_in_mb": context.memory_limit_in_mb,
                "invoked_function_arn": context.invoked_function_arn,
                "remaining_ms": context.get_remaining_time_in_millis(),
                "log_stream_name": context.log_stream_name,
                "region": os.environ.get("AWS_REGION"),
                "handler": os.environ.get("_HANDLER"),
            }
        ),
    )
    failures = []
    for record in event["Records"]:
        body = record["body"]
        first = record["attributes"]["ApproximateReceiveCount"] == "1"
        if body == "fail-once" and first:
            failures.append({"itemIdentifier": record["messageId"]})
        elif body == "sleep-once" and first:
            time.sleep(60)
        elif body == "raise-once" and first:
            raise RuntimeError("asked to fail")
        elif body == "malformed-once" and first:
            return "this is not a batch response"
        elif body == "late":
            # Runs on after the handler returns: it makes progress only while thawed.
            path = os.path.join(os.environ["OUT_DIR"], "late")
            threading.Thread(target=_late_write, args=(path,), daemon=True).start()
    return {"batchItemFailures": failures}
