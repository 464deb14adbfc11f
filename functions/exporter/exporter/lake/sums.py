"""Per-location numbers of a day, and what a run that replaces them changes.

Counted while rows are shaped (`rows.add_tallies`): for each location (zone rows:
`<id>@<zone>`) and day, [visits, rows, hours bitmask, digest]. They ride in
the step records to the commit, which keeps them per day in the lake
coverage (`exporter.lake.records`). A later run that replaces the day compares
its own numbers with the kept ones: no read of the table, old or new.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Sums = dict[str, list[int]]  # location -> [visits, rows, hours, digest]
VISITS, ROWS, HOURS, DIGEST = 0, 1, 2, 3
# Digests stay below 2**48: exact in JSON readers that use doubles.
DIGEST_MASK = (1 << 48) - 1


def add_sums(into: dict[str, Sums], more: Mapping[str, Mapping[str, list[int]]]) -> None:
    """Add per-day sums (pages, steps and windows add up: a location's day may span them)."""
    for dt, day in more.items():
        mine = into.setdefault(dt, {})
        for ident, entry in day.items():
            have = mine.get(ident)
            if have is None:
                mine[ident] = list(entry)
            else:
                have[VISITS] += entry[VISITS]
                have[ROWS] += entry[ROWS]
                have[HOURS] |= entry[HOURS]
                have[DIGEST] = (have[DIGEST] + entry[DIGEST]) & DIGEST_MASK


def identity_of(ident: str) -> tuple[int, str | None]:
    """(location_id, zone_id) of a sums key, as run.coverage predicates take it."""
    location, _, zone = ident.partition("@")
    return int(location), zone or None


@dataclass(slots=True)
class DaySums:
    """A day's numbers as the lake keeps them: per location, and which run wrote each.

    `runs` holds the run ids once; an entry is [visits, rows, hours, digest, run index].
    `seq` counts the updates, so the small calendar record derived from it can
    be written in order without reading this again. `last`: the last update's run
    and what it changed ([run id, locations, visits], or just [run id]), so that a
    commit repeated after a crash reports the change it made the first time.
    """

    runs: list[str] = field(default_factory=list)
    locations: dict[str, list[int]] = field(default_factory=dict)
    seq: int = 0
    last: list[Any] = field(default_factory=list)

    def owner(self, ident: str) -> str:
        return self.runs[self.locations[ident][4]]

    def to_dict(self) -> dict[str, Any]:
        return {"runs": self.runs, "locations": self.locations, "seq": self.seq, "last": self.last}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> DaySums:
        locations = {k: list(v) for k, v in doc["locations"].items()}
        return cls(list(doc["runs"]), locations, doc["seq"], list(doc.get("last", ())))


@dataclass(frozen=True, slots=True)
class Change:
    locations: int
    visits: int


def replace_day(
    old: DaySums | None,
    run_id: str,
    new: Sums,
    covered: Callable[[tuple[Any, Any]], bool] | None,
) -> tuple[DaySums, Change | None]:
    """The day after `run_id` committed `new` over `old`, and what that changed.

    The newest run wins per location, as in the table (run.commit): a location
    an older run wrote and this run covers takes this run's numbers (or goes,
    if this run has no rows for it); one a newer run wrote stays. The change
    is None when the run replaced nothing that was there (no older rows it
    covers: a first export, or a selection of locations without rows that day).
    """
    if old is not None and old.last and old.last[0] == run_id:
        # This run's commit, repeated (its first holder died before the manifest).
        return old, Change(*old.last[1:]) if len(old.last) == 3 else None
    day = DaySums() if old is None else DaySums.from_dict(old.to_dict())
    day.seq += 1
    differ: set[int] = set()
    visits = 0
    replaced: set[str] = set()
    if covered is not None and old is not None:
        replaced = {i for i in old.locations if covered(identity_of(i))}
    compared = bool(replaced)
    touched = set(new) | replaced
    for ident in touched:
        before = day.locations.get(ident)
        if before is not None and day.runs[before[4]] > run_id:
            continue  # a newer run wrote this location: it stays
        after = new.get(ident)
        if after is None:
            day.locations.pop(ident, None)
        else:
            day.locations[ident] = [*after[:4], _run_index(day, run_id)]
        if compared and (
            (before is None) != (after is None)
            or (before is not None and after is not None and before[:4] != after[:4])
        ):
            differ.add(identity_of(ident)[0])
            visits += (after[VISITS] if after else 0) - (before[VISITS] if before else 0)
    _drop_unused_runs(day)
    if not compared:
        day.last = [run_id]
        return day, None
    day.last = [run_id, len(differ), visits]
    return day, Change(len(differ), visits)


def _run_index(day: DaySums, run_id: str) -> int:
    if run_id not in day.runs:
        day.runs.append(run_id)
    return day.runs.index(run_id)


def _drop_unused_runs(day: DaySums) -> None:
    used = sorted({entry[4] for entry in day.locations.values()})
    if used == list(range(len(day.runs))):
        return
    renumber = {old: new for new, old in enumerate(used)}
    day.runs = [day.runs[i] for i in used]
    for entry in day.locations.values():
        entry[4] = renumber[entry[4]]


def day_totals(day: DaySums) -> dict[str, Any]:
    """Rows, locations with rows and hours covered of a day."""
    hours = 0
    for entry in day.locations.values():
        hours |= entry[HOURS]
    return {
        "rows": sum(e[ROWS] for e in day.locations.values()),
        "locations": len({identity_of(i)[0] for i, e in day.locations.items() if e[ROWS]}),
        "hours": hours.bit_count(),
    }


def merged_by_day(objects: Iterable[tuple[str, Mapping[str, list[int]]]]) -> dict[str, Sums]:
    """A run's per-day sums from its staged objects' (dt, sums)."""
    out: dict[str, Sums] = {}
    for dt, sums in objects:
        add_sums(out, {dt: sums})
    return out
