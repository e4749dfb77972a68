"""Drives the broker with boto3 (an SDK nobody here wrote): every SQS operation, the digests
(checked against moto's independent implementation too),
visibility and redrive, long polling, delay, validation errors, and EventBridge to SQS.
Usage: python boto3_interop.py ENDPOINT"""
import hashlib
import json
import struct
import sys
import threading
import time

import boto3
import botocore.exceptions

endpoint = sys.argv[1]
kw = dict(endpoint_url=endpoint, region_name="us-east-1",
          aws_access_key_id="AKIDTEST", aws_secret_access_key="secret")
sqs = boto3.client("sqs", **kw)
events = boto3.client("events", **kw)


def code_of(fn, **args):
    try:
        fn(**args)
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"]
    return "ok"


def md5_attrs(attrs):
    """AWS's documented message attribute digest."""
    out = b""
    for name in sorted(attrs):
        v = attrs[name]
        enc = lambda b: struct.pack(">I", len(b)) + b
        out += enc(name.encode()) + enc(v["DataType"].encode())
        if "BinaryValue" in v:
            out += b"\x02" + enc(v["BinaryValue"])
        else:
            out += b"\x01" + enc(v["StringValue"].encode())
    return hashlib.md5(out).hexdigest()


# Queue lifecycle.
dlq = sqs.create_queue(QueueName="py-dlq")["QueueUrl"]
url = sqs.create_queue(QueueName="py-work", Attributes={
    "VisibilityTimeout": "1",
    "RedrivePolicy": json.dumps({"deadLetterTargetArn": "arn:aws:sqs:us-east-1:000000000000:py-dlq",
                                 "maxReceiveCount": "2"}),
})["QueueUrl"]
assert url.endswith("/000000000000/py-work"), url
assert sqs.get_queue_url(QueueName="py-work")["QueueUrl"] == url
assert sqs.list_queues(QueueNamePrefix="py-")["QueueUrls"] == [dlq, url]
sqs.set_queue_attributes(QueueUrl=url, Attributes={"MaximumMessageSize": "2048"})
attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
assert attrs["MaximumMessageSize"] == "2048" and attrs["VisibilityTimeout"] == "1", attrs
assert attrs["QueueArn"] == "arn:aws:sqs:us-east-1:000000000000:py-work"

# Digests, attributes of each type, system attributes.
message_attrs = {
    "traceparent": {"DataType": "String", "StringValue": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
    "n": {"DataType": "Number", "StringValue": "3.14"},
    "raw": {"DataType": "Binary", "BinaryValue": b"\x00\xffdata"},
}
body = "caf\u00e9 \U0001F600"
sent = sqs.send_message(QueueUrl=url, MessageBody=body, MessageAttributes=message_attrs,
                        MessageSystemAttributes={"AWSTraceHeader": {"DataType": "String", "StringValue": "Root=1-abc"}})
assert sent["MD5OfMessageBody"] == hashlib.md5(body.encode()).hexdigest()
assert sent["MD5OfMessageAttributes"] == md5_attrs(message_attrs), (sent, md5_attrs(message_attrs))
# An independent reference: moto's own implementation of AWS's digest (not written here).
from moto.sqs.models import Message as MotoMessage  # noqa: E402
reference = MotoMessage("reference", body)
reference.message_attributes = message_attrs
assert sent["MD5OfMessageAttributes"] == reference.attribute_md5, (sent, reference.attribute_md5)
assert sent["MD5OfMessageBody"] == reference.body_md5
got = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"], MessageSystemAttributeNames=["All"])["Messages"]
m = got[0]
assert m["Body"] == body and m["MD5OfBody"] == sent["MD5OfMessageBody"]
assert m["MD5OfMessageAttributes"] == md5_attrs(message_attrs)
assert m["MessageAttributes"]["raw"]["BinaryValue"] == b"\x00\xffdata"
assert m["Attributes"]["AWSTraceHeader"] == "Root=1-abc"
assert m["Attributes"]["ApproximateReceiveCount"] == "1"

# Visibility: hidden now, back after 1 s (long poll wakes), then redriven on the third receive.
assert "Messages" not in sqs.receive_message(QueueUrl=url)
again = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5, AttributeNames=["ApproximateReceiveCount"])["Messages"]
assert again[0]["Attributes"]["ApproximateReceiveCount"] == "2"
assert code_of(sqs.delete_message, QueueUrl=url, ReceiptHandle="bogus") == "ReceiptHandleIsInvalid"
sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=again[0]["ReceiptHandle"], VisibilityTimeout=0)
assert "Messages" not in sqs.receive_message(QueueUrl=url)
dead = sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=1)["Messages"]
assert dead[0]["MessageId"] == sent["MessageId"]
sqs.delete_message(QueueUrl=dlq, ReceiptHandle=dead[0]["ReceiptHandle"])

# Long polling answers when a message arrives.
poll = sqs.create_queue(QueueName="py-poll")["QueueUrl"]
threading.Timer(0.3, lambda: boto3.client("sqs", **kw).send_message(QueueUrl=poll, MessageBody="late")).start()
started = time.monotonic()
arrived = sqs.receive_message(QueueUrl=poll, WaitTimeSeconds=20)["Messages"]
assert arrived[0]["Body"] == "late" and time.monotonic() - started < 20

# Delay.
sqs.send_message(QueueUrl=poll, MessageBody="delayed", DelaySeconds=1)
assert sqs.get_queue_attributes(QueueUrl=poll, AttributeNames=["ApproximateNumberOfMessagesDelayed"])["Attributes"]["ApproximateNumberOfMessagesDelayed"] == "1"
sqs.delete_message(QueueUrl=poll, ReceiptHandle=arrived[0]["ReceiptHandle"])
assert "Messages" not in sqs.receive_message(QueueUrl=poll)
assert sqs.receive_message(QueueUrl=poll, WaitTimeSeconds=5)["Messages"][0]["Body"] == "delayed"

# Batches.
batch = sqs.send_message_batch(QueueUrl=poll, Entries=[
    {"Id": "a", "MessageBody": "1"}, {"Id": "b", "MessageBody": "2"},
    {"Id": "c", "MessageBody": "3", "MessageAttributes": {"e": {"DataType": "String", "StringValue": ""}}}])
assert [s["Id"] for s in batch["Successful"]] == ["a", "b"]
assert batch["Failed"][0]["Id"] == "c" and batch["Failed"][0]["Code"] == "InvalidParameterValue"
msgs = sqs.receive_message(QueueUrl=poll, MaxNumberOfMessages=10, VisibilityTimeout=30)["Messages"]
assert sorted(x["Body"] for x in msgs) == ["1", "2"]
changed = sqs.change_message_visibility_batch(QueueUrl=poll, Entries=[
    {"Id": f"v{i}", "ReceiptHandle": x["ReceiptHandle"], "VisibilityTimeout": 60} for i, x in enumerate(msgs)])
assert len(changed["Successful"]) == 2
deleted = sqs.delete_message_batch(QueueUrl=poll, Entries=[
    {"Id": f"d{i}", "ReceiptHandle": x["ReceiptHandle"]} for i, x in enumerate(msgs)])
assert len(deleted["Successful"]) == 2

# Validation errors with their real codes.
assert code_of(sqs.send_message, QueueUrl=url, MessageBody="x" * 2049) == "InvalidParameterValue"
assert code_of(sqs.send_message, QueueUrl=url, MessageBody="b", MessageAttributes={
    f"a{i}": {"DataType": "String", "StringValue": "v"} for i in range(11)}) == "InvalidParameterValue"
assert code_of(sqs.receive_message, QueueUrl=url, MaxNumberOfMessages=11) == "InvalidParameterValue"
assert code_of(sqs.send_message_batch, QueueUrl=url, Entries=[{"Id": "x", "MessageBody": "1"}] * 2) == "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"
assert code_of(sqs.send_message_batch, QueueUrl=url, Entries=[{"Id": "bad id", "MessageBody": "1"}]) == "AWS.SimpleQueueService.InvalidBatchEntryId"
assert code_of(sqs.send_message_batch, QueueUrl=url, Entries=[{"Id": f"i{i}", "MessageBody": "1"} for i in range(11)]) == "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"
assert code_of(sqs.get_queue_attributes, QueueUrl=url, AttributeNames=["Nope"]) == "InvalidAttributeName"
try:
    sqs.get_queue_url(QueueName="missing")
    raise AssertionError("missing queue found")
except sqs.exceptions.QueueDoesNotExist as e:
    assert e.response["Error"]["Code"] == "AWS.SimpleQueueService.NonExistentQueue"

# Purge and delete.
sqs.send_message(QueueUrl=poll, MessageBody="x")
sqs.purge_queue(QueueUrl=poll)
assert "Messages" not in sqs.receive_message(QueueUrl=poll)
sqs.delete_queue(QueueUrl=poll)
assert code_of(sqs.send_message, QueueUrl=poll, MessageBody="x") == "AWS.SimpleQueueService.NonExistentQueue"

# EventBridge -> SQS, with the trace carried in detail._trace as the seeds do.
target = sqs.create_queue(QueueName="py-events")["QueueUrl"]
events.put_rule(Name="placement", EventPattern=json.dumps(
    {"source": ["onboarding"], "detail-type": [{"prefix": "placement."}], "detail": {"_trace": {"traceparent": [{"exists": True}]}}}))
assert events.put_targets(Rule="placement", Targets=[
    {"Id": "q", "Arn": "arn:aws:sqs:us-east-1:000000000000:py-events"}])["FailedEntryCount"] == 0
assert [r["Name"] for r in events.list_rules()["Rules"]] == ["placement"]
carrier = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
out = events.put_events(Entries=[
    {"Source": "onboarding", "DetailType": "placement.created", "Detail": json.dumps({"id": 1, "_trace": carrier})},
    {"Source": "onboarding", "DetailType": "other", "Detail": json.dumps({"_trace": carrier})},
])
assert out["FailedEntryCount"] == 0
env = json.loads(sqs.receive_message(QueueUrl=target, WaitTimeSeconds=1)["Messages"][0]["Body"])
assert env["detail"]["_trace"] == carrier and env["detail-type"] == "placement.created"
assert env["id"] == out["Entries"][0]["EventId"]
assert set(env) == {"version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"}
try:
    events.put_rule(Name="bad", EventPattern='{"source": "x"}')
    raise AssertionError("bad pattern accepted")
except events.exceptions.InvalidEventPatternException:
    pass
events.remove_targets(Rule="placement", Ids=["q"])
events.delete_rule(Name="placement")
assert events.list_rules()["Rules"] == []
print("boto3 interop ok")
