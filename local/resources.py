"""The deployment's resources, created in moto (or any emulator) for tests, the demo and the bench.

The same shapes as template.yaml: an export bucket, a checkpoint queue with a
DLQ, the run topic (with an SQS inbox subscribed, so notifications can be
read back) and the API credentials secret.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ClientFactory = Callable[[str], Any]


def clients(region: str = "us-east-1", endpoint_url: str | None = None) -> ClientFactory:
    """A boto3 client factory (region and, for an emulator, its endpoint)."""
    import boto3  # noqa: PLC0415

    session = boto3.session.Session(region_name=region)

    def make(service: str) -> Any:
        return session.client(service, endpoint_url=endpoint_url)  # type: ignore[call-overload]

    return make


@dataclass(frozen=True)
class Deployment:
    bucket: str
    queue_url: str
    dlq_url: str
    topic_arn: str
    inbox_url: str
    secret_id: str

    def environment(
        self,
        api_url: str,
        data_prefix: str = "wifi/metrics",
        state_prefix: str = "wifi/_exports",
    ) -> dict[str, str]:
        """The exporter's configuration (docs/contracts.md, "Configuration") for this
        deployment and an API."""
        return {
            "SECRET_ID": self.secret_id,
            "BUCKET_NAME": self.bucket,
            "TOPIC_ARN": self.topic_arn,
            "QUEUE_URL": self.queue_url,
            "DATA_PREFIX": data_prefix,
            "STATE_PREFIX": state_prefix,
            "API_URL": api_url,
            "TOKEN_URL": api_url + "/oauth/token",
        }


def _arn(sqs: Any, queue_url: str) -> str:
    arn: str = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    return arn


def provision(
    client: ClientFactory,
    *,
    name: str,
    client_id: str,
    client_secret: str,
    max_receive_count: int = 10,
) -> Deployment:
    """Create every resource, named after `name`; `client(service)` returns a boto3 client."""
    s3, sqs, sns = client("s3"), client("sqs"), client("sns")
    bucket = f"{name}-bucket"
    s3.create_bucket(Bucket=bucket)
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    redrive = {"deadLetterTargetArn": _arn(sqs, dlq_url), "maxReceiveCount": str(max_receive_count)}
    queue_url = sqs.create_queue(
        QueueName=f"{name}-checkpoints",
        Attributes={"VisibilityTimeout": "60", "RedrivePolicy": json.dumps(redrive)},
    )["QueueUrl"]
    topic_arn = sns.create_topic(Name=f"{name}-runs")["TopicArn"]
    inbox_url = sqs.create_queue(QueueName=f"{name}-inbox")["QueueUrl"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=_arn(sqs, inbox_url))
    secret_id = f"{name}/analytiks"
    client("secretsmanager").create_secret(
        Name=secret_id,
        SecretString=json.dumps({"client_id": client_id, "client_secret": client_secret}),
    )
    return Deployment(bucket, queue_url, dlq_url, topic_arn, inbox_url, secret_id)


def read_notifications(sqs: Any, inbox_url: str) -> list[dict[str, Any]]:
    """Drain the inbox: each SNS notification with its body parsed and attributes flattened."""
    notes = []
    while got := sqs.receive_message(QueueUrl=inbox_url, MaxNumberOfMessages=10).get("Messages"):
        for message in got:
            envelope = json.loads(message["Body"])
            notes.append(
                {
                    "subject": envelope.get("Subject"),
                    "body": json.loads(envelope["Message"]),
                    "attributes": {
                        k: v["Value"] for k, v in envelope.get("MessageAttributes", {}).items()
                    },
                }
            )
            sqs.delete_message(QueueUrl=inbox_url, ReceiptHandle=message["ReceiptHandle"])
    return notes
