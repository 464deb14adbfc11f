"""Location records as the API answers them, and the quirks that reshape them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from local.fake_analytiks.data import (
    Basis,
    grid_minutes,
    local_buckets,
    location_record,
    offset_text,
    time_key,
    utc_offset_minutes,
)
from local.fake_analytiks.protocol import Query

Item = tuple[int, str | None, str | None]  # (location id, reference number, zone id)


@dataclass
class Quirks:
    """Ways the fake departs from the happy reading of its document; all off by
    default and mutable while it runs (pages are cached per setting).

    ``utc_keys_for_local``: local-time requests get the same buckets keyed in UTC
    (``...T08:00:00Z``), as "Again, all dates are UTC" would have it.
    ``local_keys_for_utc``: UTC requests get the same buckets keyed by each
    location's wall-clock time without a suffix (``...T10:00:00``).
    ``offset_keys``: local-time requests get wall-clock keys with the location's
    UTC offset at that instant (``2023-10-29T02:00:00+02:00``); ignored while
    ``utc_keys_for_local`` is on.
    ``zones``: location id -> IANA time zone with daylight saving time (say
    ``Europe/Berlin``); such a location's local day can have 23 or 25 buckets,
    and without ``offset_keys`` the autumn night's two 02:00 buckets share one
    key (the later one wins, as a JSON object keeps one value per key).
    ``record_fields``: unknown non-metric fields added to every record (v1-v4),
    ``{location_id}`` in a string value replaced by the record's location id.
    ``zero_values``: v1-v3 records carry zero values too, as v4 does.
    ``restate``: location id -> visits added to each of its non-zero visits
    buckets: the API restating a location's numbers (a rerun's `changes`).
    """

    utc_keys_for_local: bool = False
    local_keys_for_utc: bool = False
    offset_keys: bool = False
    zones: dict[int, str] = field(default_factory=dict)
    record_fields: dict[str, object] = field(default_factory=dict)
    zero_values: bool = False
    restate: dict[int, int] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """Part of every page's cache key: a change of quirks renders pages anew."""
        return repr(
            (
                self.utc_keys_for_local,
                self.local_keys_for_utc,
                self.offset_keys,
                sorted(self.zones.items()),
                sorted(self.record_fields.items()),
                self.zero_values,
                sorted(self.restate.items()),
            )
        )

    def reshapes(self, location_id: int, basis: Basis) -> bool:
        """Whether a location's time keys differ from the plain ones of the basis."""
        if basis == "utc":
            return self.local_keys_for_utc
        return self.utc_keys_for_local or self.offset_keys or location_id in self.zones


class Catalog(Protocol):
    """The server settings answers are made of (read anew on every request)."""

    brands: dict[int, int]
    page_size: int
    bucket_minutes: int
    metrics: tuple[str, ...]
    quirks: Quirks


def render_records(
    catalog: Catalog, items: Iterable[Item], query: Query, zero_fill: bool
) -> list[dict[str, object]]:
    walls = grid_minutes(query.start, query.end, catalog.bucket_minutes)
    keys = [time_key(m, query.basis) for m in walls]
    quirks = catalog.quirks
    records: list[dict[str, object]] = []
    for loc, ref, zone in items:
        utc: list[int] | None = None
        loc_keys = keys
        if quirks.reshapes(loc, query.basis):
            utc, loc_keys = _quirk_keys(catalog, loc, query, walls)
        record = location_record(
            loc,
            catalog.metrics,
            walls,
            loc_keys,
            query.basis,
            zero_fill=zero_fill or quirks.zero_values,
            reference=ref,
            zone=zone,
            utc_minutes=utc,
        )
        visits = record.get("visits")
        if loc in quirks.restate and isinstance(visits, dict):
            record["visits"] = {k: v + quirks.restate[loc] if v else v for k, v in visits.items()}
        _add_fields(record, quirks.record_fields, loc)
        records.append(record)
    return records


def _add_fields(record: dict[str, object], fields: Mapping[str, object], loc: int) -> None:
    for name, value in fields.items():
        if isinstance(value, str):
            record[name] = value.replace("{location_id}", str(loc))
        else:
            record[name] = value


def _quirk_keys(
    catalog: Catalog, location_id: int, query: Query, walls: Sequence[int]
) -> tuple[list[int], list[str]]:
    """A location's UTC bucket starts and their time keys under the quirks."""
    quirks = catalog.quirks
    tz = quirks.zones.get(location_id)
    if query.basis == "utc":  # local_keys_for_utc
        keys = [time_key(u + utc_offset_minutes(location_id, u, tz), "local") for u in walls]
        return list(walls), keys
    buckets = local_buckets(location_id, query.start, query.end, catalog.bucket_minutes, tz)
    if quirks.utc_keys_for_local:
        keys = [time_key(u, "utc") for u, _, _ in buckets]
    elif quirks.offset_keys:
        keys = [time_key(w, "local") + offset_text(off) for _, w, off in buckets]
    else:
        keys = [time_key(w, "local") for _, w, _ in buckets]
    return [u for u, _, _ in buckets], keys
