"""`make demo`: the exporter end to end on a laptop, no AWS account needed.

Starts the moto server and the fake analytiks API as local processes, creates
the deployment's resources in moto, and plays the Lambda service with a local
stand-in (`local.lambda_service`: the Invoke API and the queue's event source
mapping, running the real handler in this process). Then does what a person
would, with the `wifi-export` CLI: a backfill followed to its end (a time budget
small enough that every window takes several checkpoints through the queue),
three stores re-exported by id (the other locations keep their rows), the same
days in local time (a dataset of its own, beside the UTC one), a nightly
scheduled run, a mistaken backfill cancelled, and the list of runs.
Prints the partitions written, the notifications, SQL queries over the exported
files read the way Athena reads them (one per time basis, and both side by side),
and a summary of the function's own log
(kept in a file, as CloudWatch Logs would keep it). Cleans up after itself.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "functions" / "exporter"))
# Powertools warns when an invocation added no metric (a message that found its run
# already finished): noise for a person watching the demo.
warnings.filterwarnings("ignore", message="No application metrics to publish")

import boto3  # noqa: E402

from local.fake_analytiks import location_ids  # noqa: E402
from local.harness import export_table  # noqa: E402
from local.resources import read_notifications  # noqa: E402
from local.sandbox import (  # noqa: E402
    BRAND,
    DATA_PREFIX,
    OTHER_BRAND,
    REGION,
    SMALL_BUDGET_MS,
    local_stack,
)

# One log per demo: demos run side by side (CI, several checkouts) never truncate each other's.
LOG = Path(tempfile.gettempdir()) / f"wifi-export-demo-{os.getpid()}.log"


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
        say(f"  {short:<44} {len(objects):>2} object(s) {sum(objects):>9,} bytes")


DAILY_QUERY = (
    "SELECT dt, location_id, sum(visits) AS visits, "
    "round(avg(dwell_time_ms) / 60000.0, 1) AS avg_dwell_min "
    "FROM metrics WHERE brand_id = 1234 AND time_basis = 'utc' "
    "AND dt BETWEEN DATE '2023-06-01' AND DATE '2023-06-02' "
    "GROUP BY ALL ORDER BY dt, location_id LIMIT 4"
)


def query_basis(con: Any, basis: str) -> None:
    """The daily query of one time basis, as a person would type it into Athena."""
    assert basis in ("utc", "local")
    query = DAILY_QUERY.replace("'utc'", f"'{basis}'")
    say(f"  {query}")
    say(f"  {'dt':>10} {'location_id':>11} {'visits':>7} {'avg_dwell_min':>13}")
    for dt, location, visits, dwell in con.execute(query).fetchall():
        say(f"  {dt!s:>10} {location:>11} {visits:>7} {dwell:>13}")


def cli_command() -> list[str]:
    """The installed console script (`make install`), else the same module."""
    script = Path(sys.executable).parent / "wifi-export"
    found = shutil.which("wifi-export", path=str(script.parent)) if script.exists() else None
    return [found] if found else [sys.executable, "-m", "wifi_export_cli"]


def wifi_export(*args: str, env: dict[str, str]) -> tuple[int, str]:
    """Run `wifi-export ARGS` as a person would type it, print it, return (exit, stdout)."""
    say(f"   $ wifi-export {' '.join(args)}")
    live = sys.stdout.isatty() and "--follow" in args and "--json" not in args
    proc = subprocess.run(
        [*cli_command(), *args],
        env=env,
        cwd=ROOT,
        text=True,
        stdout=None if live else subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=300,
        check=False,
    )
    for line in (proc.stdout or "").rstrip().splitlines():
        say(f"     {line.rstrip()}")
    for line in proc.stderr.rstrip().splitlines():
        say(f"     {line.rstrip()}")
    return proc.returncode, proc.stdout or ""


def log_summary(path: Path) -> str:
    levels: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "level" in record:
            levels[record["level"]] += 1
    counts = ", ".join(f"{levels[k]} {k}" for k in ("INFO", "WARNING", "ERROR"))
    return f"{sum(levels.values())} records: {counts}"


def main() -> int:  # noqa: PLR0915 -- one story, told top to bottom
    with (
        tempfile.TemporaryDirectory(prefix="wifi-export-demo-") as tmp,
        LOG.open("w") as log,
        local_stack("wifi-export-demo", log=log) as stack,
    ):
        deployment, lambda_service = stack.deployment, stack.lambda_service
        say(f"moto server      {stack.moto_url}")
        say(f"fake analytiks   {stack.api_url}")
        s3 = boto3.client("s3", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        say(f"Lambda stand-in  {lambda_service.url} (the exporter, in this process)")
        # What the CLI needs: what `make sandbox` prints (.sandbox.env), and the
        # CLI's own sources for an uninstalled checkout.
        cli_env = {
            **os.environ,
            **stack.cli_environment(),
            "PYTHONPATH": os.pathsep.join(
                [str(ROOT / "cli"), str(ROOT / "functions" / "exporter")]
            ),
        }

        say()
        say("1. A backfill, followed to its end. Each invocation gets a budget of about")
        say("   one page, then checkpoints: the windows go round the queue several times.")
        before = lambda_service.invocations
        code, _ = wifi_export(
            "run", "--brand", str(BRAND), "--from", "2023-06-01", "--to", "2023-06-12",
            "--follow", "--interval", "0.5", env=cli_env,
        )  # fmt: skip
        used = lambda_service.invocations - before
        say(f"   (exit {code}; {used} invocations of the function)")

        say()
        say("2. The vendor corrected three stores: re-export just them (a selection, the")
        say("   API's v1). Their rows are replaced; every other store keeps the backfill's.")
        chosen = location_ids(BRAND, 120)[:3]
        code, _ = wifi_export(
            "run", "--brand", str(BRAND), "--from", "2023-06-01", "--to", "2023-06-12",
            "--locations", ",".join(map(str, chosen)), "--follow", "--interval", "0.5",
            env=cli_env,
        )  # fmt: skip
        con = export_table(s3, deployment.bucket, DATA_PREFIX, Path(tmp) / "after-selection")
        owners = con.execute(
            "SELECT run_id, count(DISTINCT location_id), count(*) FROM metrics "
            "WHERE brand_id = 1234 AND time_basis = 'utc' GROUP BY run_id ORDER BY run_id"
        ).fetchall()
        for run_id, locations, rows in owners:
            say(f"   {run_id}: {locations:>3} locations, {rows:>6,} rows")
        twice = con.execute(
            "SELECT count(*) FROM (SELECT location_id, ts FROM metrics WHERE brand_id = 1234 "
            "AND time_basis = 'utc' GROUP BY ALL HAVING count(*) > 1)"
        ).fetchone()
        say(f"   (exit {code}; rows counted twice: {twice[0] if twice else '?'})")

        # The hops through the queue were shown in 1: from here on a whole budget.
        lambda_service.queue_budget_ms = 600_000
        say()
        say("3. The first five days again, in each store's local time: a dataset of its")
        say("   own (time_basis=local), beside the UTC rows, which it leaves alone.")
        code, _ = wifi_export(
            "run", "--brand", str(BRAND), "--from", "2023-06-01", "--to", "2023-06-05",
            "--local-time", "--follow", "--interval", "0.5", env=cli_env,
        )  # fmt: skip
        say(f"   (exit {code})")

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
        brands = f"{BRAND},{OTHER_BRAND}"
        say(f"4. The nightly schedule fires at {scheduled['time']} (BRAND_IDS={brands}):")
        answer = lambda_service.invoke(scheduled, 600_000)
        for run in answer["runs"]:
            days = f"{run['startDate']}..{run['endDate']}"
            say(f"   run {run['runId']}: brand {run['brandId']} {days}")
        say("   (one window each, exported inside the scheduled invocation: no queue hop)")
        while not lambda_service.idle():
            time.sleep(0.2)

        say()
        say("5. A mistaken five-month backfill, cancelled a few windows in:")
        lambda_service.queue_budget_ms = SMALL_BUDGET_MS
        with lambda_service.paused():
            code, out = wifi_export(
                "run", "--brand", str(OTHER_BRAND), "--from", "2023-01-01",
                "--to", "2023-05-31", "--no-wait", env=cli_env,
            )  # fmt: skip
        mistaken = out.split("started run ", 1)[1].split(":", 1)[0]
        first = lambda_service.invocations
        while lambda_service.invocations < first + 6:
            time.sleep(0.05)
        wifi_export("cancel", mistaken, env=cli_env)
        code, _ = wifi_export("status", mistaken, "--follow", "--interval", "0.5", env=cli_env)
        say(f"   (exit {code}: the run was cancelled, nothing committed)")

        say()
        say("6. Recent runs, newest first (the history index, kept 400 days):")
        wifi_export("runs", env=cli_env)

        say()
        say("7. Which days of June the lake holds, and which are missing (lake coverage):")
        wifi_export(
            "coverage", "--brand", str(BRAND), "--from", "2023-06-01", "--to", "2023-06-30",
            env=cli_env,
        )  # fmt: skip

        say()
        show_partitions(s3, deployment.bucket)

        say()
        say("Notifications (one per run):")
        for note in read_notifications(sqs, deployment.inbox_url):
            body = note["body"]
            say(f"  {note['subject']}")
            if body["status"] == "succeeded":
                say(
                    f"    status={body['status']} rows={body['totals']['rows']:,} "
                    f"objects={body['totals']['objects']} api_calls={body['api']['calls']} "
                    f"manifest={body['manifest']}"
                )
                if "changes" in body:  # a run that replaced rows: what it changed
                    say(f"    changes={body['changes']}")
            else:
                say(f"    status={body['status']} rows=0 manifest=None ({body.get('note', '')})")

        say()
        say("Athena-style SQL over the exported files (DuckDB, hive partitions, table schema).")
        say("Each query chooses a time basis, as the table makes Athena's do:")
        con = export_table(s3, deployment.bucket, DATA_PREFIX, Path(tmp) / "table")
        for basis in ("utc", "local"):
            query_basis(con, basis)
        say("  Both side by side: the same days, counted in two ways, never added together.")
        side = (
            "SELECT dt, sum(visits) FILTER (WHERE time_basis = 'utc') AS utc_visits, "
            "sum(visits) FILTER (WHERE time_basis = 'local') AS local_visits FROM metrics "
            "WHERE brand_id = 1234 AND time_basis IN ('utc', 'local') AND zone_id IS NULL "
            "AND dt BETWEEN DATE '2023-06-01' "
            "AND DATE '2023-06-05' GROUP BY dt ORDER BY dt"
        )
        say(f"  {side}")
        say(f"  {'dt':>10} {'utc_visits':>10} {'local_visits':>12}")
        for dt, utc_visits, local_visits in con.execute(side).fetchall():
            say(f"  {dt!s:>10} {utc_visits:>10,} {local_visits:>12,}")
        total = con.execute(
            "SELECT count(*), count(DISTINCT (brand_id, time_basis, dt)) FROM metrics"
        ).fetchone()
        assert total is not None
        say(f"  ... {total[0]:,} rows in {total[1]} partitions (brand, basis, day) in all")
    say()
    say(f"The function's own log (CloudWatch Logs' part): {log_summary(LOG)}, in {LOG}")
    say("Demo finished: moto server, fake API and Lambda stand-in stopped, temporary files")
    say("removed (the function's log is kept for reading).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
