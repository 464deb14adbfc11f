"""The Athena named queries of template.yaml, run over a real export with DuckDB."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from tests.integration.conftest import Lab, expected
from tests.template.cfn_yaml import load

ROOT = Path(__file__).resolve().parents[2]
QUERIES: dict[str, str] = {
    name: resource["Properties"]["QueryString"]
    for name, resource in load(ROOT / "template.yaml")["Resources"].items()
    if resource["Type"] == "AWS::Athena::NamedQuery"
}


def test_named_queries_run_and_add_up(lab: Lab) -> None:
    assert set(QUERIES) == {"DailyVisitsQuery", "DwellTimeDistributionQuery", "WeekOverWeekQuery"}
    # May and June: the week-over-week query has weeks to compare.
    lab.run({"brandId": 1234, "startDate": "2023-05-01", "endDate": "2023-06-30"})
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

    weeks = con.execute(QUERIES["WeekOverWeekQuery"]).fetchall()
    assert any(row[3] is not None for row in weeks)  # previous_week found
