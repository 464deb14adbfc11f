"""What committing a run replaces: coverage, row removal, and newest-wins in any order."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from random import Random
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from exporter import json_codec
from exporter.config import Settings
from exporter.events import RunRequest
from exporter.run.context import Invocation
from exporter.run.coverage import Coverage, identity, remove_rows
from exporter.run.messages import handle_message
from exporter.run.records import Task
from exporter.run.start import enqueue_windows, plan_runs
from exporter.run.step import run_step
from exporter.selection import Selection
from tests.fakes import MemoryStore, ScriptedPages, memory_context

DAY = date(2023, 6, 1)
T0 = datetime(2023, 7, 1, tzinfo=UTC)


def gz(*rows: dict[str, Any]) -> bytes:
    return gzip.compress(b"".join(json.dumps(r).encode() + b"\n" for r in rows))


def rows_of(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in gzip.decompress(body).splitlines()]


def test_location_coverage_leaves_zone_rows_and_other_days_alone() -> None:
    cover = Coverage("locations", ranges=((DAY, DAY, frozenset({1, 2})),))
    covered = cover.covers("2023-06-01")
    assert covered is not None
    assert covered((1, None))
    assert not covered((1, "z"))
    assert not covered((3, None))
    assert cover.covers("2023-06-02") is None
    assert Coverage.from_json(cover.to_json()) == cover


def test_removing_rows_rewrites_or_deletes_the_object() -> None:
    store = MemoryStore()
    store.put("k", gz({"location_id": 1}, {"location_id": 2}, {"location_id": 1, "zone_id": "z"}))
    cover = Coverage(
        "locations",
        ranges=(
            (
                DAY,
                DAY,
                frozenset({1}),
            ),
        ),
    )
    assert remove_rows(store, "k", cover.covers("2023-06-01")) == 1  # type: ignore[arg-type]
    assert rows_of(store.objects["k"]) == [{"location_id": 2}, {"location_id": 1, "zone_id": "z"}]
    zone = Coverage("zone", zone="z").covers("2023-06-01")
    assert zone is not None
    remove_rows(store, "k", zone)
    everything = Coverage(
        "locations",
        ranges=(
            (
                DAY,
                DAY,
                frozenset({2}),
            ),
        ),
    ).covers("2023-06-01")
    assert everything is not None
    assert remove_rows(store, "k", everything) == 1
    assert "k" not in store.objects  # nothing left: the object goes


ZONE = "11111111-2222-3333-4444-555555555555"


@settings(max_examples=200, deadline=None)
@given(
    location=st.integers(0, 2**53),
    reference=st.none() | st.text(max_size=20),
    zone=st.none() | st.just(ZONE) | st.text(max_size=12),
    after=st.text(max_size=20),
)
def test_a_lines_identity_read_off_its_head_is_what_parsing_it_says(
    location: int, reference: str | None, zone: str | None, after: str
) -> None:
    # Lines as rows.py writes them (compact, columns in order), with any text in
    # the strings: quotes, backslashes and key-like text must not fool the head.
    row: dict[str, Any] = {"location_id": location}
    if reference is not None:
        row["reference_number"] = reference
    if zone is not None:
        row["zone_id"] = zone
    row.update(ts="2023-06-01 00:00:00", time_basis="utc", visits=1, run_id=after)
    line = json_codec.dumps(row) + b"\n"
    assert identity(line) == (location, zone)


def test_lines_in_another_shape_are_parsed() -> None:
    assert identity(b'{"location_id": 7, "zone_id": "Z", "ts": "x"}\n') == (7, "Z")
    assert identity(b'{"ts":"x","location_id":8}\n') == (8, None)
    assert identity(b'{"location_id":9,"zone_id":"ABC","ts":"x"}\n') == (9, "ABC")


def test_an_older_object_is_replaced_whole_only_when_all_it_can_hold_is_covered() -> None:
    def locs(*ranges: tuple[date, date, set[int]]) -> Coverage:
        return Coverage("locations", ranges=tuple((a, b, frozenset(ids)) for a, b, ids in ranges))

    day2 = DAY + timedelta(days=1)
    mine = locs((DAY, DAY, {1, 2, 3}), (day2, day2, {1}))
    assert mine.replaces_all_of(locs((DAY, DAY, {1, 2})), "2023-06-01")
    # Its rows of a neighbour day can land on this one: all its ids count.
    assert not mine.replaces_all_of(locs((DAY, DAY, {1}), (day2, day2, {4})), "2023-06-01")
    assert not mine.replaces_all_of(locs((DAY, DAY, {1, 2})), "2023-06-02")
    assert not mine.replaces_all_of(Coverage("all"), "2023-06-01")
    assert not mine.replaces_all_of(Coverage("zone", zone=ZONE), "2023-06-01")
    zone = Coverage("zone", zone=ZONE)
    assert zone.replaces_all_of(Coverage("zone", zone=ZONE), "2023-06-01")
    assert not zone.replaces_all_of(Coverage("zone", zone="other"), "2023-06-01")
    assert not zone.replaces_all_of(locs((DAY, DAY, {1})), "2023-06-01")
    assert Coverage("all").replaces_all_of(zone, "2023-06-01")


class RacingStore(MemoryStore):
    """Another run rewrites the object between our read and our conditional write."""

    def __init__(self) -> None:
        super().__init__()
        self.raced = False

    def put_if_match(self, key: str, body: bytes, etag: str) -> bool:
        if not self.raced:
            self.raced = True
            current = rows_of(self.objects[key])
            self.objects[key] = gz(*[r for r in current if r["location_id"] != 3])
        return super().put_if_match(key, body, etag)


def test_a_concurrent_rewrite_is_not_undone() -> None:
    store = RacingStore()
    store.put("k", gz(*({"location_id": i} for i in (1, 2, 3))))
    covered = Coverage(
        "locations",
        ranges=(
            (
                DAY,
                DAY,
                frozenset({1}),
            ),
        ),
    ).covers("2023-06-01")
    assert covered is not None
    remove_rows(store, "k", covered)
    assert store.raced
    assert rows_of(store.objects["k"]) == [{"location_id": 2}]  # both removals hold


LOCATIONS = 5


def table_owners(store: MemoryStore) -> dict[int, str]:
    """The run each location's row of the table came from (one row per location)."""
    table = [
        row
        for key, body in store.objects.items()
        if key.startswith("wifi/metrics/")
        for row in rows_of(body)
    ]
    owners = {row["location_id"]: row["run_id"] for row in table}
    assert len(owners) == len(table), "a location's row is in the table twice"
    return owners


@settings(max_examples=40, deadline=None)
@given(
    runs=st.lists(
        st.none() | st.sets(st.integers(1, LOCATIONS), min_size=1), min_size=1, max_size=4
    ),
    order=st.randoms(use_true_random=False),
)
def test_newest_run_wins_per_location_whatever_the_commit_order(
    runs: list[set[int] | None], order: Any
) -> None:
    config = Settings(secret_id="s", bucket_name="b", topic_arn="t", queue_url="q")
    memory = memory_context(config, ScriptedPages(locations=LOCATIONS), lambda: T0)
    plans = []
    for n, chosen in enumerate(runs):
        selection = None if chosen is None else Selection("locations", tuple(sorted(chosen)), "v1")
        at = T0 + timedelta(seconds=n)  # run ids sort by start: run n is older than n+1
        request = RunRequest("on-demand", (5,), DAY, DAY, "utc", at, f"r{n}", selection)
        (plan,) = plan_runs(memory.ctx, request)
        enqueue_windows(memory.ctx, plan)
        plans.append(plan)
    messages = [Task.from_body(b) for b in memory.queue.bodies]
    memory.queue.bodies.clear()
    order.shuffle(messages)  # each run is one message: its step commits it
    for task in messages:
        run_step(memory.ctx, task, Invocation("m", lambda: 600_000))
    owners = table_owners(memory.store)
    newest: dict[int, str] = {}
    for plan, chosen in zip(plans, runs, strict=True):
        for loc in range(1, LOCATIONS + 1) if chosen is None else chosen:
            newest[loc] = plan.run_id
    assert owners == newest


class ChoosyPages(ScriptedPages):
    """v1/v2 as ScriptedPages, but the current run's `refused` ids are refused and its
    `omitted` ones silently left out of the answer (neither answered nor refused)."""

    refused: frozenset[int] = frozenset()
    omitted: frozenset[int] = frozenset()

    def fetch_batch(
        self, variant: str, selector: dict[str, Any], *args: Any, **kwargs: Any
    ) -> tuple[list[Any], tuple[int | str, ...]]:
        records, _ = super().fetch_batch(variant, selector, *args, **kwargs)
        answered = [r for r in records if r["locationId"] not in self.refused | self.omitted]
        return answered, tuple(i for i in selector["locations"] if i in self.refused)


# A v2 run: the ids it asks for, those the API refuses, those it leaves out.
V2Run = tuple[frozenset[int], frozenset[int], frozenset[int]]
NO_ROW = "(no row)"


@st.composite
def v2_runs(draw: st.DrawFn) -> V2Run:
    chosen = draw(st.sets(st.integers(1, LOCATIONS), min_size=1))
    refused = draw(st.sets(st.sampled_from(sorted(chosen))))
    rest = sorted(chosen - refused)
    # Any of the rest may be left out, all of them too: a run with no row of the day.
    omitted = draw(st.sets(st.sampled_from(rest))) if rest else set()
    return frozenset(chosen), frozenset(refused), frozenset(omitted)


def commit_in_order(
    runs: list[V2Run | None], shuffle: Callable[[list[str]], None]
) -> tuple[dict[int, str], dict[int, str]]:
    """Plan `runs` (oldest first; None a whole-brand run, else a v2 selection), deliver
    their messages in the order `shuffle` leaves them: the table's owner of each
    location, and the owner docs/contracts.md ("S3 layout") says it must have: the
    newest run that replaced it, which is every location for a whole-brand run, and
    for a v2 run each id it asked for that the API did not refuse (answered, or left
    out: then it has no row); a run whose every id is refused fails."""
    config = Settings(secret_id="s", bucket_name="b", topic_arn="t", queue_url="q")
    pages = ChoosyPages(locations=LOCATIONS)
    memory = memory_context(config, pages, lambda: T0)
    plans = {}
    for n, drawn in enumerate(runs):
        selection = None if drawn is None else Selection("locations", tuple(sorted(drawn[0])), "v2")
        at = T0 + timedelta(seconds=n)  # run ids sort by start: run n is older than n+1
        request = RunRequest("on-demand", (5,), DAY, DAY, "utc", at, f"r{n}", selection)
        (plan,) = plan_runs(memory.ctx, request)
        enqueue_windows(memory.ctx, plan)
        plans[plan.run_id] = drawn
    bodies = list(memory.queue.bodies)
    memory.queue.bodies.clear()
    shuffle(bodies)  # each run is one message: its step commits it (or fails it)
    for body in bodies:
        drawn = plans[Task.from_body(body).run_id]
        pages.refused, pages.omitted = (drawn[1], drawn[2]) if drawn else (frozenset(),) * 2
        handle_message(memory.ctx, body, 1, Invocation("m", lambda: 600_000))
    owners = table_owners(memory.store)
    newest: dict[int, str] = {}
    for run_id, drawn in plans.items():  # oldest first
        if drawn is None:
            newest.update(dict.fromkeys(range(1, LOCATIONS + 1), run_id))
            continue
        chosen, refused, omitted = drawn
        if chosen == refused:
            continue  # failed: commits nothing
        newest.update(dict.fromkeys(chosen - refused - omitted, run_id))
        newest.update(dict.fromkeys(omitted, NO_ROW))
    return owners, {loc: run for loc, run in newest.items() if run != NO_ROW}


@settings(max_examples=60)
@given(
    runs=st.lists(st.none() | v2_runs(), min_size=1, max_size=4),
    order=st.randoms(use_true_random=False),
)
# Always tried first, whatever the draw: a refused id and a left-out one over older rows.
@example(runs=[None, (frozenset({1, 2, 3}), frozenset({1}), frozenset({2}))], order=Random(0))
def test_newest_run_wins_per_location_with_refusals_and_silent_omissions(
    runs: list[V2Run | None], order: Any
) -> None:
    owners, newest = commit_in_order(runs, order.shuffle)
    assert owners == newest


def test_a_run_with_one_id_refused_and_one_left_out_succeeds_and_replaces_the_second() -> None:
    # Not every id was refused: the run succeeds, and the id the API left out loses
    # its older rows (it has none now); the refused one keeps them.
    v2: V2Run = (frozenset({1, 2}), frozenset({1}), frozenset({2}))
    owners, newest = commit_in_order([None, v2], lambda bodies: None)
    assert owners == newest and 1 in owners and 2 not in owners


def test_a_newer_run_without_rows_still_wins_committed_first() -> None:
    # The newer v2 run answered no row of the day (its one id left out): it leaves a
    # zero-row object in the partition, which the older run committing after it
    # finds, so location 1 keeps no row.
    v2: V2Run = (frozenset({1}), frozenset(), frozenset({1}))
    owners, newest = commit_in_order([None, v2], lambda bodies: bodies.reverse())
    assert owners == newest and 1 not in owners


def test_a_run_emptied_by_a_newer_one_keeps_its_place_for_what_it_still_replaces() -> None:
    # The draw CI found: run 1 answers location 2 and leaves out 1; run 2 replaces 2
    # (refusing 1), which empties run 1's object; the whole-brand run 0 commits last
    # and must still find run 1's place for location 1, which has no row.
    runs: list[V2Run | None] = [
        None,
        (frozenset({1, 2}), frozenset(), frozenset({1})),
        (frozenset({1, 2, 3}), frozenset({1}), frozenset()),
    ]
    owners, newest = commit_in_order(runs, lambda bodies: bodies.reverse())
    assert owners == newest and 1 not in owners


def test_a_newer_whole_brand_run_without_rows_on_a_day_still_wins_committed_first() -> None:
    # The newer whole-brand run has no row on its second day (ScriptedPages keys every
    # row to a window's first day); the older run of just that day commits after it
    # and must find the newer one's zero-row object there, so the day stays empty.
    config = Settings(secret_id="s", bucket_name="b", topic_arn="t", queue_url="q")
    memory = memory_context(config, ScriptedPages(locations=2), lambda: T0)
    second = DAY + timedelta(days=1)
    spans = [(second, second), (DAY, second)]  # oldest first
    for n, (first, last) in enumerate(spans):
        request = RunRequest(
            "on-demand", (5,), first, last, "utc", T0 + timedelta(seconds=n), f"r{n}"
        )
        for plan in plan_runs(memory.ctx, request):
            enqueue_windows(memory.ctx, plan)
    bodies = list(reversed(memory.queue.bodies))  # the newer run's windows commit first
    memory.queue.bodies.clear()
    for body in bodies:
        handle_message(memory.ctx, body, 1, Invocation("m", lambda: 600_000))
    while memory.queue.bodies:  # a run of several windows commits with its last one
        handle_message(memory.ctx, memory.queue.bodies.pop(0), 1, Invocation("m", lambda: 600_000))
    day_two = [
        body for key, body in memory.store.objects.items() if f"/dt={second.isoformat()}/" in key
    ]
    assert day_two, "the newer run left no object on its empty day"
    assert [row for body in day_two for row in rows_of(body)] == []
