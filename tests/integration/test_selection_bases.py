"""Selections in both time bases, and what a selection rerun replaces over existing data.

End to end: the handler, moto and the fake API over real HTTP; the table read back with
DuckDB. Expectations come from the fake's deterministic data in the basis the run asked
for (`expected`, built on `local.fake_analytiks`), never from the exporter. What a rerun
replaces is docs/contracts.md, "S3 layout": the location rows of each id it asked for
that the API did not refuse (answered, or silently left out: then its older rows go);
a refused id keeps its rows; zone rows are replaced only by a zone run of that zone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from local.contract import METRIC_COLUMN
from local.fake_analytiks import is_dark, location_ids, reference_number, zone_id
from local.fake_analytiks.batch import Batches
from tests.integration.conftest import Lab, expected
from tests.integration.test_selections import (
    BRAND,
    FIRST,
    HOURS,
    LAST,
    OTHER,
    RANGE,
    by_key,
    note,
    sel_lab,
    table_rows,
)

__all__ = ["sel_lab"]

LIT = [loc for loc in location_ids(BRAND, 120) if not is_dark(loc)]  # they report data
Key = tuple[int, str | None, str]


def truth(lab: Lab, basis: str, locations: list[int]) -> dict[tuple[int, str], dict[str, int]]:
    wanted = set(locations)
    rows = expected(lab.api, BRAND, FIRST, LAST, basis)
    return {k: v for k, v in rows.items() if k[0] in wanted}


def check(
    rows: Mapping[Key, dict[str, Any]],
    want: Mapping[tuple[int, str], Mapping[str, int]],
    basis: str,
    *,
    zone: str | None = None,
    zeros: bool = False,
) -> None:
    """The rows of `zone` (None: location rows) are exactly `want`, in `basis`."""
    mine = {(k[0], k[2]): r for k, r in rows.items() if k[1] == zone}
    missing, unexpected = sorted(set(want) - set(mine)), sorted(set(mine) - set(want))
    assert not missing and not unexpected, f"missing {missing[:3]}, unexpected {unexpected[:3]}"
    for key, values in want.items():
        row = mine[key]
        assert (row["time_basis"], row["utc_offset"]) == (basis, None), key
        for api_name, column in METRIC_COLUMN.items():
            assert row[column] == values.get(api_name, 0 if zeros else None), (key, column)


def event(basis: str, **selector: Any) -> dict[str, Any]:
    return {"brandId": BRAND, **RANGE, "timeBasis": basis, **selector}


BASES = ["utc", "local"]


@pytest.mark.parametrize("basis", BASES)
def test_v1_locations_in_the_runs_basis(sel_lab: Lab, basis: str) -> None:
    chosen = LIT[:3]
    sel_lab.run(event(basis, locations=chosen))
    check(by_key(table_rows(sel_lab)), truth(sel_lab, basis, chosen), basis)
    assert note(sel_lab)["timeBasis"] == basis


@pytest.mark.parametrize("basis", BASES)
def test_v2_in_the_runs_basis_lists_the_refused(sel_lab: Lab, basis: str) -> None:
    theirs = location_ids(OTHER, 3)[0]
    chosen = LIT[3:5]
    sel_lab.run(event(basis, locations=[*chosen, theirs], skipUnauthorized=True))
    check(by_key(table_rows(sel_lab)), truth(sel_lab, basis, chosen), basis)
    assert note(sel_lab)["refused"] == {"count": 1, "ids": [theirs]}


@pytest.mark.parametrize("basis", BASES)
def test_v4_every_bucket_of_the_runs_basis(sel_lab: Lab, basis: str) -> None:
    chosen = LIT[5:7]
    sel_lab.run(event(basis, locations=chosen, zeroFill=True))
    rows = by_key(table_rows(sel_lab))
    assert len(rows) == len(chosen) * HOURS
    check(rows, {(loc, ts): truth(sel_lab, basis, chosen).get((loc, ts), {})
                 for loc, _, ts in rows}, basis, zeros=True)  # fmt: skip


@pytest.mark.parametrize("basis", BASES)
def test_reference_numbers_in_the_runs_basis(sel_lab: Lab, basis: str) -> None:
    chosen = LIT[7:9]
    sel_lab.run(event(basis, referenceNumbers=[reference_number(loc) for loc in chosen]))
    rows = by_key(table_rows(sel_lab))
    check(rows, truth(sel_lab, basis, chosen), basis)
    assert {r["reference_number"] for r in rows.values()} == {reference_number(c) for c in chosen}


@pytest.mark.parametrize("basis", BASES)
def test_a_zone_in_the_runs_basis(sel_lab: Lab, basis: str) -> None:
    loc = LIT[9]
    sel_lab.run(event(basis, zoneId=zone_id(loc)))
    check(by_key(table_rows(sel_lab)), truth(sel_lab, basis, [loc]), basis, zone=zone_id(loc))


def owners(lab: Lab) -> dict[tuple[int, str | None], set[str]]:
    """(location, zone) -> the runs whose rows it has in the table."""
    found: dict[tuple[int, str | None], set[str]] = {}
    for (loc, zone, _), row in by_key(table_rows(lab)).items():
        found.setdefault((loc, zone), set()).add(row["run_id"])
    return found


def leave_out(monkeypatch: pytest.MonkeyPatch, location: int) -> None:
    """From now on the fake answers batches without `location`: neither a record nor a
    refusal (as an API that lost a store's data might)."""
    resolve = Batches._resolve

    def without(self: Batches, *args: Any) -> tuple[list[Any], list[int | str]]:
        items, failures = resolve(self, *args)
        return [item for item in items if item[0] != location], failures

    monkeypatch.setattr(Batches, "_resolve", without)


@pytest.mark.parametrize("basis", BASES)
def test_a_v2_rerun_replaces_the_answered_and_left_out_ids_and_keeps_the_refused(
    sel_lab: Lab, monkeypatch: pytest.MonkeyPatch, basis: str
) -> None:
    answered, refused, left_out = LIT[0], LIT[-1], LIT[1]
    zone = zone_id(answered)
    everyone = [loc for loc in location_ids(BRAND, 120) if loc != left_out]
    want = truth(sel_lab, basis, everyone)  # before the fake forgets any store
    first = sel_lab.run(event(basis))["runs"][0]["runId"]
    zone_run = sel_lab.run(event(basis, zoneId=zone))["runs"][0]["runId"]
    sel_lab.api.brands[BRAND] = refused % 100_000 - 1  # the brand lost its last stores
    leave_out(monkeypatch, left_out)
    chosen = [answered, refused, left_out]
    rerun = sel_lab.run(event(basis, locations=chosen, skipUnauthorized=True))["runs"][0]["runId"]
    assert sel_lab.notifications()[-1]["body"]["refused"] == {"count": 1, "ids": [refused]}
    table = owners(sel_lab)
    assert table[(answered, None)] == {rerun}
    assert table[(refused, None)] == {first}  # refused: not replaced
    assert (left_out, None) not in table  # left out: its older rows went, it has none now
    assert table[(answered, zone)] == {zone_run}  # zone rows beside them untouched
    others = {k: v for k, v in table.items() if k[0] not in chosen}
    assert others and all(v == {first} for v in others.values())
    rows = by_key(table_rows(sel_lab))
    check(rows, want, basis)
    check(rows, truth(sel_lab, basis, [answered]), basis, zone=zone)


def test_a_zone_rerun_replaces_only_its_zone_rows(sel_lab: Lab) -> None:
    loc, other = LIT[2], LIT[3]
    first = sel_lab.run(event("utc"))["runs"][0]["runId"]
    older_zone = sel_lab.run(event("utc", zoneId=zone_id(other)))["runs"][0]["runId"]
    sel_lab.run(event("utc", zoneId=zone_id(loc)))
    newer_zone = sel_lab.run(event("utc", zoneId=zone_id(loc)))["runs"][0]["runId"]
    table = owners(sel_lab)
    assert table[(loc, zone_id(loc))] == {newer_zone}
    assert table[(other, zone_id(other))] == {older_zone}
    assert table[(loc, None)] == {first}
