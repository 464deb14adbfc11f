"""Selection runs under kills: an invocation dies at each action of the copy-on-write
commit over partitions a whole-brand run already committed, and after recovery every
row is in the table exactly once, the chosen locations from the selection run and
every other location untouched, with exactly one notification.

A kill is `Killed` (a BaseException, like a Lambda timeout) raised from the adapter
call named; each scenario asserts its kill fired.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from exporter import wiring
from exporter.api_client import RetryPolicy
from exporter.aws import S3Store, SnsPublisher
from exporter.run.coverage import NO_ROWS
from local.contract import METRIC_COLUMN
from local.fake_analytiks import location_ids
from local.harness import Killed
from tests.integration.conftest import Lab, expected

BRAND = 1234
FIRST, LAST = date(2023, 6, 8), date(2023, 6, 9)
RANGE = {"startDate": FIRST.isoformat(), "endDate": LAST.isoformat()}
LOCATIONS = location_ids(BRAND, 20)
BUDGET_MS = 3_000  # a dead holder's finishing lease expires within ~3 s
TABLE = "wifi/metrics/"


def kill_at(
    monkeypatch: pytest.MonkeyPatch,
    cls: type,
    name: str,
    nth: int,
    *,
    where: Callable[[tuple[Any, ...]], bool] = lambda args: True,
    after: bool = False,
) -> dict[str, int]:
    """Kill the invocation at the `nth` call of `cls.name` whose args match `where`."""
    original = getattr(cls, name)
    state = {"calls": 0, "fired": 0}

    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        hit = where(args)
        if hit:
            state["calls"] += 1
        fire = hit and state["calls"] == nth
        if fire and not after:
            state["fired"] += 1
            raise Killed(f"{name} #{nth}")
        result = original(self, *args, **kwargs)
        if fire:
            state["fired"] += 1
            raise Killed(f"after {name} #{nth}")
        return result

    monkeypatch.setattr(cls, name, wrapper)
    return state


def _table_key(args: tuple[Any, ...]) -> bool:
    first = args[0]
    keys = first if isinstance(first, list) else [first]
    return any(str(k).startswith(TABLE) for k in keys)


def _copy_into_table(args: tuple[Any, ...]) -> bool:
    return str(args[1]).startswith(TABLE)


def _key_ends(suffix: str) -> Callable[[tuple[Any, ...]], bool]:
    return lambda args: str(args[0]).endswith(suffix)


# (name, adapter, method, nth matching call, filter, kill after the call)
KILLS: list[tuple[str, type, str, int, Callable[[tuple[Any, ...]], bool], bool]] = [
    ("after the coverage is recorded", S3Store, "put", 1, _key_ends("coverage.json"), True),
    ("at the first copy in", S3Store, "copy", 1, _copy_into_table, False),
    ("reading the first older object", S3Store, "get_versioned", 1, _table_key, False),
    ("at the first rewrite of an older object", S3Store, "put_if_match", 1, _table_key, False),
    ("after the first rewrite, half way", S3Store, "put_if_match", 1, _table_key, True),
    ("at the manifest", S3Store, "put", 1, _key_ends("manifest.json"), False),
    ("before the notification", SnsPublisher, "publish", 1, lambda args: True, False),
]


@pytest.fixture
def chaos_sel_lab(make_lab: Any, monkeypatch: pytest.MonkeyPatch) -> Lab:
    # Short timeouts, so a request still fits in the short budget of these invocations.
    fast = RetryPolicy(connect_timeout_s=1.0, read_timeout_s=1.0, max_delay_s=0.4)
    monkeypatch.setattr(wiring, "RETRY_POLICY", fast)
    lab: Lab = make_lab(brands={BRAND: len(LOCATIONS)}, page_size=50)
    lab.configure(MAX_RECEIVE_COUNT="50")
    return lab


def assert_newest_wins(lab: Lab, whole: str, selection: str, chosen: set[int]) -> None:
    con = lab.table()
    cursor = con.execute(
        "SELECT *, strftime(ts, '%Y-%m-%d %H:%M:%S') AS ts_text FROM metrics WHERE zone_id IS NULL"
    )
    names = [d[0] for d in cursor.description]
    rows = [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]
    counts = Counter((r["location_id"], r["ts_text"]) for r in rows)
    assert not [k for k, n in counts.items() if n > 1], "a row is in the table twice"
    truth = expected(lab.api, BRAND, FIRST, LAST, "utc")
    by_key = {(r["location_id"], r["ts_text"]): r for r in rows}
    assert set(by_key) == set(truth), (
        f"missing {len(set(truth) - set(by_key))}, unexpected {len(set(by_key) - set(truth))}"
    )
    for key, values in truth.items():
        row = by_key[key]
        assert row["run_id"] == (selection if key[0] in chosen else whole), key
        for api_name, column in METRIC_COLUMN.items():
            assert row[column] == values.get(api_name), (key, column)


@pytest.mark.parametrize(
    ("case", "cls", "method", "nth", "where", "after"), KILLS, ids=[k[0] for k in KILLS]
)
def test_a_selection_killed_during_its_commit_recovers_exactly(
    chaos_sel_lab: Lab,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    cls: type,
    method: str,
    nth: int,
    where: Callable[[tuple[Any, ...]], bool],
    after: bool,
) -> None:
    lab = chaos_sel_lab
    whole = lab.run({"brandId": BRAND, **RANGE})["runs"][0]["runId"]
    assert [n["body"]["status"] for n in lab.notifications()] == ["succeeded"]
    chosen = {LOCATIONS[2], LOCATIONS[9], LOCATIONS[17]}
    fired = kill_at(monkeypatch, cls, method, nth, where=where, after=after)
    response = lab.invoke({"brandId": BRAND, **RANGE, "locations": sorted(chosen)})
    selection = response["runs"][0]["runId"]
    lab.drain(BUDGET_MS, crashes=1, redelivery_delay_s=0.5)
    assert fired["fired"] == 1, f"the kill {case!r} never fired"
    notes = lab.notifications()
    assert [(n["body"]["runId"], n["body"]["status"]) for n in notes] == [
        (whole, "succeeded"),
        (selection, "succeeded"),
    ]
    assert_newest_wins(lab, whole, selection, chosen)


def test_a_selection_of_every_location_empties_and_deletes_older_objects(
    chaos_sel_lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every row an older selection's objects can hold is covered: they are deleted
    unread, and a kill at that delete is recovered from. (Over a whole-brand run they
    would be kept with zero rows: it still replaces what no selection names.)"""
    lab = chaos_sel_lab
    older = lab.run({"brandId": BRAND, **RANGE, "locations": LOCATIONS})["runs"][0]["runId"]
    fired = kill_at(monkeypatch, S3Store, "delete", 1, where=_table_key)
    response = lab.invoke({"brandId": BRAND, **RANGE, "locations": LOCATIONS})
    selection = response["runs"][0]["runId"]
    lab.drain(BUDGET_MS, crashes=1, redelivery_delay_s=0.5)
    assert fired["fired"] == 1
    assert_newest_wins(lab, older, selection, set(LOCATIONS))
    owners = {key.rsplit("/", 1)[1].split("-w")[0] for key in lab.list_keys(TABLE)}
    assert owners == {selection}  # the older selection's objects are gone, not left empty


def test_a_selection_of_every_location_leaves_a_whole_brand_run_its_place(
    chaos_sel_lab: Lab,
) -> None:
    """Over a whole-brand run, a selection of every location empties its objects but
    keeps them, with zero rows: the whole-brand run still replaces every location
    without rows and every zone of its days, which an older run must not bring back."""
    lab = chaos_sel_lab
    whole = lab.run({"brandId": BRAND, **RANGE})["runs"][0]["runId"]
    selection = lab.run({"brandId": BRAND, **RANGE, "locations": LOCATIONS})["runs"][0]["runId"]
    assert_newest_wins(lab, whole, selection, set(LOCATIONS))
    by_owner: dict[str, list[str]] = {}
    for key in lab.list_keys(TABLE):
        by_owner.setdefault(key.rsplit("/", 1)[1].split("-w")[0], []).append(key)
    assert set(by_owner) == {whole, selection}
    bodies = lab.table_bytes()
    assert all(bodies[key] == NO_ROWS for key in by_owner[whole])
