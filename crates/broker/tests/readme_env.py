"""Uses boto3 with nothing but the environment (the README's broker block): no endpoint_url, no
region, no credentials in code. Fails if boto3 would call anything but the broker.
Usage: python readme_env.py"""
import json

import boto3

sqs = boto3.client("sqs")
events = boto3.client("events")
assert sqs.meta.endpoint_url == events.meta.endpoint_url, (sqs.meta.endpoint_url, events.meta.endpoint_url)
assert "amazonaws.com" not in events.meta.endpoint_url, events.meta.endpoint_url

url = sqs.create_queue(QueueName="readme-orders")["QueueUrl"]
events.put_rule(Name="readme-rule", EventPattern=json.dumps({"source": ["readme"]}))
events.put_targets(Rule="readme-rule", Targets=[
    {"Id": "q", "Arn": "arn:aws:sqs:us-east-1:000000000000:readme-orders"}])
out = events.put_events(Entries=[{"Source": "readme", "DetailType": "t", "Detail": "{}"}])
assert out["FailedEntryCount"] == 0, out
got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5)["Messages"]
assert json.loads(got[0]["Body"])["source"] == "readme", got
print("readme env ok", events.meta.endpoint_url)
