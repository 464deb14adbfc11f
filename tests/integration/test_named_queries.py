"""The Athena named queries of template.yaml, run over a real export with DuckDB."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from datetime import date
from pathlib import Path

from local.contract import parse_data_key
from local.fake_analytiks import Quirks, location_ids, zone_id
from tests.integration.conftest import Lab, expected
from tests.integration.test_parquet import parquet_view
from tests.template.cfn_yaml import load

ROOT = Path(__file__).resolve().parents[2]
NAMED: dict[str, str] = {
    name: resource["Properties"]["QueryString"]
    for name, resource in load(ROOT / "template.yaml")["Resources"].items()
    if resource["Type"] == "AWS::Athena::NamedQuery"
}
# Each query has a twin over the Parquet table (docs/contracts.md, "The Parquet table").
QUERIES = {name: sql for name, sql in NAMED.items() if not name.startswith("Parquet")}
TWINS = {name: NAMED["Parquet" + name] for name in QUERIES}

UTC = "AND time_basis = 'utc'"


def in_basis(sql: str, basis: str) -> str:
    """A named query with its time basis chosen (they ship choosing `utc`)."""
    assert sql.count(UTC) == 1, sql
    return sql.replace(UTC, f"AND time_basis = '{basis}'")


def daily_visits(lab: Lab, brand: int, first: date, last: date, basis: str) -> dict[str, int]:
    """Visits per day of one basis from the fake's model (local.fake_analytiks),
    not from anything the exporter wrote."""
    per_day: dict[str, int] = {}
    for (_, ts), values in expected(lab.api, brand, first, last, basis).items():
        per_day[ts[:10]] = per_day.get(ts[:10], 0) + values.get("visits", 0)
    return per_day


def test_named_queries_run_and_add_up(lab: Lab) -> None:
    assert set(QUERIES) == {
        "DailyVisitsQuery",
        "DwellTimeDistributionQuery",
        "WeekOverWeekQuery",
        "ZoneVisitsQuery",
    }
    # May and June: the week-over-week query has weeks to compare.
    lab.run({"brandId": 1234, "startDate": "2023-05-01", "endDate": "2023-06-30"})
    # A zone export beside it: its rows repeat a location's counts, and the
    # location queries must not add them in.
    zone_location = location_ids(1234, 120)[4]
    lab.run(
        {
            "brandId": 1234,
            "startDate": "2023-06-01",
            "endDate": "2023-06-30",
            "zoneId": zone_id(zone_location),
        }
    )
    con = lab.table()
    con.execute("CREATE VIEW wifi_metrics AS SELECT * FROM metrics")
    for name, sql in QUERIES.items():
        assert con.execute(sql).fetchall(), f"{name} returned nothing"

    june = expected(lab.api, 1234, date(2023, 6, 1), date(2023, 6, 30), "utc")
    daily = con.execute(QUERIES["DailyVisitsQuery"]).fetchall()
    assert len(daily) == len({(ts[:10], loc) for loc, ts in june})
    assert sum(row[3] or 0 for row in daily) == sum(v.get("visits", 0) for v in june.values())

    shares = con.execute(QUERIES["DwellTimeDistributionQuery"]).fetchall()
    assert len(shares) == len({loc for loc, _ in june})  # dark locations have no rows
    for _location, total, *percentages in shares:
        if total:
            assert abs(sum(p or 0 for p in percentages) - 100) < 1

    zones = con.execute(QUERIES["ZoneVisitsQuery"]).fetchall()
    assert {row[1] for row in zones} == {zone_id(zone_location)}
    assert sum(row[3] or 0 for row in zones) == sum(
        v.get("visits", 0) for (loc, _), v in june.items() if loc == zone_location
    )

    weeks = con.execute(QUERIES["WeekOverWeekQuery"]).fetchall()
    assert any(row[3] is not None for row in weeks)  # previous_week found

    # The Parquet twins: the same SQL over the Parquet table, the same answers.
    assert set(NAMED) == set(QUERIES) | {"Parquet" + name for name in QUERIES}
    parquet_view(lab, con, "wifi_metrics_parquet")
    for name, sql in QUERIES.items():
        assert TWINS[name] == sql.replace("FROM wifi_metrics\n", "FROM wifi_metrics_parquet\n")
        assert con.execute(TWINS[name]).fetchall() == con.execute(sql).fetchall(), name


def test_named_queries_over_zeros_nulls_extra_and_both_bases(
    make_lab: Callable[..., Lab],
) -> None:
    """Every named query runs over an export with all the shapes a row can take:
    metrics null (omitted) and zero, `extra` entries, `utc_offset` set and null, and
    rows in both time bases; each query reads one basis and its numbers add up."""
    lab = make_lab(brands={1234: 120}, extra_metrics=("footfallScore",))
    # May to mid June in UTC: omitted zeros (nulls) and `extra` entries.
    lab.run({"brandId": 1234, "startDate": "2023-05-01", "endDate": "2023-06-15"})
    # The rest of June in local time, answered with zeros and offset keys.
    lab.api.quirks = Quirks(zero_values=True, offset_keys=True)
    lab.run({"brandId": 1234, "startDate": "2023-06-16T00:00:00", "endDate": "2023-06-30T00:00:00"})

    con = lab.table()
    con.execute("CREATE VIEW wifi_metrics AS SELECT * FROM metrics")
    shapes = con.execute(
        "SELECT count(*) FILTER (visits IS NULL), count(*) FILTER (visits = 0), "
        "count(*) FILTER (extra IS NOT NULL), count(*) FILTER (utc_offset IS NOT NULL), "
        "count(*) FILTER (utc_offset IS NULL), list(DISTINCT time_basis ORDER BY time_basis) "
        "FROM metrics"
    ).fetchone()
    assert shapes is not None
    nulls, zeros, extras, offsets, no_offsets, bases = shapes
    assert min(nulls, zeros, extras, offsets, no_offsets) > 0
    assert bases == ["local", "utc"]
    utc = expected(lab.api, 1234, date(2023, 6, 1), date(2023, 6, 15), "utc")
    local = expected(lab.api, 1234, date(2023, 6, 16), date(2023, 6, 30), "local")
    # Each basis is its own dataset: the UTC query sees the UTC days only ...
    daily = con.execute(QUERIES["DailyVisitsQuery"]).fetchall()
    assert {(str(row[0]), row[1]) for row in daily} == {(ts[:10], loc) for loc, ts in utc}
    assert sum(row[3] or 0 for row in daily) == sum(v.get("visits", 0) for v in utc.values())
    # ... the local one the local days, zero-filled: every location every hour.
    daily = con.execute(in_basis(QUERIES["DailyVisitsQuery"], "local")).fetchall()
    days = {(f"2023-06-{d}", loc) for d in range(16, 31) for loc in location_ids(1234, 120)}
    assert {(str(row[0]), row[1]) for row in daily} == days
    assert sum(row[3] or 0 for row in daily) == sum(v.get("visits", 0) for v in local.values())
    assert any(row[3] == 0 for row in daily)  # a dark location's zero day: 0, not null

    for basis in ("utc", "local"):
        results = {
            name: con.execute(in_basis(sql, basis)).fetchall() for name, sql in QUERIES.items()
        }
        shares = results["DwellTimeDistributionQuery"]
        for _location, total, *percentages in shares:
            if total:
                assert abs(sum(p or 0 for p in percentages) - 100) < 1
            else:  # zeros only: no share instead of a division by zero
                assert percentages == [None] * len(percentages)
        weeks = results["WeekOverWeekQuery"]
        assert any(row[3] is not None for row in weeks)  # previous_week found
    assert any(total == 0 for _, total, *_ in shares)  # local: zero-filled dark locations
    assert len(shares) == 120


def test_a_utc_and_a_local_run_over_the_same_days_are_both_complete_and_exact(
    make_lab: Callable[..., Lab],
) -> None:
    """The double count of issue 21: a UTC run, then a local run over overlapping
    days. Both stay complete in partitions of their own, and the daily query of
    each basis counts every visit once, whichever basis a day was exported in."""
    lab = make_lab(brands={1234: 40})
    first, last = date(2023, 6, 1), date(2023, 6, 5)
    lab.run({"brandId": 1234, "startDate": "2023-06-01", "endDate": "2023-06-05"})
    lab.run(
        {"brandId": 1234, "startDate": "2023-06-03", "endDate": "2023-06-07", "timeBasis": "local"}
    )
    con = lab.table()
    con.execute("CREATE VIEW wifi_metrics AS SELECT * FROM metrics")
    folders = con.execute(
        "SELECT time_basis, min(dt), max(dt), count(DISTINCT run_id) FROM metrics GROUP BY 1"
    ).fetchall()
    assert sorted((b, str(lo), str(hi), runs) for b, lo, hi, runs in folders) == [
        ("local", "2023-06-03", "2023-06-07", 1),
        ("utc", "2023-06-01", "2023-06-05", 1),
    ]
    # Every line says the basis its folder says (no row misfiled).
    for key, body in lab.table_bytes().items():
        folder = parse_data_key(key).basis
        assert {json.loads(line)["time_basis"] for line in gzip.decompress(body).splitlines()} == {
            folder
        }
    for basis, days in (("utc", (first, last)), ("local", (date(2023, 6, 3), date(2023, 6, 7)))):
        want = daily_visits(lab, 1234, *days, basis)
        sql = in_basis(QUERIES["DailyVisitsQuery"], basis)
        got: dict[str, int] = {}
        for dt, _loc, _ref, visits, *_ in con.execute(sql).fetchall():
            got[str(dt)] = got.get(str(dt), 0) + (visits or 0)
        assert got == want, basis
