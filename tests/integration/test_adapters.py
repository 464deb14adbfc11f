"""The S3 adapter against moto: the conditional put the run protocol's safety rests on.

Step records, "enqueued" / "done" / "notified" markers and commit leases are created
with `put_if_absent`; if it ever overwrote, two deliveries of one message would both
win. Through boto3 to moto, as the exporter does it.
"""

from __future__ import annotations

import boto3

from exporter.aws import S3Store, SqsQueue
from tests.integration.conftest import REGION


def test_put_if_absent_creates_once_and_never_overwrites(aws: None) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="adapters")
    store = S3Store("adapters", s3)
    assert store.put_if_absent("runs/r/steps/w0/s0.json", b'{"attempt": "first"}') is True
    assert store.put_if_absent("runs/r/steps/w0/s0.json", b'{"attempt": "second"}') is False
    body = s3.get_object(Bucket="adapters", Key="runs/r/steps/w0/s0.json")["Body"].read()
    assert body == b'{"attempt": "first"}'
    # Another key is still free, and a plain put still overwrites.
    assert store.put_if_absent("runs/r/steps/w0/s1.json", b"{}") is True
    store.put("runs/r/status.json", b"1")
    store.put("runs/r/status.json", b"2")
    assert s3.get_object(Bucket="adapters", Key="runs/r/status.json")["Body"].read() == b"2"


def test_sqs_send_delivers_every_body_once_when_batches_go_side_by_side(aws: None) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="adapters")["QueueUrl"]
    bodies = [f'{{"window": {n}}}' for n in range(45)]  # five batches, sent at once
    SqsQueue(url, sqs).send(bodies)
    got: list[str] = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            break
        got.extend(m["Body"] for m in messages)
    assert sorted(got) == sorted(bodies)
