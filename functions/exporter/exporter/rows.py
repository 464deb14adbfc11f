"""Row shaping: one v3 page of API records -> JSON Lines per `dt` partition.

The row schema is in docs/contracts.md, "Row schema"; what the API may do beyond
its document, and why rows are shaped the way they are, in docs/decisions.md
("Rows and files", "Values Athena can read", "One dataset per time basis"): a key
in the other basis than the run's fails the run (`BasisMismatch`), and a local
location-day of other than 23-25 buckets is reported (`irregular_days`). The hot
path runs per value in C: a location's record is validated in one msgspec pass
(exporter/location_record.py), its values are looked up by `map` and written as
JSON Lines by msgspec, a day at a time (`RowShaper._shape_columns`); only a
location with unknown metrics (the `extra` column) is shaped row by row in
Python (`_shape_rows`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from functools import reduce
from itertools import repeat
from operator import attrgetter, itemgetter, or_
from typing import Any, Final, NamedTuple

import msgspec

from exporter import location_record
from exporter.config import TimeBasis
from exporter.errors import BasisMismatch, MalformedResponse
from exporter.json_codec import dumps
from exporter.lake.sums import DIGEST_MASK, add_sums
from exporter.location_record import Identity, Metric
from exporter.schema import METRIC_COLUMNS
from exporter.zlibs import crc32

# A known metric's API name -> its text before the value in a line: `,"visits":`.
_PIECE: Final = {api: f',"{column}":' for api, column in METRIC_COLUMNS}
# UTC offsets in use on Earth: -12:00 (Baker Island) to +14:00 (Line Islands).
_MIN_OFFSET_MINUTES: Final = -12 * 60
_MAX_OFFSET_MINUTES: Final = 14 * 60
# Buckets a location's local day has: 24, or 23 / 25 on a daylight-saving night.
_DAY_BUCKETS: Final = frozenset({23, 24, 25})


class _Key(NamedTuple):
    """What a time key gives its rows; the same keys recur on every page."""

    dt: str  # the partition date
    dropped: bool  # a day outside the run's window: the row is counted, not written
    fragment: str  # the line's text from ts to time_basis: `... 08:00:00","time_basis":"utc"`
    end: str  # the line's text after the values: run_id, utc_offset, newline
    ts: str
    offset: str | None  # the UTC offset the key stated (`+02:00`), if any
    hour_bit: int  # its hour's bit in a day's hours bitmask
    fragment_crc: int  # the CRC-32 of `fragment`, which a row's digest continues


@dataclass(slots=True)
class ShapedPage:
    """Lines of one page grouped by partition date, plus what was left out."""

    # dt -> blocks of whole JSON Lines (each line ends in a newline), to be joined.
    lines: dict[str, list[bytes]] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    dropped_rows: int = 0
    location_ids: list[int] = field(default_factory=list)
    # Local days of a location with a bucket count not 23, 24 or 25: (dt, location, count).
    irregular_days: list[tuple[str, int, int]] = field(default_factory=list)
    # Unknown non-metric fields: name -> records that carried it.
    unknown_fields: dict[str, int] = field(default_factory=dict)
    # dt -> location (`123`, zone rows `123@<zone>`) -> [visits, rows, hours, digest]:
    # what the lake coverage records and a rerun's `changes` compare (exporter.lake).
    sums: dict[str, dict[str, list[int]]] = field(default_factory=dict)


class RowShaper:
    """Shapes pages for one run window: its run id, time basis and the days it may write.

    `days` are the window's days. `zero_filled`: the answer holds every bucket of
    a location's days (v4), so a local day short of 23 buckets is irregular too;
    otherwise (v1-v3 omit zero buckets) only a day of more than 25 is.
    """

    def __init__(
        self,
        run_id: str,
        basis: TimeBasis,
        days: Iterable[date],
        *,
        zero_filled: bool = False,
        by_columns: bool = True,
    ) -> None:
        self._basis = basis
        # False: every location is shaped row by row (tests hold the two ways equal).
        self._by_columns = by_columns
        self._days = frozenset(d.isoformat() for d in days)
        self._count_days = basis == "local"
        self._zero_filled = zero_filled
        self._run_id = run_id
        self._end = f',"run_id":{dumps(run_id).decode()}}}\n'
        self._keys: dict[str, _Key] = {}
        # Row identity (ts, basis, offset) -> the first key giving it. Two spellings
        # of one bucket (`...Z` and `...+00:00` in a UTC run) would give two rows of
        # one location the same identity; once seen, records are checked for it.
        self._identities: dict[tuple[str, str], str] = {}
        self._aliased = False

    def _parse_key(self, key: str) -> _Key:
        match = location_record.TIME_KEY_RE.fullmatch(key)
        if not match:
            raise MalformedResponse(f"time bucket key {key[:40]!r} is not an ISO 8601 timestamp")
        day, clock, suffix = match.groups()
        try:
            date.fromisoformat(day)
            hours, minutes, seconds = (int(x) for x in clock.split(":"))
        except ValueError:
            raise MalformedResponse(f"time bucket key {key!r} is not a valid date") from None
        if hours > 23 or minutes > 59 or seconds > 59:
            raise MalformedResponse(f"time bucket key {key!r} is not a valid time")
        basis, offset = self._basis_of(key, suffix)
        if basis != self._basis:
            raise BasisMismatch(_mismatch_error(self._basis, key))
        end = self._end
        if offset is not None:
            end = f'{end[:-2]},"utc_offset":"{offset}"}}\n'
        ts = f"{day} {clock}"
        fragment = f'{ts}","time_basis":"{basis}"'
        parsed = _Key(
            day, day not in self._days, fragment, end, ts, offset, 1 << hours,
            crc32(fragment.encode()),
        )  # fmt: skip
        self._keys[key] = parsed
        if not parsed.dropped and self._identities.setdefault((fragment, end), key) != key:
            self._aliased = True
        return parsed

    def _basis_of(self, key: str, suffix: str | None) -> tuple[TimeBasis, str | None]:
        """The basis a key is in, by its form, and its explicit UTC offset (`+02:00`)."""
        if suffix is None:
            return "local", None
        if suffix == "Z":
            return "utc", None
        sign, hours, minutes = suffix[0], int(suffix[1:3]), int(suffix[-2:])
        total = (hours * 60 + minutes) * (-1 if sign == "-" else 1)
        if minutes > 59 or not _MIN_OFFSET_MINUTES <= total <= _MAX_OFFSET_MINUTES:
            raise MalformedResponse(f"time bucket key {key!r} has no valid UTC offset")
        if total == 0 and self._basis == "utc":
            return "utc", None  # +00:00 spells UTC in a UTC request
        return "local", f"{'-' if total < 0 else '+'}{hours:02d}:{minutes:02d}"

    def _refuse_twice(self, location: int, bucket_keys: Iterable[str]) -> None:
        """Fail if two of a location's keys are one bucket: its rows would be doubled."""
        seen: dict[tuple[str, str], str] = {}
        for key in sorted(bucket_keys):
            parsed = self._keys[key]
            bucket = (parsed.fragment, parsed.end)
            if not parsed.dropped and seen.setdefault(bucket, key) != key:
                raise MalformedResponse(
                    f"location {location} reports one time bucket twice, as "
                    f"{seen[bucket][:40]!r} and {key[:40]!r}"
                )

    def shape(self, data: Any) -> ShapedPage:
        if not isinstance(data, list):
            raise MalformedResponse(f"'data' is {type(data).__name__}, expected a list")
        page = ShapedPage()
        unknown_fields = page.unknown_fields
        for record in data:
            identity, metrics, extras, unknown = location_record.check(record)
            location = identity[0]
            page.location_ids.append(location)
            for name in unknown:
                unknown_fields[name] = unknown_fields.get(name, 0) + 1
            bucket_keys = _bucket_keys(metrics, extras)
            if not bucket_keys.issubset(self._keys):
                for key in sorted(bucket_keys.difference(self._keys)):
                    self._parse_key(key)
            if extras or not self._by_columns:
                tallies = self._shape_rows(page, identity, metrics, extras, bucket_keys)
            else:
                tallies = self._shape_columns(page, identity, metrics, sorted(bucket_keys))
            add_tallies(page.sums, record, location, tallies)
            if self._aliased:
                self._refuse_twice(location, bucket_keys)
            if self._count_days:
                self._count_buckets(page, location, bucket_keys)
        return page

    def _shape_columns(
        self,
        page: ShapedPage,
        identity: Identity,
        metrics: list[Metric],
        keys: list[str],
    ) -> dict[str, list[int]]:
        """One location's rows, a day at a time, every per-value step in C.

        Each metric's values are looked up for the day's keys by `map`, the rows are
        `_Row` structs built by `map`, and msgspec writes them as JSON Lines,
        leaving out the metrics a bucket has no value of. The lines, tallies and
        digests are those of `_shape_rows` (tests/unit/test_rows.py holds the two
        equal) for about a third of its CPU (docs/performance.md, "CPU at the floor").
        Returns the location's [visits, rows, hours, digest] per day (add_tallies).
        """
        parsed = list(map(self._keys.__getitem__, keys))
        dts = list(map(_DT, parsed))
        by_name = dict(metrics)
        columns = [by_name.get(name) for name in _METRICS]
        visits = by_name.get("visits")
        tallies: dict[str, list[int]] = {}
        start = 0
        for dt in dict.fromkeys(dts):  # sorted keys: each day's keys are together
            stop = start + dts.count(dt)
            rows = stop - start
            if parsed[start].dropped:
                page.dropped_rows += rows
                start = stop
                continue
            day_keys, day = keys[start:stop], parsed[start:stop]
            block = _ENCODER.encode_lines(
                list(
                    map(
                        _Row,
                        *(repeat(value, rows) for value in identity),
                        map(_TS, day),
                        repeat(self._basis, rows),
                        *(
                            repeat(None, rows) if c is None else map(c.get, day_keys)
                            for c in columns
                        ),
                        repeat(self._run_id, rows),
                        map(_OFFSET, day),
                    )
                )
            )
            page.lines.setdefault(dt, []).append(block)
            page.rows[dt] = page.rows.get(dt, 0) + rows
            # The digest: the CRC-32 of each line's ts and values (add_tallies), the
            # text between the identity columns and the end. An escaped string holds
            # no bare quote, so the first `,"ts":"` is the column's.
            from_ts = block.index(b',"ts":"') + len(b',"ts":"')
            lines = block.split(b"\n")
            lines.pop()  # after the last newline
            ends_at = {len(end) - 1 for end in map(_END, day)}  # the newline is cut off
            if len(ends_at) == 1:
                cut = itemgetter(slice(from_ts, -ends_at.pop()))
                digest = sum(map(crc32, map(cut, lines)))
            else:
                digest = sum(
                    crc32(line[from_ts : len(line) - len(end) + 1])
                    for line, end in zip(lines, map(_END, day), strict=True)
                )
            tallies[dt] = [
                sum(map(visits.get, day_keys, repeat(0))) if visits is not None else 0,
                rows,
                reduce(or_, map(_HOUR, day), 0),
                digest,
            ]
            start = stop
        return tallies

    def _shape_rows(
        self,
        page: ShapedPage,
        identity: Identity,
        metrics: list[Metric],
        extras: list[Metric],
        bucket_keys: set[str],
    ) -> dict[str, list[int]]:
        """One location's rows, one row at a time: the general way, which also
        writes the `extra` column of unknown metrics. Returns what
        `_shape_columns` does."""
        keys = self._keys
        prefix = _prefix(*identity)
        # The innermost loop runs once per row: bound methods and one
        # comprehension, no per-row dict.
        getters = [(_PIECE[name], series.get) for name, series in metrics]
        visits = dict(metrics).get("visits", {}).get
        lines: dict[str, list[str]] = {}
        tallies: dict[str, list[int]] = {}
        for key in sorted(bucket_keys):
            parsed = keys[key]
            if parsed.dropped:
                page.dropped_rows += 1
                continue
            dt = parsed.dt
            body = "".join([f"{piece}{v}" for piece, get in getters if (v := get(key)) is not None])
            if extras:
                extra = {name: series[key] for name, series in extras if key in series}
                if extra:
                    body += f',"extra":{dumps(extra).decode()}'
            day_lines = lines.get(dt)
            if day_lines is None:
                lines[dt] = day_lines = []
            day_lines.append(f"{prefix}{parsed.fragment}{body}{parsed.end}")
            tally = tallies.get(dt)
            if tally is None:
                tallies[dt] = tally = [0, 0, 0, 0]
            tally[0] += visits(key) or 0
            tally[1] += 1
            tally[2] |= parsed.hour_bit
            tally[3] += crc32(body.encode(), parsed.fragment_crc)  # the CRC of ts + body
        for dt, day_lines in lines.items():
            page.lines.setdefault(dt, []).append("".join(day_lines).encode())
            page.rows[dt] = page.rows.get(dt, 0) + len(day_lines)
        return tallies

    def _count_buckets(self, page: ShapedPage, location: int, bucket_keys: Iterable[str]) -> None:
        """Note the location's local days whose bucket count no hour of a day explains.

        A location's days are whole in one record: it appears once per window.
        """
        per_day: dict[str, int] = {}
        for key in bucket_keys:
            parsed = self._keys[key]
            if not parsed.dropped:
                per_day[parsed.dt] = per_day.get(parsed.dt, 0) + 1
        for dt, count in sorted(per_day.items()):
            if count > 25 or (self._zero_filled and count not in _DAY_BUCKETS):
                page.irregular_days.append((dt, location, count))


def _mismatch_error(asked: TimeBasis, key: str) -> str:
    """What failed and what to do: the run asked for one basis, a key is in the other."""
    if asked == "local":
        return (
            f"time basis: the run asked for local time (timeBasis: local) but the API "
            f"answered in UTC ({key[:40]!r}); nothing is committed, no hour is lost. "
            'Export these days as UTC instead: run again with "timeBasis": "utc" '
            "(or dates ending in Z; wifi-export run without --local-time)"
        )
    return (
        f"time basis: the run asked for UTC (timeBasis: utc) but the API answered in "
        f"local time ({key[:40]!r}); nothing is committed, no hour is lost. "
        'Export these days as local time instead: run again with "timeBasis": "local" '
        "(wifi-export run --local-time)"
    )


def add_tallies(
    sums: dict[str, dict[str, list[int]]],
    record: dict[str, Any],
    location: int,
    tallies: dict[str, list[int]],
) -> None:
    """File one location's per-day [visits, rows, hours bitmask, digest] under its
    key (`123`; zone rows `123@<zone>`): what exporter.lake keeps and compares.

    The digest is a sum of the rows' CRC-32s (their time and values, not the run
    id), so it does not depend on the order rows arrive in, and pages and
    windows add up.
    """
    zone = record.get("zoneId")
    ident = f"{location}@{zone}" if zone else str(location)
    for tally in tallies.values():
        tally[3] &= DIGEST_MASK
    add_sums(sums, {dt: {ident: tally} for dt, tally in tallies.items()})


_METRICS: Final = tuple(api for api, _ in METRIC_COLUMNS)
_DT, _END, _TS, _OFFSET, _HOUR = (
    attrgetter(name) for name in ("dt", "end", "ts", "offset", "hour_bit")
)
# A line as msgspec writes it: the columns in table order, a field that is None
# left out (`omit_defaults`: no other field can hold its default, an id of 0 or an
# empty ts, basis or run id); one struct per row, untracked by the GC.
_Row: Final = msgspec.defstruct(
    "_Row",
    [
        ("location_id", int, 0),
        ("reference_number", str | None, None),
        ("zone_id", str | None, None),
        ("ts", str, ""),
        ("time_basis", str, ""),
        *((column, int | None, None) for _, column in METRIC_COLUMNS),
        ("run_id", str, ""),
        ("utc_offset", str | None, None),
    ],
    omit_defaults=True,
    gc=False,
)
_ENCODER: Final = msgspec.json.Encoder()


def _bucket_keys(metrics: list[Metric], extras: list[tuple[str, dict[str, int]]]) -> set[str]:
    """Every time key any of a location's series has."""
    keys: set[str] = set()
    for _, series in (*metrics, *extras):
        keys.update(series)
    return keys


def _prefix(location: int, reference: str | None, zone: str | None) -> str:
    """The line up to the opening quote of `ts`: the location's identity columns."""
    head = [f'{{"location_id":{location}']
    for column, value in (("reference_number", reference), ("zone_id", zone)):
        if value is not None:
            head.append(f',"{column}":{dumps(value).decode()}')
    head.append(',"ts":"')
    return "".join(head)
