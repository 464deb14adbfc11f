"""Which rows of a partition a committed run replaces: its coverage, and filtering by it.

A whole-brand run covers whole days. A selection run covers, on each of its
days, only the rows of the locations it exported (location rows, not zone
rows) or of the zone it exported (docs/contracts.md, "S3 layout"). Committing
removes covered rows from older runs' objects, and removes newer runs'
covered rows from the run's own objects, so that in every partition the
newest run wins per location (or zone) and day, whatever order runs commit in.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Final, Literal

from exporter import json_codec
from exporter.gzip_writer import GZIP_LEVEL
from exporter.ports import ObjectStore
from exporter.run.records import RunPlan, StepRecord

_REWRITE_ATTEMPTS: Final = 10

# A table object with no rows (one empty gzip member): what a run leaves in a
# partition where it still replaces rows but holds none, so that an older run
# committing later finds it there (docs/decisions.md, "A run with no rows keeps
# its place"). Athena, DuckDB and the Parquet rebuild read it as zero rows.
NO_ROWS: Final = gzip.compress(b"", compresslevel=GZIP_LEVEL, mtime=0)


class Unreadable(Exception):
    """A table object that is not gzip-compressed JSON Lines: no retry would read it."""


# A row's identity for coverage: (location_id, zone_id).
Identity = tuple[Any, Any]
Covered = Callable[[Identity], bool]

# The head of every line rows.py writes: location, optional reference and zone, then ts.
# A JSON string can hold `"` only escaped, so these keys cannot be matched inside a value.
_HEAD: Final = re.compile(
    rb'\{"location_id":(\d+)(?:,"reference_number":"(?:[^"\\]|\\.)*")?'
    rb'(?:,"zone_id":"([0-9a-f-]*)")?,"ts":"'
)


@dataclass(frozen=True, slots=True)
class Coverage:
    kind: Literal["all", "locations", "zone"]
    zone: str | None = None
    # locations: (first day, last day, location ids) ranges; days outside them: nothing.
    ranges: tuple[tuple[date, date, frozenset[int]], ...] = field(default=())

    def covers(self, dt: str) -> Covered | None:
        """A predicate for the rows of day `dt` this run replaces; None if it covers none."""
        if self.kind == "all":
            return _everything
        if self.kind == "zone":
            zone = self.zone
            return lambda row: row[1] == zone
        ids = self._ids_on(dt)
        if not ids:
            return None
        return lambda row: row[1] is None and row[0] in ids

    def _ids_on(self, dt: str) -> frozenset[int]:
        day = date.fromisoformat(dt)
        return frozenset().union(*(ids for first, last, ids in self.ranges if first <= day <= last))

    def replaces_all_of(self, older: Coverage, dt: str) -> bool:
        """Whether this run, on day `dt`, replaces every row `older`'s objects can hold.

        An object holds only rows of what its run covered; all of the older run's
        ids count, not just that day's (conservative: an object's name does not say
        which window's ids it holds). Then the object can go unread.
        """
        if self.kind == "all":
            return True
        if older.kind == "zone":
            return self.kind == "zone" and self.zone == older.zone
        if older.kind == "locations" and self.kind == "locations":
            theirs = frozenset().union(*(ids for _, _, ids in older.ranges))
            return theirs <= self._ids_on(dt)
        return False

    def dominates(self, older: Coverage, dt: str) -> bool:
        """Whether this run replaces, on day `dt`, everything `older` replaces there:
        then `older` needs no object of that day to keep its place."""
        if self.kind == "all":
            return True
        if older.kind == "all":
            return False
        if older.kind == "zone":
            return self.kind == "zone" and self.zone == older.zone
        return self.kind == "locations" and older._ids_on(dt) <= self._ids_on(dt)

    def to_json(self) -> bytes:
        return json_codec.dumps(
            {
                "kind": self.kind,
                "zone": self.zone,
                "ranges": [
                    {"first": f.isoformat(), "last": last.isoformat(), "ids": sorted(ids)}
                    for f, last, ids in self.ranges
                ],
            }
        )

    @classmethod
    def from_json(cls, raw: bytes) -> Coverage:
        doc = json_codec.loads(raw)
        ranges = tuple(
            (date.fromisoformat(r["first"]), date.fromisoformat(r["last"]), frozenset(r["ids"]))
            for r in doc.get("ranges", ())
        )
        return cls(doc["kind"], doc.get("zone"), ranges)


WHOLE: Final = Coverage("all")


def _everything(row: Identity) -> bool:
    return True


def identity(line: bytes) -> Identity:
    """(location_id, zone_id) of a table line: read off its head, parsed only if need be."""
    head = _HEAD.match(line)
    if head is not None:
        zone = head.group(2)
        return int(head.group(1)), None if zone is None else zone.decode()
    row = json_codec.loads(line)  # not the shape rows.py writes: read it properly
    return row.get("location_id"), row.get("zone_id")


def coverage_of(plan: RunPlan, records: Iterable[StepRecord]) -> Coverage:
    """What a finished run replaces, from its plan and its recorded steps."""
    selection = plan.selection
    if selection is None:
        return WHOLE
    if selection.zone_id is not None:
        return Coverage("zone", zone=selection.zone_id)
    # Per window of days: the ids its parts exported. Requested locations the
    # API did not refuse are covered even without rows (their older rows go);
    # a reference number is covered through the location the API answered with.
    answered: dict[int, set[int]] = {}
    refused: dict[int, set[int | str]] = {}
    for record in records:
        answered.setdefault(record.window, set()).update(record.locations)
        refused.setdefault(record.window, set()).update(record.refused)
    by_days: dict[tuple[date, date], set[int]] = {}
    for index, ids in answered.items():
        window = plan.windows[index]
        covered = by_days.setdefault((window.first_day, window.last_day), set())
        covered.update(ids)
        if selection.kind == "locations":
            no = refused[index]
            covered.update(int(i) for i in selection.part_ids(window.part) if i not in no)
    ranges: list[tuple[date, date, frozenset[int]]] = []
    for (first, last), ids in sorted(by_days.items()):
        if ranges and ranges[-1][2] == ids and ranges[-1][1] + timedelta(days=1) == first:
            ranges[-1] = (ranges[-1][0], last, ranges[-1][2])  # merge equal neighbours
        else:
            ranges.append((first, last, frozenset(ids)))
    return Coverage("locations", ranges=tuple(ranges))


def remove_rows(store: ObjectStore, key: str, covered: Covered, *, keep_empty: bool = False) -> int:
    """Rewrite table object `key` without the covered rows. If none is left it is
    deleted, or, with `keep_empty` (its run still replaces rows of that day that the
    remover does not), rewritten as `NO_ROWS`.

    Each rewrite is conditional on the version read (S3 `If-Match`), so two runs
    filtering the same object concurrently cannot undo each other's removals;
    the loser reads again. Removing only ever shrinks an object, so deleting one
    whose rows are all covered is safe whatever another writer did meanwhile.
    Returns the number of rows removed.
    """
    if covered is _everything:
        store.delete([key])
        return 0
    for _ in range(_REWRITE_ATTEMPTS):
        found = store.get_versioned(key)
        if found is None:
            return 0
        body, etag = found
        try:
            lines = gzip.decompress(body).splitlines(keepends=True)
            kept = [line for line in lines if not covered(identity(line))]
        except (OSError, EOFError, zlib.error, ValueError, AttributeError) as exc:
            raise Unreadable(f"{key}: {type(exc).__name__}") from None
        removed = len(lines) - len(kept)
        if removed == 0:
            return 0
        if not kept and not keep_empty:
            store.delete([key])
            return removed
        packed = (
            gzip.compress(b"".join(kept), compresslevel=GZIP_LEVEL, mtime=0) if kept else NO_ROWS
        )
        if store.put_if_match(key, packed, etag):
            return removed
    raise RuntimeError(f"{key}: rewritten concurrently {_REWRITE_ATTEMPTS} times; retrying later")
