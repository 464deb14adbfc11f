"""Kills that really happen: the worker is a separate process, ended with SIGKILL.

The in-process campaign (test_kills.py and its siblings) raises at its kill points.
Here nothing of the dead worker runs after the kill: no `finally`, no unwinding, no
sibling thread finishing its copy, and the worker that takes over starts cold (no
token, secret, plan or client cache). The exporter runs in `python -m local.worker`
against a moto *server* and the fake analytiks API over loopback; this test plays
the Lambda service:

1. a worker commits an earlier run over the same days and one more on each side;
2. the next worker starts the scenario's run and works through the queue until it
   reaches the kill point, the n-th call of an adapter method, where it freezes (every
   thread) and leaves a marker file; the supervisor SIGKILLs it and checks it died of
   the signal;
3. a fresh worker drains the queue: the dead worker's message comes back once its
   visibility timeout has passed, a dead holder's commit lease once its deadline has.

The run must then have succeeded exactly once: the expected rows each once, all of
the new run, the earlier run's neighbour days untouched, one notification, nothing
left in the queue or the DLQ.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from local import services
from local.campaign import Campaign, fired, scenario
from local.fake_analytiks import FakeAnalytiks
from local.resources import Deployment, clients, provision
from tests.chaos.campaign import (
    BRAND,
    COPIES,
    DAYS,
    EARLIER_EVENT,
    EVENT,
    FIRST,
    HOP,
    LAST,
    LOCATIONS,
    MARGIN_MS,
    PAGE_SIZE,
    Earlier,
    assert_neighbours_untouched,
    fingerprint,
    queue_depth,
)
from tests.chaos.conftest import SIZE
from tests.integration.conftest import CLIENT_SECRET, REGION, Lab
from tests.integration.test_export import assert_table_matches
from tests.integration.test_parquet import assert_tables_agree

ROOT = Path(__file__).resolve().parents[2]
FULL = SIZE == "full"
VISIBILITY_S = 3  # the checkpoint queue's visibility timeout, compressed
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
}


@dataclass(frozen=True)
class Point:
    """Freeze (then SIGKILL) the worker at call `n` of `method`, counting the calls
    whose first argument contains `where`."""

    case: str
    method: str
    n: int
    where: str = ""

    @property
    def spec(self) -> str:
        return f"{self.method}:{self.n}"


POINTS = [
    Point("mid-walk: fetching the second page", "AnalytiksClient.fetch_v3", 2),
    Point(
        f"mid-commit: copying into the table, {COPIES // 2} of {COPIES} copies started",
        "S3Store.copy",
        COPIES // 2 + 1,
    ),
]
if FULL:
    POINTS += [
        Point(
            "after staging step 0 of window 0, before its step record",
            "S3Store.put_if_absent",
            1,
            "/steps/w0/s0.json",
        ),
        Point(
            f"mid-commit: older objects deleted on {DAYS // 2} of {DAYS} days",
            "S3Store.delete",
            DAYS // 2 + 1,
            "wifi/metrics/",
        ),
        Point("mid-commit: writing the manifest", "S3Store.put", 1, "manifest.json"),
        Point(
            "mid-commit: JSON settled, writing the first Parquet object",
            "S3Store.put",
            1,
            "/part.parquet",
        ),
    ]


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with services.moto_server() as url:
        yield url


@dataclass
class Rig:
    endpoint: str
    deployment: Deployment
    api: FakeAnalytiks
    lab: Lab  # boto3 clients on the moto server, for reading back
    env: dict[str, str]
    tmp: Path


@pytest.fixture
def rig(
    moto_endpoint: str,
    make_fake_api: Callable[..., FakeAnalytiks],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Rig:
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    # A clean moto for each scenario (its server outlives them: it takes seconds to start).
    reset = urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")  # noqa: S310
    with urllib.request.urlopen(reset, timeout=10):  # noqa: S310 -- the loopback moto server
        pass
    api = make_fake_api(
        brands={BRAND: LOCATIONS},
        page_size=PAGE_SIZE,
        clients={"demo-client": (CLIENT_SECRET, None)},
    )
    make = clients(REGION, moto_endpoint)
    deployment = provision(
        make, name="wifi-export-sigkill", client_id="demo-client", client_secret=CLIENT_SECRET
    )
    lab = Lab(
        api=api,
        s3=make("s3"),
        sqs=make("sqs"),
        sns=make("sns"),
        bucket=deployment.bucket,
        queue_url=deployment.queue_url,
        dlq_url=deployment.dlq_url,
        topic_arn=deployment.topic_arn,
        inbox_url=deployment.inbox_url,
        monkeypatch=monkeypatch,
        tmp=tmp_path,
        env={"DATA_PREFIX": "wifi/metrics"},
    )
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        **AWS_ENV,
        "AWS_ENDPOINT_URL": moto_endpoint,
        **deployment.environment(api.url),
        "TIME_SAFETY_MARGIN_MS": str(MARGIN_MS),
        "MAX_RECEIVE_COUNT": "5",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_SERVICE_NAME": "wifi-export",
        "POWERTOOLS_METRICS_NAMESPACE": "WifiExport",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }
    return Rig(moto_endpoint, deployment, api, lab, env, tmp_path)


@dataclass
class Worker:
    name: str
    proc: subprocess.Popen[bytes]
    report: Path
    marker: Path
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def start_worker(rig: Rig, name: str, *args: str) -> Worker:
    report, marker, log = (rig.tmp / f"{name}.{ext}" for ext in ("json", "marker", "log"))
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "local.worker", "--report", str(report), "--marker",
             str(marker), "--visibility-timeout", str(VISIBILITY_S), *args],
            cwd=ROOT,
            env=rig.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    return Worker(name, proc, report, marker, log)


def finish(worker: Worker, timeout_s: float = 180) -> dict[str, Any]:
    """Wait for a worker that is not to be killed; its report."""
    try:
        code = worker.proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        worker.proc.kill()
        worker.proc.wait()
        pytest.fail(f"{worker.name} did not finish in {timeout_s} s: {worker.output()}")
    assert code == 0, f"{worker.name} exited with {code}: {worker.output()}"
    report: dict[str, Any] = json.loads(worker.report.read_text())
    return report


def kill_when_frozen(worker: Worker, timeout_s: float = 120) -> dict[str, Any]:
    """Wait until the worker froze at its kill point, SIGKILL it, and make sure it died
    of the signal; what the marker says about the point."""
    deadline = time.monotonic() + timeout_s
    while not worker.marker.exists():
        if worker.proc.poll() is not None:
            pytest.fail(f"{worker.name} ended without reaching its kill point: {worker.output()}")
        if time.monotonic() > deadline:
            worker.proc.kill()
            pytest.fail(f"{worker.name} did not reach its kill point: {worker.output()}")
        time.sleep(0.02)
    frozen: dict[str, Any] = json.loads(worker.marker.read_text())
    assert frozen["pid"] == worker.proc.pid
    os.kill(worker.proc.pid, signal.SIGKILL)
    code = worker.proc.wait(timeout=30)
    frozen["killed"] = int(code == -signal.SIGKILL)  # the campaign's "fired", measured
    assert code == -signal.SIGKILL, f"{worker.name} ended with {code}, not by SIGKILL"
    assert not worker.report.exists(), "the killed worker got as far as its report"
    return frozen


@pytest.mark.parametrize("point", POINTS, ids=[p.case for p in POINTS])
def test_worker_killed_with_sigkill(rig: Rig, campaign: Campaign, point: Point) -> None:
    lab = rig.lab
    expected = "succeeded; one notification"
    where = f"{point.method} call {point.n}" + (f" on {point.where}" if point.where else "")
    with scenario(campaign, "Killed (SIGKILL, separate process)", point.case, expected,
                  where + ", frozen before it") as row:  # fmt: skip
        finish(start_worker(rig, "earlier", "--event", json.dumps(EARLIER_EVENT), "--drain",
                            "--budget-ms", "30000"))  # fmt: skip
        (note,) = lab.notifications()
        assert note["body"]["status"] == "succeeded"
        earlier = Earlier(note["body"]["runId"], fingerprint(lab))

        first = start_worker(
            rig, "worker-1", "--event", json.dumps(EVENT), "--drain", "--budget-ms", str(HOP),
            "--freeze-at", point.spec, "--freeze-where", point.where,
        )  # fmt: skip
        frozen = kill_when_frozen(first)
        fired(row, frozen["killed"], f"SIGKILL of pid {frozen['pid']}, frozen at {frozen['at']}")
        # The table as the kill left it: half replaced, for a kill inside the commit.
        at_kill = fingerprint(lab)
        new = [k for k in at_kill if k not in earlier.table]
        gone = [k for k in earlier.table if k not in at_kill]
        if point.method == "S3Store.copy":
            assert 0 < len(new) < COPIES and not gone, (len(new), len(gone))
        elif point.method == "S3Store.delete":
            assert len(new) == COPIES and 0 < len(gone) < DAYS, (len(new), len(gone))
        elif point.method == "AnalytiksClient.fetch_v3":
            assert not new and not gone
        state_at_kill = (
            f"at the kill: {len(new)} objects of the run in the table, {len(gone)} older gone"
        )

        second = start_worker(
            rig, "worker-2", "--drain", "--budget-ms", str(HOP),
            "--wait-in-flight", str(VISIBILITY_S * 3),
        )  # fmt: skip
        drained = finish(second)
        row.invocations = drained["invocations"]
        row.redeliveries = len(drained["redelivered"])
        assert drained["crashed_invocations"] == 0, drained
        # The message the dead worker held came back to the fresh one, on its next
        # delivery (not always the 2nd: a commit that runs out of its budget asks SQS
        # for another delivery, and the kill can come in that one).
        died_in = frozen["delivery"]
        assert died_in is not None, f"the kill point was not inside a delivery: {frozen}"
        assert died_in + 1 in drained["redelivered"], (died_in, drained)

        notes = lab.notifications()[1:]
        row.notifications = len(notes)
        row.outcome = "+".join(n["body"]["status"] for n in notes) or "silence"
        assert len(notes) == 1, [n["body"]["status"] for n in notes]
        body = notes[0]["body"]
        assert body["status"] == "succeeded", body.get("error")
        assert (body["startDate"], body["endDate"]) == (EVENT["startDate"], EVENT["endDate"])
        run_id = body["runId"]
        assert run_id != earlier.run_id
        rows = assert_table_matches(lab, BRAND, FIRST, LAST, "utc", run_id=run_id, other_days=True)
        assert body["totals"]["rows"] == len(rows)
        assert_tables_agree(lab)  # the Parquet table caught up, one object per day
        kept = assert_neighbours_untouched(lab, earlier, FIRST, LAST)
        assert queue_depth(lab, lab.queue_url) == 0, "messages left in the queue"
        assert queue_depth(lab, lab.dlq_url) == 0, "messages in the DLQ"
        row.detail = (
            f"{state_at_kill}; then {body['totals']['rows']} rows, "
            f"{body['totals']['objects']} objects"
        )
        row.checked = (
            f"{len(rows)} rows each once, all of this run; earlier run replaced, its {kept} "
            "neighbour-day objects intact; 1 notification; queue and DLQ empty"
        )
