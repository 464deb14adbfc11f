"""Lake coverage: per-location day numbers, what a rerun changed, statuses and freshness."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

import pytest

from exporter import json_codec
from exporter.config import Settings
from exporter.events import RunRequest
from exporter.lake import freshness
from exporter.lake import records as lake
from exporter.lake.freshness import hours_since_last_complete_day, missing_location_days
from exporter.lake.sums import DaySums, add_sums, day_totals, replace_day
from exporter.rows import RowShaper
from exporter.run.context import Invocation
from exporter.run.coverage import WHOLE, Coverage
from exporter.run.start import start_runs
from tests.fakes import MemoryStore, ScriptedPages, memory_context

DAY = date(2023, 6, 1)
OLD, NEW, NEWER = (f"20230601T00000000{n}Z-b1-0000000{n}" for n in (1, 2, 3))


def page(visits_of_1: int = 5) -> list[dict[str, Any]]:
    return [
        {
            "locationId": 1,
            "visits": {"2023-06-01T08:00:00Z": visits_of_1, "2023-06-01T09:00:00Z": 1},
        },
        {
            "locationId": 2,
            "visits": {"2023-06-01T08:00:00Z": 7},
            "bounces": {"2023-06-01T10:00:00Z": 2},
        },
    ]


def sums_of(data: list[dict[str, Any]]) -> dict[str, list[int]]:
    return RowShaper(NEW, "utc", [DAY]).shape(data).sums["2023-06-01"]


def test_shaping_counts_visits_rows_hours_and_a_digest_per_location() -> None:
    sums = sums_of(page())
    assert [s[:3] for s in (sums["1"], sums["2"])] == [[6, 2, 0b11 << 8], [7, 2, 0b101 << 8]]
    assert sums_of(page())["1"][3] == sums["1"][3]  # the same rows, the same digest
    assert sums_of(page(visits_of_1=6))["1"][3] != sums["1"][3]


def test_sums_of_pages_add_up_whatever_the_split() -> None:
    whole = sums_of(page())
    parts: dict[str, dict[str, list[int]]] = {}
    for record in page():
        add_sums(parts, {"2023-06-01": sums_of([record])})
    assert parts["2023-06-01"] == whole


def test_a_rerun_reports_the_locations_that_differ_and_the_visits_delta() -> None:
    first, change = replace_day(None, OLD, sums_of(page()), WHOLE.covers("2023-06-01"))
    assert change is None  # nothing was there before: nothing replaced
    same, change = replace_day(first, NEW, sums_of(page()), WHOLE.covers("2023-06-01"))
    assert change is not None and (change.locations, change.visits) == (0, 0)
    restated, change = replace_day(same, NEWER, sums_of(page(9)), WHOLE.covers("2023-06-01"))
    assert change is not None and (change.locations, change.visits) == (1, 4)
    assert day_totals(restated) == {"rows": 4, "locations": 2, "hours": 3}
    assert restated.runs == [NEWER] and restated.seq == 3


def test_a_repeated_commit_reports_what_the_first_one_changed() -> None:
    first, _ = replace_day(None, OLD, sums_of(page()), WHOLE.covers("2023-06-01"))
    once, change = replace_day(first, NEW, sums_of(page(9)), WHOLE.covers("2023-06-01"))
    again, repeated = replace_day(once, NEW, sums_of(page(9)), WHOLE.covers("2023-06-01"))
    assert repeated == change and again == once
    assert replace_day(first, OLD, sums_of(page()), WHOLE.covers("2023-06-01"))[1] is None


def test_a_whole_brand_rerun_without_a_location_counts_it_gone() -> None:
    first, _ = replace_day(None, OLD, sums_of(page()), WHOLE.covers("2023-06-01"))
    _, change = replace_day(first, NEW, sums_of(page()[1:]), WHOLE.covers("2023-06-01"))
    assert change is not None and (change.locations, change.visits) == (1, -6)


def test_a_selection_replaces_only_its_locations_and_an_older_run_loses() -> None:
    first, _ = replace_day(None, NEW, sums_of(page()), WHOLE.covers("2023-06-01"))
    selection = Coverage("locations", ranges=((DAY, DAY, frozenset({1})),))
    mine = sums_of(page(9))
    day, change = replace_day(first, NEWER, {"1": mine["1"]}, selection.covers("2023-06-01"))
    assert change is not None and (change.locations, change.visits) == (1, 4)
    assert {i: day.owner(i) for i in day.locations} == {"1": NEWER, "2": NEW}
    # A zone of location 2, new that day: nothing it covers was there, no change.
    zone = Coverage("zone", zone="z")
    zoned = {"2@z": sums_of(page())["2"]}
    zone_run = "20230601T000000009Z-b1-00000009"
    with_zone, change = replace_day(day, zone_run, zoned, zone.covers("2023-06-01"))
    assert change is None and with_zone.owner("2@z") == zone_run
    # An older whole-brand run committing late changes nothing the newer runs wrote.
    late, change = replace_day(day, OLD, sums_of(page(1)), WHOLE.covers("2023-06-01"))
    assert late.locations == day.locations
    assert change is not None and change.locations == 0
    assert DaySums.from_dict(json_codec.loads(json_codec.dumps(late.to_dict()))) == late


def record(rows: int, locations: int, hours: int = 24) -> dict[str, Any]:
    return {"rows": rows, "locations": locations, "hours": hours, "runId": OLD, "committedAt": "t"}


def test_statuses_missing_ranges_and_partial_days() -> None:
    records = {f"2023-06-0{d}": record(100, 10) for d in (1, 2, 3, 6, 7)}
    records["2023-06-07"] = record(90, 8)  # fewer stores than the trailing median
    records["2023-06-03"] = record(80, 10, hours=20)
    days = lake.statuses(records, "utc", date(2023, 6, 1), date(2023, 6, 8))
    assert [d["status"] for d in days] == [
        *("present", "present", "partial", "missing", "missing", "present", "partial", "missing")
    ]
    assert days[3] == {"date": "2023-06-04", "status": "missing", "timeBasis": "utc"}
    assert set(days[0]) == {
        "date",
        "status",
        "timeBasis",
        "rows",
        "locations",
        "runId",
        "committedAt",
    }
    assert lake.missing_ranges(days) == [("2023-06-04", "2023-06-05"), ("2023-06-08", "2023-06-08")]
    assert missing_location_days(records, date(2023, 6, 1), date(2023, 6, 8)) == ["2023-06-07"]


def test_stores_closed_at_night_are_not_a_partial_day() -> None:
    records = {f"2023-06-{d:02d}": record(100, 10, hours=16) for d in range(1, 11)}
    records["2023-06-08"] = record(100, 10, hours=15)  # opened a little later: usual
    records["2023-06-09"] = record(60, 10, hours=11)  # cut short
    days = lake.statuses(records, "local", date(2023, 6, 1), date(2023, 6, 10))
    assert [d["date"] for d in days if d["status"] != "present"] == ["2023-06-09"]


def test_hours_since_the_last_complete_day() -> None:
    records = {"2023-06-01": record(100, 10), "2023-06-02": record(50, 10, hours=12)}
    now = datetime(2023, 6, 3, 6, 0, tzinfo=UTC)
    # June 2 is partial: the last complete day ended at June 2 00:00, 30 hours ago.
    assert hours_since_last_complete_day(records, now.date(), now) == 30.0
    assert hours_since_last_complete_day({}, now.date(), now) > 24 * 30


def test_updates_are_conditional_and_a_year_is_twelve_reads() -> None:
    store = MemoryStore()
    for month in range(1, 13):
        key = lake.month_key("st", 7, "utc", f"2023-{month:02d}", "days")
        day = f"2023-{month:02d}-01"

        def add(doc: dict[str, Any], day: str = day) -> None:
            doc["days"][day] = {"rows": 1, "locations": 1, "runId": "r", "committedAt": "t"}

        lake.update(store, key, add)
    reads: list[str] = []
    original = store.get

    def get(key: str) -> bytes | None:
        reads.append(key)
        return original(key)

    store.get = get  # type: ignore[method-assign]
    found = lake.read_days(store, "st", 7, "utc", (date(2023, 1, 1), date(2023, 12, 31)))
    assert len(found) == 12 and len(reads) == 12


def test_a_backfill_commit_reads_only_the_months_its_metrics_consult() -> None:
    """A commit of 2023 days in December 2026: the committed days' months and their
    trailing month, and the look-back's months (with their trailing month), not the
    forty months between; the figures are those of reading every month."""
    store = MemoryStore()
    calendar = {f"2023-05-{d:02d}": record(100, 60) for d in range(10, 32)}
    calendar |= {f"2023-06-0{d}": record(100, 50) for d in range(1, 6)}  # fewer stores
    calendar |= {f"2024-03-{d:02d}": record(100, 1) for d in range(1, 29)}  # never consulted
    calendar |= {f"2026-10-{d:02d}": record(100, 200) for d in range(10, 21)}
    calendar["2026-11-05"] = record(100, 100)  # partial against October's stores
    for month in sorted({dt[:7] for dt in calendar}):
        days = {dt: rec for dt, rec in calendar.items() if dt.startswith(month)}
        store.put(
            lake.month_key("st", 7, "utc", month, "days"), json.dumps({"days": days}).encode()
        )
    reads: list[str] = []
    original = store.get

    def get(key: str) -> bytes | None:
        reads.append(key.rsplit("/", 1)[-1])
        return original(key)

    store.get = get  # type: ignore[method-assign]
    now = datetime(2026, 12, 2, 6, tzinfo=UTC)
    committed = (date(2023, 6, 1), date(2023, 6, 5))
    emitted = freshness.emit(store, "st", 7, "utc", now=now, committed=committed)
    assert sorted(reads) == [
        f"{m}.json" for m in ("2023-05", "2023-06", "2026-10", "2026-11", "2026-12")
    ]
    every = lake.read_days(store, "st", 7, "utc", (date(2023, 5, 4), now.date()))
    assert emitted == {
        "HoursSinceLastCompleteDay": hours_since_last_complete_day(every, now.date(), now),
        "MissingLocationDays": missing_location_days(every, *committed),
    }
    # October's stores make November 5 partial: no complete day in the look-back.
    assert emitted["HoursSinceLastCompleteDay"] > 30 * 24
    assert len(emitted["MissingLocationDays"]) == 5


def emf(out: str, name: str) -> list[dict[str, Any]]:
    """The EMF documents of metric `name` in what the function printed."""
    docs = [json.loads(line) for line in out.splitlines() if line.startswith('{"_aws"')]
    return [d for d in docs if name in d]


def test_the_schedule_reports_each_brands_freshness_before_its_runs(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime(2023, 7, 2, 6, tzinfo=UTC)
    memory = memory_context(replace(settings, brand_ids=(5, 6)), ScriptedPages(), lambda: now)
    key = lake.month_key(settings.state_prefix, 5, "utc", "2023-06", "days")
    lake.update(memory.ctx.store, key, lambda doc: doc["days"].update({"2023-06-29": record(9, 3)}))
    request = RunRequest("scheduled", (5, 6), date(2023, 7, 1), date(2023, 7, 1), "utc", now, "r")
    start_runs(memory.ctx, request, Invocation("r", lambda: 600_000))
    found = emf(capsys.readouterr().out, "HoursSinceLastCompleteDay")
    # The schedule's readings come first (the inline first window's commit adds one).
    first: dict[str | None, float] = {}
    for doc in found:
        first.setdefault(doc.get("brand_id"), doc["HoursSinceLastCompleteDay"][0])
    # Brand 5's last complete day ended June 30 00:00, 54 hours before; brand 6 has
    # none in the last 30 days. The service-wide series (the alarm's) has both.
    assert first["5"] == 54.0
    assert first["6"] > 30 * 24
    service_wide = [d["HoursSinceLastCompleteDay"][0] for d in found if "brand_id" not in d]
    assert service_wide[:2] == [54.0, first["6"]]
    assert {d["time_basis"] for d in found if "brand_id" in d} == {"utc"}


def commit(store: MemoryStore, run_id: str, day: date, visits: int) -> Any:
    """`record_commit` of one run of brand 1 and one day: `page(visits)`'s sums."""
    from exporter.lake.commit import record_commit  # noqa: PLC0415
    from exporter.run.counters import Counters  # noqa: PLC0415
    from exporter.run.records import RunPlan, StagedObject, StepRecord  # noqa: PLC0415

    plan = RunPlan(run_id, 1, day, day, "utc", "on-demand", "t", windows=())
    staged = StagedObject(day.isoformat(), "k", 2, 1, sums_of(page(visits)))
    step = StepRecord(0, 0, "a", None, (staged,), Counters(), "t")
    return record_commit(store, "st", plan, [step], WHOLE, committed_at=run_id)


def test_a_commit_decodes_only_its_own_days_of_the_month() -> None:
    """The month's other days are written back as the text they were read as: a
    nightly commit does not parse and rebuild every location of 30 days."""
    store = MemoryStore()
    assert commit(store, OLD, DAY, 5) is None
    key = lake.month_key("st", 1, "utc", "2023-06", "sums")
    first = json.loads(store.get(key) or b"")["days"]["2023-06-01"]
    # Another day, spelled as no encoder of ours would write it, and a member this
    # version does not know: both must come back byte for byte.
    other = b'{ "runs": ["x"],  "locations": {"9": [1, 1, 1, 1, 0]}, "seq": 7 }'
    store.put(
        key,
        b'{"v":1,"note":{"kept": true},"days":{"2023-06-01":%s,"2023-06-02":%s}}'
        % (json.dumps(first).encode(), other),
    )
    assert commit(store, NEW, DAY, 9) == {"days": {"2023-06-01": {"locations": 1, "visits": 4}}}
    written = store.get(key) or b""
    assert b'"2023-06-02":' + other in written and b'"note":{"kept": true}' in written
    doc = json.loads(written)
    assert doc["days"]["2023-06-01"]["runs"] == [NEW] and doc["days"]["2023-06-01"]["seq"] == 2
    calendar = lake.read_days(store, "st", 1, "utc", (DAY, DAY))
    assert calendar["2023-06-01"]["runId"] == NEW and calendar["2023-06-01"]["seq"] == 2


def test_a_month_object_that_is_not_a_json_object_fails_the_update_clearly() -> None:
    store = MemoryStore()
    key = lake.month_key("st", 1, "utc", "2023-06", "sums")
    store.put(key, b"[1, 2]")
    with pytest.raises(json_codec.JSONDecodeError, match="object"):
        commit(store, NEW, DAY, 5)


def test_two_commits_of_one_month_side_by_side_both_land() -> None:
    """The second writer's conditional write fails on the first's, reads again, and
    adds its days: nothing is lost, and its changes are counted on the fresh read."""

    class Racing(MemoryStore):
        raced = False

        def put_if_absent(self, key: str, body: bytes, content_type: str = "") -> bool:
            if not self.raced and "/sums/" in key:
                self.raced = True  # another run commits the month first
                commit(self, OLD, date(2023, 6, 2), 5)
            return super().put_if_absent(key, body)

    store = Racing()
    assert commit(store, NEW, DAY, 5) is None  # first export of June 1
    days = lake.read_days(store, "st", 1, "utc", (DAY, date(2023, 6, 30)))
    assert {dt: r["runId"] for dt, r in days.items()} == {"2023-06-01": NEW, "2023-06-02": OLD}
    assert commit(store, NEWER, DAY, 9) == {"days": {"2023-06-01": {"locations": 1, "visits": 4}}}
