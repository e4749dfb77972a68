"""Lambda handlers the host's integration tests run under AWS's runtime interface client
(`python -m awslambdaric handlers.handler`). Each invocation is written to $OUT_DIR; what the
handler does is chosen by each record's body."""

import json
import os
import threading
import time
import urllib.error
import urllib.request


def _write(name, text):
    path = os.path.join(os.environ["OUT_DIR"], name)
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def _late_write(path):
    time.sleep(0.3)
    with open(path, "a") as f:
        f.write("late\n")


def _post_init_error():
    """What a stray local process could do: report an init error in the middle of an invocation."""
    url = "http://%s/2018-06-01/runtime/init/error" % os.environ["AWS_LAMBDA_RUNTIME_API"]
    request = urllib.request.Request(url, data=b'{"errorMessage":"stray"}', method="POST",
                                     headers={"Lambda-Runtime-Function-Error-Type": "Stray"})
    try:
        with urllib.request.urlopen(request) as answer:
            status, body = answer.status, answer.read()
    except urllib.error.HTTPError as err:
        status, body = err.code, err.read()
    _write("init-error-answer", json.dumps({"status": status, "body": json.loads(body)}))


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
    print("handling %d records" % len(event["Records"]))
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
        elif body == "post-init-error":
            _post_init_error()
        elif body == "late":
            # Runs on after the handler returns: it makes progress only while thawed.
            path = os.path.join(os.environ["OUT_DIR"], "late")
            threading.Thread(target=_late_write, args=(path,), daemon=True).start()
    return {"batchItemFailures": failures}
