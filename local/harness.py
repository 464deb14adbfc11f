"""Plays the Lambda service honestly for tests, the demo and the benchmark.

* `FakeContext`: a Lambda context whose remaining time is a real, shrinking budget.
* `drain`: receives from the real (moto) queue and invokes the handler with SQS
  events in the AWS shape, one record per batch like the event source mapping,
  honouring partial batch responses, until the queue is empty.
* `export_table`: downloads the table prefix and reads it with DuckDB the way
  Athena reads it: JSON Lines, hive partitions brand_id/time_basis/dt, the
  schema of docs/contracts.md ("Row schema") as written out in `local.contract`
  (not the exporter's own copy). Like the Glue table, it takes `time_basis` from
  the partition (the folder), not from the line: the two would differ only if a
  row were misfiled.
"""

from __future__ import annotations

import hashlib
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local.contract import COLUMNS, PARTITION_KEYS

Handler = Callable[[dict[str, Any], Any], Any]


class Killed(BaseException):
    """Raised by fault injection to stop an invocation dead, like a Lambda timeout or
    OOM kill: a BaseException, so no `except Exception` in the exporter catches it."""


class FakeContext:
    """The parts of LambdaContext the exporter and Powertools use."""

    def __init__(self, budget_ms: int, function_name: str = "wifi-export-exporter") -> None:
        self.deadline = time.monotonic() + budget_ms / 1000.0  # time.monotonic()
        self.aws_request_id = str(uuid.uuid4())
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = (
            f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        )
        self.memory_limit_in_mb = 1769
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """An SQS event exactly as Lambda's event source mapping delivers it."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {
                    "ApproximateReceiveCount": m.get("Attributes", {}).get(
                        "ApproximateReceiveCount", "1"
                    ),
                    "SentTimestamp": m.get("Attributes", {}).get("SentTimestamp", "0"),
                    "SenderId": "AIDAEXAMPLE",
                    "ApproximateFirstReceiveTimestamp": "0",
                },
                "messageAttributes": {},
                "md5OfBody": hashlib.md5(m["Body"].encode(), usedforsecurity=False).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "us-east-1",
            }
            for m in messages
        ]
    }


@dataclass
class DrainReport:
    invocations: int = 0
    failed_records: int = 0
    crashed_invocations: int = 0
    duplicates_delivered: int = 0
    responses: list[Any] = field(default_factory=list)


def drain(  # noqa: PLR0912 -- one loop playing the event source mapping, kept whole
    handler: Handler,
    sqs: Any,
    queue_url: str,
    *,
    budget_ms: int = 60_000,
    duplicate: bool = False,
    shuffle: random.Random | None = None,
    crash: Callable[[int], bool] | None = None,
    max_invocations: int = 5_000,
    redelivery_delay_s: float = 0.0,
    on_invoke: Callable[[int, dict[str, Any]], None] | None = None,
    visibility_timeout_s: int = 30,
    wait_in_flight_s: float = 0.0,
) -> DrainReport:
    """Deliver every message to `handler` until the queue is empty.

    duplicate: deliver each message twice (SQS's at-least-once, worst case).
    shuffle: receive up to 10 messages and deliver them in random order.
    crash(n): return True to make invocation n die (its messages stay in flight
    and are redelivered), like a Lambda killed mid-work.
    Failed records (partial batch response) are made visible again after
    `redelivery_delay_s`, as if their visibility timeout had passed. A message
    whose worker dies without answering (a SIGKILLed process) comes back after
    `visibility_timeout_s`, as in SQS; `wait_in_flight_s` is how long an empty queue
    is watched for such messages (in flight elsewhere) before the drain ends. Messages
    sent with a delay (a throttled window backing off) are waited for, as Lambda would.
    """
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    report = DrainReport()
    idle_polls = 0
    watch_until = time.monotonic() + wait_in_flight_s
    while report.invocations < max_invocations:
        got = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10 if shuffle else 1,
            AttributeNames=["All"],
            VisibilityTimeout=visibility_timeout_s,
        ).get("Messages", [])
        if not got:
            idle_polls += 1
            if idle_polls >= 2:
                if time.monotonic() < watch_until and _in_flight(sqs, queue_url):
                    idle_polls = 0
                    time.sleep(0.2)
                    continue
                # Checkpoints held back (DelaySeconds), or one whose delay ended since
                # the empty receives: under load that window is wide enough to lose a
                # window's last checkpoint and end the drain with the run unfinished.
                if _delayed_or_visible(sqs, queue_url):
                    idle_polls = 0
                    time.sleep(0.2)
                    continue
                return report
            continue
        idle_polls = 0
        if shuffle:
            shuffle.shuffle(got)
        for message in got:
            deliveries = [message, message] if duplicate else [message]
            report.duplicates_delivered += len(deliveries) - 1
            failed = False
            for delivered in deliveries:
                event = sqs_event([delivered], arn)
                report.invocations += 1
                if on_invoke:
                    on_invoke(report.invocations, event)
                if crash and crash(report.invocations):
                    report.crashed_invocations += 1
                    failed = True
                    continue
                try:
                    response = handler(event, FakeContext(budget_ms))
                except (Exception, Killed):
                    report.crashed_invocations += 1
                    failed = True
                    continue
                report.responses.append(response)
                if response and response.get("batchItemFailures"):
                    report.failed_records += 1
                    failed = True
            if failed:
                time.sleep(redelivery_delay_s)  # a visibility timeout, compressed
                sqs.change_message_visibility(
                    QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
            else:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    raise RuntimeError(f"queue not drained after {max_invocations} invocations")


def _in_flight(sqs: Any, queue_url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessagesNotVisible"])


def _delayed_or_visible(sqs: Any, queue_url: str) -> int:
    """Messages sent with a DelaySeconds not yet over (a throttled window backing off),
    plus those ready to receive."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessagesDelayed", "ApproximateNumberOfMessages"],
    )["Attributes"]
    return int(attributes.get("ApproximateNumberOfMessagesDelayed", 0)) + int(
        attributes.get("ApproximateNumberOfMessages", 0)
    )


def download_prefix(s3: Any, bucket: str, prefix: str, dest: Path) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            key = item["Key"]
            target = dest / key
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
            keys.append(key)
    return keys


_DUCK_TYPES = {
    "bigint": "BIGINT",
    "string": "VARCHAR",
    "timestamp": "TIMESTAMP",
    "date": "DATE",
    "map<string,bigint>": "MAP(VARCHAR, BIGINT)",
}


def duckdb_columns() -> dict[str, str]:
    return {name: _DUCK_TYPES[kind] for name, kind in COLUMNS}


def table_sql(root: Path) -> str:
    """A DuckDB relation over the downloaded table, typed like the Glue table."""
    columns = ", ".join(f"'{name}': '{kind}'" for name, kind in duckdb_columns().items())
    hive = ", ".join(f"'{name}': '{_DUCK_TYPES[kind]}'" for name, kind in PARTITION_KEYS)
    pattern = (root / "**" / "*.json.gz").as_posix()
    return (
        f"read_json('{pattern}', format='newline_delimited', columns={{{columns}}}, "
        f"hive_partitioning=true, hive_types={{{hive}}}, timestampformat='%Y-%m-%d %H:%M:%S')"
    )


def export_table(s3: Any, bucket: str, data_prefix: str, dest: Path) -> Any:
    """Download `data_prefix` and return a DuckDB connection with a `metrics` view over it."""
    import duckdb  # noqa: PLC0415 -- a test/demo dependency, not the function's

    dest.mkdir(parents=True, exist_ok=True)
    keys = download_prefix(s3, bucket, data_prefix + "/", dest)
    con = duckdb.connect()
    if keys:
        # Built from our own schema and a local path, not from input: no injection.
        con.execute(f"CREATE VIEW metrics AS SELECT * FROM {table_sql(dest / data_prefix)}")  # noqa: S608
    else:
        cols = ", ".join(f"NULL::{t} AS {n}" for n, t in duckdb_columns().items())
        con.execute(
            f"CREATE VIEW metrics AS SELECT {cols}, NULL::BIGINT AS brand_id, "
            "NULL::VARCHAR AS time_basis, NULL::DATE AS dt WHERE false"
        )
    return con
