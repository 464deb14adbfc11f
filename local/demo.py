"""`make demo`: the exporter end to end on a laptop, no AWS account needed.

Starts the moto server and the fake analytiks API as local processes, creates
the deployment's resources in moto, then plays the Lambda service: an
on-demand backfill with a time budget small enough that every window takes
several checkpoints through the queue, and a nightly scheduled run. Prints the
partitions written, the notifications, and an SQL query over the exported files
read the way Athena reads them. Cleans up after itself.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "functions" / "exporter"))

import boto3  # noqa: E402

from local import services  # noqa: E402
from local.harness import FakeContext, drain, export_table  # noqa: E402
from local.resources import clients, provision, read_notifications  # noqa: E402

BRAND, OTHER_BRAND = 1234, 777
REGION = "us-east-1"
DATA_PREFIX, STATE_PREFIX = "wifi/metrics", "wifi/_exports"
MARGIN_MS = 6_000
# One page of the fake API, then the budget is below the safety margin: the
# invocation flushes what it has and hands over to the next one through SQS.
SMALL_BUDGET_MS = MARGIN_MS + 40


def say(text: str = "") -> None:
    print(text, flush=True)


def show_partitions(s3: Any, bucket: str) -> None:
    sizes: dict[str, list[int]] = defaultdict(list)
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=DATA_PREFIX + "/"
    ):
        for item in page.get("Contents", []):
            sizes[item["Key"].rsplit("/", 1)[0]].append(item["Size"])
    say(f"Partitions written (s3://{bucket}/{DATA_PREFIX}/...):")
    for partition in sorted(sizes):
        objects = sizes[partition]
        short = partition.removeprefix(DATA_PREFIX + "/")
        say(f"  {short:<32} {len(objects):>2} object(s) {sum(objects):>9,} bytes")


def main() -> int:
    with (
        services.moto_server() as endpoint,
        services.fake_api("--brands", f"{BRAND}:120,{OTHER_BRAND}:8", "--page-size", "30") as api,
        tempfile.TemporaryDirectory(prefix="wifi-export-demo-") as tmp,
    ):
        say(f"moto server      {endpoint}")
        say(f"fake analytiks   {api}")
        os.environ.update(
            {
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_DEFAULT_REGION": REGION,
                "AWS_ACCESS_KEY_ID": "demo",
                "AWS_SECRET_ACCESS_KEY": "demo",
                "POWERTOOLS_TRACE_DISABLED": "true",
                "POWERTOOLS_SERVICE_NAME": "wifi-export",
                "POWERTOOLS_METRICS_NAMESPACE": "WifiExport",
                "POWERTOOLS_LOG_LEVEL": "WARNING",
                "POWERTOOLS_METRICS_DISABLED": "true",
            }
        )
        deployment = provision(
            clients(REGION),
            name="wifi-export-demo",
            client_id="demo-client",
            client_secret="demo-secret",
        )
        os.environ.update(
            deployment.environment(api, DATA_PREFIX, STATE_PREFIX),
            BRAND_IDS=f"{BRAND},{OTHER_BRAND}",
            TIME_SAFETY_MARGIN_MS=str(MARGIN_MS),
        )
        import app  # noqa: PLC0415 -- after the environment is configured

        s3 = boto3.client("s3", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)

        event = {"brandId": BRAND, "startDate": "2023-06-01", "endDate": "2023-06-12"}
        say()
        say(f"1. On-demand backfill: {json.dumps(event)}")
        answer = app.handler(event, FakeContext(SMALL_BUDGET_MS))
        run = answer["runs"][0]
        say(f"   run {run['runId']}: {len(run['windows'])} windows, fanned out to the queue")

        def show_hop(number: int, sqs_event: dict[str, Any]) -> None:
            task = json.loads(sqs_event["Records"][0]["body"])
            say(
                f"   invocation {number:>2}: window {task['window']} step {task['step']}"
                f" ({'start' if task['cursor'] is None else 'from checkpoint'})"
            )

        report = drain(
            app.handler, sqs, deployment.queue_url, budget_ms=SMALL_BUDGET_MS, on_invoke=show_hop
        )
        say(f"   queue drained: {report.invocations} invocations (each walked one page, then")
        say("   flushed its rows and sent a checkpoint for the next one)")

        now = datetime.now(UTC).replace(microsecond=0)
        scheduled = {
            "version": "0",
            "id": "demo-nightly",
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "time": now.isoformat().replace("+00:00", "Z"),
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/wifi-export-nightly"],
            "detail": {},
        }
        say()
        say(f"2. Scheduled (nightly) run at {scheduled['time']}, BRAND_IDS={BRAND},{OTHER_BRAND}")
        answer = app.handler(scheduled, FakeContext(600_000))
        for run in answer["runs"]:
            days = f"{run['startDate']}..{run['endDate']}"
            say(f"   run {run['runId']}: brand {run['brandId']} {days}")
        drain(app.handler, sqs, deployment.queue_url, budget_ms=600_000)
        say("   exported inside the scheduled invocation itself (one window: no queue hop)")

        say()
        show_partitions(s3, deployment.bucket)

        say()
        say("Notifications (one per run):")
        for note in read_notifications(sqs, deployment.inbox_url):
            body = note["body"]
            say(f"  {note['subject']}")
            say(
                f"    status={body['status']} rows={body['totals']['rows']:,} "
                f"objects={body['totals']['objects']} api_calls={body['api']['calls']} "
                f"manifest={body['manifest']}"
            )

        say()
        say("Athena-style SQL over the exported files (DuckDB, hive partitions, table schema):")
        con = export_table(s3, deployment.bucket, DATA_PREFIX, Path(tmp) / "table")
        query = (
            "SELECT brand_id, dt, location_id, sum(visits) AS visits, "
            "round(avg(dwell_time_ms) / 60000.0, 1) AS avg_dwell_min "
            "FROM metrics WHERE brand_id = 1234 AND dt BETWEEN DATE '2023-06-01' "
            "AND DATE '2023-06-02' GROUP BY ALL ORDER BY dt, location_id LIMIT 8"
        )
        say(f"  {query}")
        rows = con.execute(query).fetchall()
        say(f"  {'brand_id':>8} {'dt':>10} {'location_id':>11} {'visits':>7} {'avg_dwell_min':>13}")
        for brand, dt, location, visits, dwell in rows:
            say(f"  {brand:>8} {dt!s:>10} {location:>11} {visits:>7} {dwell:>13}")
        total = con.execute("SELECT count(*), count(DISTINCT dt) FROM metrics").fetchone()
        assert total is not None
        say(f"  ... {total[0]:,} rows in {total[1]} partitions (brand, day) in all")
    say()
    say("Demo finished: moto server and fake API stopped, temporary files removed.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
