"""Runs INSIDE the clean interpreter of tests/package/test_build.py.

    python3.12 -I -S tests/package/clean_runner.py MODE OUTPUT_JSON PATH [PATH...]

-I -S: no PYTHON* variables, no user or global site-packages, not even this
file's directory on sys.path. The PATHs (the built function, then the built
layer, in the order Lambda puts /var/task and /opt/python) are all there is, so
whatever imports here is what the deployed zip and layer contain. Only the
standard library and the build output may be imported in this file.

MODE
  imports  import the layer's dependencies, exercise the native ones, and
           confirm dev-only packages are absent
  app      import the handler module
  export   invoke app.handler with the on-demand event in RUNNER_EVENT, then
           drain the checkpoint queue (QUEUE_URL) like the SQS event source
           mapping: one record per invocation, partial batch failures honoured

The result is written as JSON to OUTPUT_JSON (stdout belongs to the logger).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import sys
import time
import uuid
from typing import Any

LAYER_MODULES = (
    "aws_lambda_powertools",
    "aws_xray_sdk",
    "boto3",
    "botocore",
    "urllib3",
    "orjson",
    "zlib_ng",
    "msgspec",
)
# Installed in the dev virtualenv only: importable here = the isolation leaks.
DEV_ONLY = ("moto", "pytest", "yaml", "duckdb", "hypothesis", "cfnlint")


class Context:
    """The LambdaContext attributes the exporter and Powertools read."""

    def __init__(self, budget_ms: int = 600_000) -> None:
        self._deadline = time.monotonic() + budget_ms / 1000
        self.aws_request_id = str(uuid.uuid4())
        self.function_name = "wifi-export-ExporterFunction"
        self.function_version = "$LATEST"
        self.invoked_function_arn = (
            f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"
        )
        self.memory_limit_in_mb = 1769
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = "clean-runner"

    def get_remaining_time_in_millis(self) -> int:
        # The brief: a generous, constant budget (600 s) per invocation.
        return max(0, min(600_000, int((self._deadline - time.monotonic()) * 1000)))


def check_imports(paths: list[str]) -> dict[str, Any]:
    origins: dict[str, str] = {}
    for name in LAYER_MODULES:
        module = importlib.import_module(name)
        origins[name] = str(module.__file__)
    # Native code must not just import but run on this architecture.
    orjson: Any = importlib.import_module("orjson")
    payload = {"visits": 3, "ts": "2023-06-08 00:00:00"}
    assert orjson.loads(orjson.dumps(payload)) == payload
    zlib_ng: Any = importlib.import_module("zlib_ng.zlib_ng")
    packer = zlib_ng.compressobj(5, zlib_ng.DEFLATED, 31)
    packed = packer.compress(b'{"visits": 3}\n') + packer.flush()
    assert importlib.import_module("gzip").decompress(packed) == b'{"visits": 3}\n'
    msgspec: Any = importlib.import_module("msgspec")
    row = msgspec.defstruct("Row", [("visits", int | None, None)], omit_defaults=True)
    assert msgspec.json.Encoder().encode_lines([row(3), row()]) == b'{"visits":3}\n{}\n'
    leaked = []
    for name in DEV_ONLY:
        try:
            importlib.import_module(name)
        except ImportError:
            continue
        leaked.append(name)
    return {"origins": origins, "leaked": leaked, "sys_path": sys.path, "paths": paths}


def export(event: dict[str, Any], max_invocations: int = 500) -> dict[str, Any]:
    # Imported only now, after main() put the build output on sys.path.
    app: Any = importlib.import_module("app")  # the built function (first PATH)
    boto3: Any = importlib.import_module("boto3")  # the layer's

    started = time.monotonic()
    response = app.handler(event, Context())
    sqs = boto3.client("sqs")
    queue_url = os.environ["QUEUE_URL"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    invocations = failed_records = idle = 0
    while invocations < max_invocations:
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=1, AttributeNames=["All"], VisibilityTimeout=60
        ).get("Messages", [])
        if not messages:
            idle += 1
            if idle >= 5:  # ~2.5 s of an empty queue: done
                break
            time.sleep(0.5)
            continue
        idle = 0
        records = [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {
                    "ApproximateReceiveCount": m["Attributes"].get("ApproximateReceiveCount", "1"),
                    "SentTimestamp": m["Attributes"].get("SentTimestamp", "0"),
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
        result = app.handler({"Records": records}, Context())
        invocations += 1
        failed = {f["itemIdentifier"] for f in (result or {}).get("batchItemFailures", [])}
        for m in messages:
            if m["MessageId"] in failed:
                failed_records += 1
                sqs.change_message_visibility(
                    QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
                )
            else:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
    return {
        "response": response,
        "sqs_invocations": invocations,
        "failed_records": failed_records,
        "seconds": round(time.monotonic() - started, 2),
        "app": str(app.__file__),
        "boto3": str(boto3.__file__),
    }


def main() -> int:
    mode, output, *paths = sys.argv[1:]
    sys.path[:0] = paths
    if mode == "imports":
        result = check_imports(paths)
    elif mode == "app":
        app = importlib.import_module("app")
        result = {"app": str(app.__file__), "handler": callable(getattr(app, "handler", None))}
    elif mode == "export":
        result = export(json.loads(os.environ["RUNNER_EVENT"]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    with open(output, "w", encoding="utf-8") as f:
        json.dump(result, f, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
