#!/usr/bin/env python3
"""An external Lambda extension for the host's tests, written to the Extensions API as AWS
documents it: it registers under its file name for INVOKE and SHUTDOWN, appends what it sees to
$OUT_DIR/<name>.log (and that it registers to $OUT_DIR/order), works EXTENSION_WORK_MS after each
INVOKE (as a telemetry flush works after the function returned), and on SHUTDOWN works as long
again, then exits."""

import json
import os
import sys
import time
import urllib.request

NAME = os.path.basename(sys.argv[0])
API = "http://%s/2020-01-01/extension" % os.environ["AWS_LAMBDA_RUNTIME_API"]
OUT = os.environ["OUT_DIR"]
WORK = int(os.environ.get("EXTENSION_WORK_MS", "0")) / 1000.0


def note(file, text):
    with open(os.path.join(OUT, file), "a") as f:
        f.write(text + "\n")


def call(method, path, body=None, headers=None):
    request = urllib.request.Request(API + path, data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(request) as answer:
        return answer.headers, json.loads(answer.read() or b"null")


# Noted before the request: the host can only start the runtime once the request arrived, so
# this line comes before the runtime's in $OUT_DIR/order on any schedule (a note written after
# the answer could race the runtime's).
note("order", "registering " + NAME)
headers, identity = call(
    "POST",
    "/register",
    json.dumps({"events": ["INVOKE", "SHUTDOWN"]}).encode(),
    {"Lambda-Extension-Name": NAME, "Content-Type": "application/json"},
)
extension_id = headers["Lambda-Extension-Identifier"]
note(NAME + ".log", "registered %s %s" % (identity["functionName"], identity["handler"]))
while True:
    _, event = call("GET", "/event/next", headers={"Lambda-Extension-Identifier": extension_id})
    if event["eventType"] == "INVOKE":
        note(NAME + ".log", "invoke " + event["requestId"])
        time.sleep(WORK)
        note(NAME + ".log", "done " + event["requestId"])
    else:
        note(NAME + ".log", "shutdown " + event["shutdownReason"])
        time.sleep(WORK)
        note(NAME + ".log", "drained")
        sys.exit(0)
