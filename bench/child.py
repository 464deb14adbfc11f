"""One measured workload, run in its own process by `bench/run.py`.

    python -m bench.child bare|raw-gzip|exporter --spec SPEC.json --result OUT.json

The parent measures this process from the outside (wall time, rusage); the
child writes what it did (pages, bytes, rows, ...) and the wall time of the
work itself, imports excluded (`work_s`), to OUT.json.

* ``bare``: token, then every v3 page of every window with urllib3; bytes discarded.
* ``raw-gzip``: ``bare`` + stdlib gzip level 6 of each raw page + one S3 put per page.
* ``exporter``: the real handler: an on-demand invoke, then the queue drained
  like Lambda's event source mapping; the run's manifest and notification read back.
* ``json-only``: ``exporter`` with its Parquet twin turned off (`PARQUET_ENABLED=false`),
  into a table and state of its own (`JSON_ONLY_PREFIX`): what the twin costs is
  the difference (docs/performance.md).
  The CPU this process spends playing Lambda's part (its own boto3 session, the
  event source mapping's receives and deletes, the checks afterwards) is measured
  on the main thread, where all of it runs, and written as `harness_cpu_s`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EXPORTER_DIR = ROOT / "functions" / "exporter"
AUDIENCE = "https://gql.analytiks.ai"
# `json-only` exports the same brand into its own table and ledger: its commits
# must not replace the objects of the `exporter` runs measured around it.
JSON_ONLY_PREFIX = "bench-json-only"
# The fake (like the real API) puts the cursor first: read it without parsing the page.
_CURSOR_RE = re.compile(rb'^\{"cursor":(?:null|"([^"\\]*)")')


def _token(http: Any, spec: dict[str, Any]) -> str:
    body = json.dumps(
        {
            "client_id": spec["client_id"],
            "client_secret": spec["client_secret"],
            "audience": AUDIENCE,
            "grant_type": "client_credentials",
        }
    )
    response = http.request(
        "POST", spec["token_url"], body=body, headers={"Content-Type": "application/json"}
    )
    if response.status != 200:
        raise RuntimeError(f"token request failed: {response.status} {response.data[:200]!r}")
    token: str = json.loads(response.data)["access_token"]
    return token


def _cursor(body: bytes) -> str | None:
    match = _CURSOR_RE.match(body[:16_384])
    if match is not None:
        return match.group(1).decode() if match.group(1) is not None else None
    cursor = json.loads(body).get("cursor")  # not the fake's layout: parse it all
    return cursor if isinstance(cursor, str) else None


def walk(spec: dict[str, Any], on_page: Any = None) -> dict[str, Any]:
    """Every v3 page of every window; `on_page(window, page, body)` sees each body."""
    import urllib3  # noqa: PLC0415 -- imported here so `import` cost is per mode

    http = urllib3.PoolManager(maxsize=4, retries=False)
    token = _token(http, spec)
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "Authorization": f"Bearer {token}",
    }
    url = spec["api_url"] + "/wifi/json/v3"
    pages = calls = nbytes = 0
    for window, (start, end) in enumerate(spec["windows"]):
        cursor: str | None = None
        page = 0
        while True:
            request: dict[str, Any] = {"startDate": start, "endDate": end, "brandId": spec["brand"]}
            if cursor is not None:
                request["cursor"] = cursor
            calls += 1
            response = http.request("POST", url, body=json.dumps(request), headers=headers)
            if response.status != 200:
                raise RuntimeError(f"v3 page failed: {response.status} {response.data[:200]!r}")
            body = response.data
            pages += 1
            nbytes += len(body)
            if on_page is not None:
                on_page(window, page, body)
            page += 1
            cursor = _cursor(body)
            if cursor is None:
                break
    return {"pages": pages, "api_calls": calls, "raw_bytes": nbytes}


def run_bare(spec: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    out = walk(spec)
    out["work_s"] = time.perf_counter() - started
    out["done_at"] = time.time()
    return out


def run_raw_gzip(spec: dict[str, Any]) -> dict[str, Any]:
    import gzip  # noqa: PLC0415

    import boto3  # noqa: PLC0415

    started = time.perf_counter()
    s3 = boto3.client("s3")
    totals = {"objects": 0, "bytes": 0}

    def on_page(window: int, page: int, body: bytes) -> None:
        packed = gzip.compress(body, compresslevel=6)
        key = f"bench/raw-gzip/brand_id={spec['brand']}/w{window}/p{page:05d}.json.gz"
        s3.put_object(Bucket=spec["bucket"], Key=key, Body=packed, ContentType="application/json")
        totals["objects"] += 1
        totals["bytes"] += len(packed)

    out = walk(spec, on_page)
    done_at = time.time()
    out.update(totals, s3_requests=totals["objects"], work_s=time.perf_counter() - started)
    out["done_at"] = done_at
    return out


def _notification(sqs: Any, inbox_url: str, run_id: str) -> dict[str, Any] | None:
    """The run's SNS notification from the inbox queue (others are consumed and dropped)."""
    for _ in range(20):
        got = sqs.receive_message(
            QueueUrl=inbox_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", [])
        found = None
        for message in got:
            sqs.delete_message(QueueUrl=inbox_url, ReceiptHandle=message["ReceiptHandle"])
            envelope = json.loads(message["Body"])
            body = json.loads(envelope["Message"])
            if body.get("runId") == run_id:
                found = {"subject": envelope.get("Subject"), "status": body.get("status")}
        if found is not None:
            return found
    return None


class _Timed:
    """A client whose calls add their CPU time (this thread's) to `cpu_s`."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.cpu_s = 0.0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return method(*args, **kwargs)
            finally:
                self.cpu_s += time.thread_time() - started

        return timed


def run_selection(spec: dict[str, Any]) -> dict[str, Any]:
    """The same locations and days as `exporter`, chosen by id: v1 in batches of 50."""
    from local.fake_analytiks import location_ids  # noqa: PLC0415

    brand = spec["selection_brand"]  # a twin of `brand`: as many locations, its own data
    twin = {**spec, "brand": brand}
    return run_exporter(twin, {"locations": location_ids(brand, spec["locations"])})


def run_json_only(spec: dict[str, Any]) -> dict[str, Any]:
    """The exporter as deployed with `EnableParquet=false`: the JSON table only."""
    import os  # noqa: PLC0415

    state_prefix = f"{JSON_ONLY_PREFIX}/_exports"
    # Read when the handler builds its settings, on its first invocation.
    os.environ.update(
        PARQUET_ENABLED="false",
        DATA_PREFIX=f"{JSON_ONLY_PREFIX}/metrics",
        STATE_PREFIX=state_prefix,
    )
    return run_exporter({**spec, "state_prefix": state_prefix})


def run_exporter(spec: dict[str, Any], selector: dict[str, Any] | None = None) -> dict[str, Any]:
    sys.path.insert(0, str(EXPORTER_DIR))
    import boto3  # noqa: PLC0415

    import app  # noqa: PLC0415 -- the handler as Lambda imports it
    from exporter import aws  # noqa: PLC0415
    from local.harness import FakeContext, drain  # noqa: PLC0415

    calls: dict[str, int] = {}
    sends: dict[str, int] = {}

    def count_call(event_name: str = "", **_: Any) -> None:
        # before-call.<service>.<Operation>: once per API call (retries not included).
        calls[event_name.split(".", 1)[1]] = calls.get(event_name.split(".", 1)[1], 0) + 1

    def count_send(event_name: str = "", **_: Any) -> None:
        # before-send.<service>.<Operation>: once per HTTP attempt.
        service = event_name.split(".")[1]
        sends[service] = sends.get(service, 0) + 1

    # Clients copy the session's event hooks when created: register before the first.
    events = aws._session().events
    events.register("before-call", count_call)
    events.register("before-send", count_send)

    # The bench's own calls go through a separate session, so they are not counted.
    # Its SQS client plays Lambda's event source mapping; its S3 client only reads
    # the results afterwards, so it is created after the measured work.
    harness_started = time.thread_time()
    own = boto3.session.Session()
    sqs = _Timed(own.client("sqs"))
    harness_cpu = time.thread_time() - harness_started

    started = time.perf_counter()
    response = app.handler(
        {
            "brandId": spec["brand"],
            "startDate": spec["start"],
            "endDate": spec["end"],
            **(selector or {}),
        },
        FakeContext(900_000),
    )
    invoked = time.perf_counter()
    run_id = response["runs"][0]["runId"]
    report = drain(app.handler, sqs, spec["queue_url"], budget_ms=900_000)
    work_s = time.perf_counter() - started
    done_at = time.time()  # the job is done; what follows only checks it
    drain_cpu = sqs.cpu_s  # (the checks' own receives are in the checks' time)
    checks_started = time.thread_time()
    s3 = own.client("s3")

    manifest_key = f"{spec['state_prefix']}/runs/{run_id}/manifest.json"
    manifest = json.loads(s3.get_object(Bucket=spec["bucket"], Key=manifest_key)["Body"].read())
    note = _notification(sqs, spec["inbox_url"], run_id)
    s3_calls = {k.split(".", 1)[1]: v for k, v in calls.items() if k.startswith("s3.")}
    harness_cpu += drain_cpu + time.thread_time() - checks_started
    return {
        "harness_cpu_s": harness_cpu,
        "work_s": work_s,
        "done_at": done_at,
        "plan_s": invoked - started,
        "run_id": run_id,
        "invocations": report.invocations + 1,
        "failed_records": report.failed_records,
        "crashed_invocations": report.crashed_invocations,
        "status": manifest.get("status"),
        "notification": note,
        "rows": manifest["totals"]["rows"],
        "objects": manifest["totals"]["objects"],
        "bytes": manifest["totals"]["bytes"],
        "dropped_rows": manifest["totals"]["droppedRowsOutsideRange"],
        "api_calls": manifest["api"]["calls"],
        "retries": manifest["api"]["retries"],
        "pages": manifest["api"]["pages"],
        "windows": manifest["windows"],
        "steps": manifest["steps"],
        "data_keys": sorted(k for p in manifest["partitions"] for k in p["keys"]),
        "s3_requests": sum(s3_calls.values()),
        "s3_by_operation": dict(sorted(s3_calls.items())),
        "s3_http_attempts": sends.get("s3", 0),
        "aws_calls": dict(sorted(calls.items())),
    }


def _vmhwm_mb() -> float | None:
    """This process's own RSS high-water mark (a cross-check of the parent's wait4 figure)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


MODES = {
    "bare": run_bare,
    "raw-gzip": run_raw_gzip,
    "exporter": run_exporter,
    "json-only": run_json_only,
    "selection": run_selection,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.child")
    parser.add_argument("mode", choices=sorted(MODES))
    parser.add_argument("--spec", type=Path, required=True, help="workload spec (JSON)")
    parser.add_argument("--result", type=Path, required=True, help="where to write the result")
    args = parser.parse_args(argv)
    spec = json.loads(args.spec.read_text())
    result = MODES[args.mode](spec)
    result["vmhwm_mb"] = _vmhwm_mb()
    args.result.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
