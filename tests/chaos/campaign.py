"""The chaos campaign's sizes, fixtures and judge: every scenario is a real run through
the handler, moto and an HTTP API, and ends succeeded (every expected row once, one
success notification) or failed (the table byte-identical, one failure notification).
Why it is built this way: docs/decisions.md, "The chaos campaign".
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pytest

from exporter import api_client, wiring
from local import campaign as harness
from local.campaign import Fingerprint, Probe, guard_adapters
from local.chaos import CampaignRow, ScriptedApi
from local.chaos import record as rec
from local.contract import parse_data_key
from local.harness import DrainReport, FakeContext, drain
from tests.chaos.conftest import SIZE
from tests.integration.conftest import Lab
from tests.integration.test_export import assert_table_matches

FULL = SIZE == "full"
BRAND = 1234
FIRST, LAST = date(2023, 6, 1), (date(2023, 6, 14) if FULL else date(2023, 6, 7))
EVENT = {"brandId": BRAND, "startDate": FIRST.isoformat(), "endDate": LAST.isoformat()}
# What an earlier run committed before a scenario: the same days and one on each side.
EARLIER_FIRST, EARLIER_LAST = FIRST - timedelta(days=1), LAST + timedelta(days=1)
EARLIER_EVENT = {
    "brandId": BRAND,
    "startDate": EARLIER_FIRST.isoformat(),
    "endDate": EARLIER_LAST.isoformat(),
}
LOCATIONS, PAGE_SIZE = (30, 5) if FULL else (12, 4)
DAYS = (LAST - FIRST).days + 1
PAGES = -(-LOCATIONS // PAGE_SIZE)  # pages of a window
# One page per invocation: a run of EVENT commits one object per (page, day).
COPIES = PAGES * DAYS
MARGIN_MS = 2_000
HOP = MARGIN_MS + 1  # an invocation walks one page, then checkpoints
SHORT = 2_500  # a few pages; a dead holder's commit lease expires within ~2.5 s
REDELIVERY_S = 0.6  # visibility timeout, compressed
BIG = 30_000  # a whole window in one invocation
DATA, STATE = "wifi/metrics/", "wifi/_exports/"
PARQUET = "wifi/metrics_parquet/"  # the Parquet table (on by default)
V3 = "/wifi/json/v3"
# Small timeouts and backoff keep the campaign fast; the retry logic is the real one.
FAST_POLICY: dict[str, Any] = {
    "max_attempts": 5,
    "base_delay_s": 0.05,
    "max_delay_s": 0.4,
    "max_retry_after_s": 2.0,
    "connect_timeout_s": 1.0,
    "read_timeout_s": 1.0,
}


@pytest.fixture(autouse=True)
def dead_workers_do_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    guard_adapters(monkeypatch)


def fingerprint(lab: Lab) -> Fingerprint:
    """Every table object with its MD5 ETag and size: equal fingerprints, equal bytes."""
    return harness.fingerprint(lab.s3, lab.bucket, DATA)


def queue_depth(lab: Lab, url: str) -> int:
    return harness.queue_depth(lab.sqs, url)


@dataclass
class Earlier:
    """A run committed before the scenario, and the table it left."""

    run_id: str
    table: Fingerprint


@dataclass
class Run:
    lab: Lab
    response: Any
    report: DrainReport
    probe: Probe
    before: Fingerprint  # the table before the run
    notes_before: int
    earlier: Earlier | None = None

    @property
    def run_id(self) -> str | None:
        runs = self.response.get("runs") if isinstance(self.response, dict) else None
        return str(runs[0]["runId"]) if runs else None


def commit_earlier(lab: Lab) -> Earlier:
    """Export EARLIER_EVENT to the end, then cold-start with fresh API counters.

    Its rows are not checked here (the export tests do that): a scenario compares the
    table with what this run left, object by object."""
    run_id = lab.run(EARLIER_EVENT, BIG)["runs"][0]["runId"]
    assert [n["body"]["status"] for n in lab.notifications()] == ["succeeded"]
    table = fingerprint(lab)
    days = {parse_data_key(k).dt for k in table}
    assert len(days) == (EARLIER_LAST - EARLIER_FIRST).days + 1, "a day without data"
    lab.cold_start()
    lab.api.reset_stats()
    lab.api.reseed(0)
    return Earlier(run_id, table)


def execute(
    lab: Lab,
    event: dict[str, Any],
    *,
    budget_ms: int = BIG,
    arm: Callable[[], None] | None = None,
    earlier: Earlier | None = None,
    **drain_kwargs: Any,
) -> Run:
    """Invoke like a direct caller, arm the faults, then let the queue finish the work."""
    probe = Probe()
    before = fingerprint(lab)
    notes_before = len(lab.notifications())
    response = probe.handler()(event, FakeContext(budget_ms))
    if arm:
        arm()
    report = drain(probe.handler(), lab.sqs, lab.queue_url, budget_ms=budget_ms, **drain_kwargs)
    return Run(lab, response, report, probe, before, notes_before, earlier)


def assert_keys_confined(lab: Lab) -> None:
    keys = lab.list_keys()
    stray = [k for k in keys if not k.startswith((DATA, STATE, PARQUET)) or ".." in k or "//" in k]
    assert not stray, f"keys outside the prefixes: {stray[:3]}"


def assert_neighbours_untouched(lab: Lab, earlier: Earlier, first: date, last: date) -> int:
    """The earlier run's objects on days outside first..last are still there, byte for
    byte, and nothing else is on those days."""
    table = fingerprint(lab)

    def outside(key: str) -> bool:
        return not first <= date.fromisoformat(parse_data_key(key).dt) <= last

    theirs = {k: v for k, v in earlier.table.items() if outside(k)}
    now = {k: v for k, v in table.items() if outside(k)}
    assert theirs, "the earlier run left nothing on the neighbour days"
    assert now == theirs, "a neighbour day of the run changed"
    return len(theirs)


def settle(
    run: Run,
    row: CampaignRow,
    expect: str,
    *,
    kills: int | None = 0,
    brand: int = BRAND,
    first: date = FIRST,
    last: date = LAST,
    api_calls: int | None = None,
    check_rows: bool = True,
) -> dict[str, Any]:
    """Judge a run against the campaign's invariant and fill its row.

    `kills`: invocations this scenario killed (each one a crash of the harness); no
    other invocation may crash. None: the scenario counts them itself.
    """
    lab = run.lab
    notes = lab.notifications()[run.notes_before :]
    row.notifications = len(notes)
    row.invocations = run.probe.invocations
    row.redeliveries = run.report.failed_records + run.report.crashed_invocations
    row.api_calls = lab.api.stats.calls[V3] if api_calls is None else api_calls
    statuses = [n["body"]["status"] for n in notes]
    row.outcome = "+".join(statuses) or "silence"
    assert len(notes) == 1, f"expected one notification, got {statuses}"
    body = notes[0]["body"]
    assert notes[0]["attributes"]["status"] == body["status"]
    if run.run_id is not None:
        assert body["runId"] == run.run_id
    checked: list[str] = []
    if body["status"] == "succeeded":
        row.retries = str(body["api"]["retries"])
        row.detail = f"{body['totals']['rows']} rows, {body['totals']['objects']} objects"
        if check_rows:
            rows = assert_table_matches(
                lab, brand, first, last, "utc", run_id=run.run_id, other_days=bool(run.earlier)
            )
            assert body["totals"]["rows"] == len(rows)
            checked.append(f"{len(rows)} rows each once, all of this run")
            if run.earlier is not None:
                kept = assert_neighbours_untouched(lab, run.earlier, first, last)
                checked.append(f"earlier run replaced, its {kept} neighbour-day objects intact")
    else:
        row.detail = body["error"]
        assert body["totals"]["rows"] == 0
        assert fingerprint(lab) == run.before, "a failed run changed the table"
        checked.append(
            f"table byte-identical ({len(run.before)} objects of an earlier run)"
            if run.before
            else "table still empty"
        )
    checked.append("1 notification")
    assert expect.startswith(("either", body["status"])), f"expected {expect}, got {body['status']}"
    assert_keys_confined(lab)
    if kills is not None:
        assert run.report.crashed_invocations == kills, (
            f"{run.report.crashed_invocations} invocation(s) crashed, {kills} killed"
        )
    assert run.probe.overruns == 0, (
        f"{run.probe.overruns} invocation(s) ran past the deadline: {run.probe.overrun_details}"
    )
    assert queue_depth(lab, lab.queue_url) == 0, "messages left in the queue"
    assert queue_depth(lab, lab.dlq_url) == 0, "messages in the DLQ"
    row.checked = "; ".join(checked)
    return notes[0]


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wiring, "RETRY_POLICY", api_client.RetryPolicy(**FAST_POLICY))
    wiring.context.cache_clear()


@pytest.fixture
def chaos_lab(make_lab: Callable[..., Lab]) -> Lab:
    lab = make_lab(brands={BRAND: LOCATIONS, 777: 3}, page_size=PAGE_SIZE)
    lab.configure(TIME_SAFETY_MARGIN_MS=str(MARGIN_MS), MAX_RECEIVE_COUNT="5")
    return lab


@pytest.fixture
def earlier(chaos_lab: Lab) -> Earlier:
    """chaos_lab after an earlier run committed EARLIER_EVENT."""
    return commit_earlier(chaos_lab)


# -- scripted answers (local.chaos.ScriptedApi) ---------------------------------------------

DAY = "2023-06-01"
ONE_DAY = {"brandId": BRAND, "startDate": DAY, "endDate": DAY}
GOOD = rec(123400001, reference="REF-1")


def scripted_page(*records: Any, cursor: Any = None) -> dict[str, Any]:
    return {"data": list(records), "cursor": cursor}


def use_scripted(lab: Lab, api: ScriptedApi) -> None:
    lab.configure(API_URL=api.url, TOKEN_URL=api.token_url)


def everything(lab: Lab, probe_events: list[dict[str, Any]]) -> list[tuple[str, bytes]]:
    """Every blob a secret could leak into: objects, notifications, queue messages."""
    blobs = [
        (f"s3://{k}", lab.s3.get_object(Bucket=lab.bucket, Key=k)["Body"].read())
        for k in lab.list_keys()
    ]
    blobs += [
        (f"notification {n}", json.dumps(x).encode()) for n, x in enumerate(lab.notifications())
    ]
    blobs += [(f"sqs event {n}", json.dumps(e).encode()) for n, e in enumerate(probe_events)]
    return blobs
