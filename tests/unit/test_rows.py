from __future__ import annotations

import json
import zlib
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from exporter.errors import BasisMismatch, MalformedResponse
from exporter.lake.sums import DIGEST_MASK
from exporter.location_record import MAX_FIELD_NAME
from exporter.rows import RowShaper
from local.contract import LINE_COLUMNS, METRIC_COLUMN

DAYS = [date(2023, 6, 8), date(2023, 6, 9)]


def shape(
    data: Any, basis: str = "utc", days: list[date] = DAYS
) -> dict[str, list[dict[str, Any]]]:
    page = RowShaper("20230608T000000000Z-b1-0123abcd", basis, days).shape(data)  # type: ignore[arg-type]
    out = {dt: [json.loads(line) for line in lines_of(page, dt)] for dt in page.lines}
    assert {dt: len(rows) for dt, rows in out.items()} == page.rows
    assert all(block.endswith(b"\n") for blocks in page.lines.values() for block in blocks)
    return out


def lines_of(page: Any, dt: str) -> list[bytes]:
    """A day's lines, out of the page's blocks of them."""
    return b"".join(page.lines[dt]).splitlines()


def test_one_row_per_location_and_bucket() -> None:
    out = shape(
        [
            {
                "locationId": 7,
                "referenceNumber": "US0658",
                "visits": {"2023-06-08T08:00:00Z": 3, "2023-06-08T09:00:00Z": 6},
                "dwellTime": {"2023-06-08T09:00:00Z": 111111},
                "footfallScore": {"2023-06-08T09:00:00Z": 42},
            }
        ]
    )
    assert out == {
        "2023-06-08": [
            {
                "location_id": 7,
                "reference_number": "US0658",
                "ts": "2023-06-08 08:00:00",
                "time_basis": "utc",
                "visits": 3,
                "run_id": "20230608T000000000Z-b1-0123abcd",
            },
            {
                "location_id": 7,
                "reference_number": "US0658",
                "ts": "2023-06-08 09:00:00",
                "time_basis": "utc",
                "visits": 6,
                "dwell_time_ms": 111111,
                "extra": {"footfallScore": 42},
                "run_id": "20230608T000000000Z-b1-0123abcd",
            },
        ]
    }


def test_columns_come_in_table_order() -> None:
    key = "2023-06-09T00:00:00+02:00"  # an offset key: every column has a value
    record = {"locationId": 1, "zoneId": "z", "referenceNumber": "r"}
    record.update({api: {key: n + 1} for n, api in enumerate(METRIC_COLUMN)})
    record["zzz"] = {key: 1}
    (row,) = shape([record], basis="local")["2023-06-09"]
    assert list(row) == [name for name, _ in LINE_COLUMNS]
    # Each metric in its own column: the value n + 1 was given to the n-th API name.
    assert [row[column] for column in METRIC_COLUMN.values()] == list(
        range(1, len(METRIC_COLUMN) + 1)
    )


def test_rows_outside_the_run_days_are_dropped_not_moved() -> None:
    page = RowShaper("20230608T000000000Z-b1-0123abcd", "utc", DAYS).shape(
        [{"locationId": 1, "visits": {"2023-06-07T23:00:00Z": 1, "2023-06-10T00:00:00Z": 2}}]
    )
    assert page.lines == {}
    assert page.dropped_rows == 2


def test_local_keys_keep_their_wall_time() -> None:
    out = shape([{"locationId": 1, "visits": {"2023-06-09T23:00:00": 5}}], basis="local")
    assert out["2023-06-09"][0]["ts"] == "2023-06-09 23:00:00"
    assert out["2023-06-09"][0]["time_basis"] == "local"


def test_a_location_without_values_gives_no_rows() -> None:
    assert shape([{"locationId": 1}]) == {}


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"locationId": 1}, "list"),
        (["x"], "object"),
        ([{"visits": {}}], "locationId"),
        ([{"locationId": "1"}], "locationId"),
        ([{"locationId": True}], "locationId"),
        ([{"locationId": -3}], "locationId"),
        ([{"locationId": 1, "referenceNumber": 5.0}], "referenceNumber"),
        ([{"locationId": 1, "visits": [1, 2]}], "not a map"),
        ([{"locationId": 1, "visits": None}], "not a map"),
        ([{"locationName": "Store 12", "visits": {}}], "locationId"),
        ([{"locationId": 1, "visits": {"2023-06-08T00:00:00Z": -1}}], "natural"),
        ([{"locationId": 1, "visits": {"2023-06-08T00:00:00Z": 1.5}}], "natural"),
        ([{"locationId": 1, "visits": {"2023-06-08T00:00:00Z": "3"}}], "natural"),
        ([{"locationId": 1, "visits": {"2023-06-08T00:00:00Z": True}}], "natural"),
        ([{"locationId": 1, "visits": {"2023-06-08T00:00:00Z": 2**63}}], "natural"),
        (
            [
                {
                    "locationId": 1,
                    "visits": {"2023-06-08T00:00:00Z": 0, "2023-06-08T01:00:00Z": 2**63},
                }
            ],
            "natural",
        ),
        ([{"locationId": 1, "visits": {"yesterday": 1}}], "ISO 8601"),
        ([{"locationId": 1, "visits": {"2023-13-08T00:00:00Z": 1}}], "valid date"),
        ([{"locationId": 1, "visits": {"2023-06-08T25:00:00Z": 1}}], "valid time"),
        ([{"locationId": 1, "visits": {"2023-06-08T00:00:00+15:00": 1}}], "UTC offset"),
        ([{"locationId": 1, "visits": {"2023-06-08T00:00:00-12:30": 1}}], "UTC offset"),
        ([{"locationId": 1, "visits": {"2023-06-08T00:00:00+02:60": 1}}], "UTC offset"),
    ],
)
def test_malformed_pages_are_refused(data: Any, problem: str) -> None:
    with pytest.raises(MalformedResponse, match=problem):
        RowShaper("20230608T000000000Z-b1-0123abcd", "utc", DAYS).shape(data)


def test_bigints_whose_sum_is_no_bigint_are_kept() -> None:
    big = 2**63 - 1
    keys = {"2023-06-08T00:00:00Z": big, "2023-06-08T01:00:00Z": big}
    out = shape([{"locationId": 1, "visits": keys}])
    assert [row["visits"] for row in out["2023-06-08"]] == [big, big]


@pytest.mark.parametrize(
    ("basis", "key", "advice"),
    [
        ("local", "2023-06-08T22:00:00Z", '"timeBasis": "utc"'),  # "all dates are UTC"
        ("utc", "2023-06-08T10:00:00", '"timeBasis": "local"'),
        ("utc", "2023-06-08T10:00:00+02:00", '"timeBasis": "local"'),
    ],
)
def test_a_key_in_the_other_basis_fails_the_page(basis: str, key: str, advice: str) -> None:
    """Its row would mean another hour than its partition's: nothing is written,
    and the error names both bases and what to run instead."""
    shaper = RowShaper("20230608T000000000Z-b1-0123abcd", basis, DAYS)  # type: ignore[arg-type]
    own = "2023-06-08T09:00:00" if basis == "local" else "2023-06-08T09:00:00Z"
    with pytest.raises(BasisMismatch) as raised:
        shaper.shape([{"locationId": 1, "visits": {own: 4, key: 1}}])
    message = str(raised.value)
    assert f"timeBasis: {basis}" in message and advice in message
    assert "nothing is committed" in message and key in message


def test_rows_in_the_runs_basis_stay_in_the_window() -> None:
    # A key of the run's own basis outside the window is the API answering for days
    # another window asks for: writing it here would count it twice.
    page = RowShaper("20230608T000000000Z-b1-0123abcd", "local", DAYS).shape(
        [{"locationId": 1, "visits": {"2023-06-10T01:00:00": 1}}]
    )
    assert (page.lines, page.dropped_rows) == ({}, 1)


@pytest.mark.parametrize(
    ("basis", "key", "offset"),
    [
        ("utc", "2023-06-08T10:00:00+00:00", None),  # UTC, spelt with an offset
        ("utc", "2023-06-08T10:00:00+0000", None),
        ("local", "2023-06-08T10:00:00+00:00", "+00:00"),  # London in winter
        ("local", "2023-06-08T10:00:00-0330", "-03:30"),
        ("local", "2023-06-08T10:00:00.000+14:00", "+14:00"),
        ("local", "2023-06-08T10:00:00-00:00", "+00:00"),
    ],
)
def test_explicit_offsets_are_kept(basis: str, key: str, offset: str | None) -> None:
    shaper = RowShaper("20230608T000000000Z-b1-0123abcd", basis, DAYS)  # type: ignore[arg-type]
    page = shaper.shape([{"locationId": 1, "visits": {key: 5}}])
    (row,) = [json.loads(line) for line in lines_of(page, "2023-06-08")]
    assert (row["ts"], row["time_basis"], row.get("utc_offset")) == (
        "2023-06-08 10:00:00",
        basis,
        offset,
    )


def _day(hours: int, start: int = 0) -> dict[str, int]:
    """A local day's hourly keys from `start`, wrapping into the next day past 23."""
    keys = [datetime(2023, 10, 29) + timedelta(hours=start + h) for h in range(hours)]
    return {f"{k:%Y-%m-%dT%H:00:00}": 1 for k in keys}


@pytest.mark.parametrize(
    ("zero_filled", "hours", "reported"),
    [
        (True, 24, False),
        (True, 23, False),  # the spring night
        (True, 22, True),  # hours missing from a series that should hold them all
        (False, 22, False),  # v1-v3 leave out zero hours: short days are normal
        (False, 24, False),
    ],
)
def test_irregular_local_days_are_reported(zero_filled: bool, hours: int, reported: bool) -> None:
    shaper = RowShaper(
        "20231029T000000000Z-b1-0123abcd", "local", [date(2023, 10, 29)], zero_filled=zero_filled
    )
    page = shaper.shape([{"locationId": 7, "visits": _day(hours)}])
    assert page.irregular_days == ([("2023-10-29", 7, hours)] if reported else [])


def test_more_buckets_than_hours_in_a_day_are_reported_and_utc_days_never() -> None:
    half_hours = {f"2023-10-29T{h // 2:02d}:{h % 2 * 30:02d}:00": 1 for h in range(48)}
    days = [date(2023, 10, 29)]
    page = RowShaper("20231029T000000000Z-b1-0123abcd", "local", days).shape(
        [{"locationId": 7, "visits": half_hours}, {"locationId": 8, "visits": _day(24)}]
    )
    assert page.irregular_days == [("2023-10-29", 7, 48)]
    utc = {f"{k}Z": v for k, v in half_hours.items()}
    page = RowShaper("20231029T000000000Z-b1-0123abcd", "utc", days, zero_filled=True).shape(
        [{"locationId": 7, "visits": utc}]
    )
    assert page.irregular_days == []


def test_the_autumn_hour_that_happens_twice_stays_two_rows() -> None:
    # Europe/Berlin, 2023-10-29: 02:00 CEST (+02:00), then 02:00 CET (+01:00) an hour later.
    shaper = RowShaper("20231029T000000000Z-b1-0123abcd", "local", [date(2023, 10, 29)])
    keys = {
        "2023-10-29T01:00:00+02:00": 1,
        "2023-10-29T02:00:00+02:00": 2,
        "2023-10-29T02:00:00+01:00": 3,
        "2023-10-29T03:00:00+01:00": 4,
    }
    page = shaper.shape([{"locationId": 1, "visits": keys}])
    rows = [json.loads(line) for line in lines_of(page, "2023-10-29")]
    assert sorted((r["ts"], r["utc_offset"], r["visits"]) for r in rows) == [
        ("2023-10-29 01:00:00", "+02:00", 1),
        ("2023-10-29 02:00:00", "+01:00", 3),
        ("2023-10-29 02:00:00", "+02:00", 2),
        ("2023-10-29 03:00:00", "+01:00", 4),
    ]
    assert {r["time_basis"] for r in rows} == {"local"}


def test_unknown_non_metric_fields_are_counted_not_kept() -> None:
    long_name = "x" * 100
    records = [
        {
            "locationId": n,
            "locationName": f"Store {n}",
            "open": True,
            "tags": ["a", "b"],
            "address": {"street": "Main St", "number": 12},
            "status": {"2023-06-08T10:00:00Z": "open"},  # time keys, but not numbers
            "comment": None,
            long_name: 1.5,
            "visits": {"2023-06-08T10:00:00Z": n},
            "footfallScore": {"2023-06-08T10:00:00Z": 7},  # an unknown metric: kept
        }
        for n in (1, 2)
    ]
    page = RowShaper("20230608T000000000Z-b1-0123abcd", "utc", DAYS).shape(records)
    assert page.unknown_fields == {
        "locationName": 2,
        "open": 2,
        "tags": 2,
        "address": 2,
        "status": 2,
        "comment": 2,
        "x" * MAX_FIELD_NAME: 2,
    }
    rows = [json.loads(line) for line in lines_of(page, "2023-06-08")]
    assert [(r["location_id"], r["visits"], r["extra"]) for r in rows] == [
        (1, 1, {"footfallScore": 7}),
        (2, 2, {"footfallScore": 7}),
    ]
    assert all(set(r) <= {name for name, _ in LINE_COLUMNS} for r in rows)


def test_a_page_without_surprises_reports_none() -> None:
    page = RowShaper("20230608T000000000Z-b1-0123abcd", "utc", DAYS).shape(
        [{"locationId": 1, "referenceNumber": "r", "visits": {"2023-06-08T10:00:00Z": 1}}]
    )
    assert (page.unknown_fields, page.irregular_days, page.dropped_rows) == ({}, [], 0)


names = st.sampled_from([*METRIC_COLUMN, "mystery", 'we"ird\\name'])
hours = st.integers(0, 47).map(lambda h: f"2023-06-{8 + h // 24:02d}T{h % 24:02d}:00:00Z")
series = st.dictionaries(hours, st.integers(0, 2**63 - 1), max_size=6)
records = st.lists(
    st.tuples(
        st.integers(1, 10**12),
        st.none() | st.text(max_size=8),
        st.dictionaries(names, series, max_size=5),
    ),
    max_size=5,
    unique_by=lambda r: r[0],
)


@given(records)
def test_every_value_lands_once_in_its_row(generated: list[Any]) -> None:
    data = []
    truth: dict[tuple[int, str], dict[str, int]] = {}
    for location, reference, metrics in generated:
        record: dict[str, Any] = {"locationId": location, **metrics}
        if reference is not None:
            record["referenceNumber"] = reference
        data.append(record)
        for metric, values in metrics.items():
            for key, value in values.items():
                truth.setdefault((location, key[:10] + " " + key[11:19]), {})[metric] = value
    out = shape(data)
    seen: dict[tuple[int, str], dict[str, int]] = {}
    for dt, rows in out.items():
        for row in rows:
            assert row["ts"].startswith(dt)
            values = {api: row[col] for api, col in METRIC_COLUMN.items() if col in row}
            values.update(row.get("extra", {}))
            key = (row["location_id"], row["ts"])
            assert key not in seen
            seen[key] = values
    assert seen == truth


@pytest.mark.parametrize(
    ("basis", "twice"),
    [
        ("utc", ("2023-06-08T10:00:00Z", "2023-06-08T10:00:00+00:00")),
        ("utc", ("2023-06-08T10:00:00Z", "2023-06-08T10:00:00.000Z")),
        ("local", ("2023-06-08T10:00:00+02:00", "2023-06-08T10:00:00.5+0200")),
    ],
)
def test_one_bucket_spelt_twice_by_one_location_is_refused(
    basis: str, twice: tuple[str, str]
) -> None:
    shaper = RowShaper("20230608T000000000Z-b1-0123abcd", basis, DAYS)  # type: ignore[arg-type]
    # Across locations two spellings are harmless: each location has one row.
    page = shaper.shape(
        [{"locationId": 1, "visits": {twice[0]: 1}}, {"locationId": 2, "visits": {twice[1]: 2}}]
    )
    assert page.rows == {"2023-06-08": 2}
    with pytest.raises(MalformedResponse, match="location 3 reports one time bucket twice"):
        shaper.shape([{"locationId": 3, "visits": {twice[0]: 1}, "bounces": {twice[1]: 2}}])


suffixes = st.sampled_from(["Z", "", "+00:00", "+02:00", "+01:00", "-05:00"])
mixed_keys = st.tuples(st.integers(0, 4 * 24 - 1), suffixes).map(
    lambda t: f"2023-06-{7 + t[0] // 24:02d}T{t[0] % 24:02d}:00:00{t[1]}"
)


def expected_row(basis: str, key: str) -> tuple[str, str, str | None]:
    """(ts, time_basis, utc_offset) of a key, written out from the contract."""
    ts, suffix = f"{key[:10]} {key[11:19]}", key[19:]
    if suffix == "Z" or (suffix == "+00:00" and basis == "utc"):
        return ts, "utc", None
    return ts, "local", suffix or None


@given(
    st.sampled_from(["utc", "local"]),
    st.dictionaries(mixed_keys, st.integers(0, 10**6), max_size=24),
)
def test_every_key_is_one_row_or_one_drop(basis: str, series: dict[str, int]) -> None:
    """Whatever mix of key forms the API sends, each key is one row (told apart by
    ts and offset) or one dropped row, rows only on the window's days; one key in
    the other basis fails the page instead (nothing of it is written)."""
    identities = [expected_row(basis, key) for key in series]
    assume(len(set(identities)) == len(identities))  # one bucket spelt twice: refused above
    window = {str(d) for d in DAYS}
    kept = {
        (*identity, value)
        for identity, value in zip(identities, series.values(), strict=True)
        if identity[0][:10] in window
    }
    shaper = RowShaper("20230608T000000000Z-b1-0123abcd", basis, DAYS)  # type: ignore[arg-type]
    if any(identity[1] != basis for identity in identities):
        with pytest.raises(BasisMismatch):
            shaper.shape([{"locationId": 1, "visits": series}])
        return
    page = shaper.shape([{"locationId": 1, "visits": series}])
    rows = [(dt, json.loads(line)) for dt in page.lines for line in lines_of(page, dt)]
    assert {(r["ts"], r["time_basis"], r.get("utc_offset"), r["visits"]) for _, r in rows} == kept
    assert len(rows) == len(kept) and page.dropped_rows == len(series) - len(kept)
    assert all(r["ts"][:10] == dt for dt, r in rows)
    assert all(r["time_basis"] == basis for _, r in rows)


# The two ways a location is shaped: by columns (`_shape_columns`, every location
# without unknown metrics) and row by row (`_shape_rows`, the others). The same
# records through both give the same page, or the same error.
API_METRICS = list(METRIC_COLUMN)
naturals = st.integers(0, 2**63 - 1) | st.integers(0, 500)
awkward_text = (
    st.none()
    | st.sampled_from(
        ["r1", "100%", "%s%d", 'q"uote\\', "é", "a\nb\u2028", "\x00\x1f\x7f", "😀", "/</"]
    )
    | st.text(max_size=6)
)
# Keys mostly in the run's basis (a key in the other one fails the page, both ways).
basis_suffixes = {
    "utc": st.sampled_from(["Z"] * 8 + ["+00:00", ".5Z", "+02:00"]),
    "local": st.sampled_from([""] * 4 + ["+02:00"] * 4 + ["+01:00", "-05:00", "Z"]),
}


def time_keys(basis: str) -> st.SearchStrategy[list[str]]:
    hour = st.integers(0, 4 * 24 - 1)
    key = st.tuples(hour, basis_suffixes[basis]).map(
        lambda t: f"2023-06-{7 + t[0] // 24:02d}T{t[0] % 24:02d}:00:00{t[1]}"
    )
    return st.lists(key, min_size=1, max_size=30, unique=True)


@st.composite
def located(draw: st.DrawFn, location: int, basis: str) -> dict[str, Any]:
    keys = draw(time_keys(basis))
    record: dict[str, Any] = {"locationId": location}
    for api_field in ("referenceNumber", "zoneId"):
        if (text := draw(awkward_text)) is not None:
            record[api_field] = text
    filled = draw(st.booleans())  # v4: every metric has every key; v1-v3 leave zeros out
    for metric in draw(st.lists(st.sampled_from(API_METRICS), min_size=1, unique=True)):
        mine = keys if filled else draw(st.lists(st.sampled_from(keys), unique=True))
        record[metric] = {key: draw(naturals) for key in mine}
    twist = draw(st.sampled_from(["none"] * 6 + ["extra", "empty", "number"]))
    if twist == "extra":
        record["footfallScore"] = {keys[0]: 1}
    elif twist == "empty":
        record["walkBys"] = {}
    elif twist == "number":
        record["referenceNumber"] = draw(st.integers(0, 10**6))
    return record


def pages(basis: str) -> st.SearchStrategy[list[Any]]:
    return st.lists(st.integers(1, 10**12), max_size=4, unique=True).flatmap(
        lambda ids: st.tuples(*(located(i, basis) for i in ids)).map(list)
    )


def outcome(shaper: RowShaper, data: list[Any]) -> Any:
    try:
        return shaper.shape(data)
    except (MalformedResponse, BasisMismatch) as exc:
        return type(exc), str(exc)


@given(st.data(), st.sampled_from(["utc", "local"]), st.booleans())
def test_shaping_by_columns_gives_what_shaping_row_by_row_does(
    draw: st.DataObject, basis: str, zero_filled: bool
) -> None:
    """Byte for byte, digests included, page after page through one shaper each
    (their key caches carry over)."""
    data = draw.draw(st.lists(pages(basis), min_size=1, max_size=3))
    run = "20230608T000000000Z-b1-0123abcd"
    columns = RowShaper(run, basis, DAYS, zero_filled=zero_filled)  # type: ignore[arg-type]
    rows = RowShaper(run, basis, DAYS, zero_filled=zero_filled, by_columns=False)  # type: ignore[arg-type]
    for page in data:
        assert outcome(columns, page) == outcome(rows, page)


def test_locations_without_unknown_metrics_are_shaped_by_columns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    by_columns: list[int] = []
    shape_columns = RowShaper._shape_columns

    def spy(self: RowShaper, page: Any, identity: Any, *rest: Any) -> Any:
        by_columns.append(identity[0])
        return shape_columns(self, page, identity, *rest)

    monkeypatch.setattr(RowShaper, "_shape_columns", spy)
    both = {"2023-06-08T08:00:00Z": 1, "2023-06-08T09:00:00Z": 2}
    page = RowShaper("20230608T000000000Z-b1-0123abcd", "utc", DAYS).shape(
        [
            {"locationId": 1, "visits": both, "bounces": {"2023-06-08T08:00:00Z": 1}},
            {"locationId": 2, "visits": both, "footfallScore": both},
            {"locationId": 3, "visits": dict(reversed(both.items())), "bounces": {}},
        ]
    )
    assert by_columns == [1, 3]
    assert page.rows == {"2023-06-08": 6}


@pytest.mark.parametrize("by_columns", [True, False])
def test_a_days_digest_is_stdlib_crc32_of_each_lines_ts_and_values(by_columns: bool) -> None:
    """What `changes` compares across runs, and runs of earlier versions: per location
    and day, the sum of zlib's CRC-32 of each line's text from the ts value to its last
    metric, below 2**48. Held to stdlib zlib, whichever CRC the shaper computes it with."""
    run = "20230608T000000000Z-b1-0123abcd"
    keys = ["2023-06-08T08:00:00+02:00", "2023-06-08T09:00:00+02:00", "2023-06-09T10:00:00+02:00"]
    page = RowShaper(run, "local", DAYS, by_columns=by_columns).shape(
        [
            {"locationId": 7, "referenceNumber": 'R\u00e9f "7"', "visits": dict.fromkeys(keys, 3)},
            {"locationId": 8, "visits": {keys[0]: 1}, "bounces": dict.fromkeys(keys, 12345)},
        ]
    )
    expected: dict[str, dict[str, int]] = {}
    for dt in page.lines:
        for line in lines_of(page, dt):
            location = str(json.loads(line)["location_id"])
            text = line[line.index(b'"ts":"') + len(b'"ts":"') : line.index(b',"run_id":')]
            day = expected.setdefault(dt, {})
            day[location] = day.get(location, 0) + zlib.crc32(text)
    digests = {dt: {loc: sums[3] for loc, sums in day.items()} for dt, day in page.sums.items()}
    assert digests == {
        dt: {loc: digest & DIGEST_MASK for loc, digest in day.items()}
        for dt, day in expected.items()
    }
    assert digests["2023-06-08"].keys() == {"7", "8"}
