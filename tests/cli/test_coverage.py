"""`wifi-export coverage` and `run --missing` against the lab (moto, the fake API over
HTTP, the real handler), and what a rerun changed, in its notification and manifest."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, timedelta
from typing import Any, ClassVar

from exporter import json_codec
from local.fake_analytiks import expected_rows
from tests.cli.conftest import CliLab
from wifi_export_cli.deployment import Aws

BRAND = 777  # three locations: cheap to export
LOCATION = BRAND * 100_000 + 2
DAYS = ("--from", "2023-06-01", "--to", "2023-06-08")
DAY_FIELDS = {"date", "status", "timeBasis", "rows", "locations", "runId", "committedAt"}


def export(cli_lab: CliLab, first: str, last: str, **event: Any) -> str:
    run_id = cli_lab.start({"brandId": BRAND, "startDate": first, "endDate": last, **event})
    cli_lab.finish()
    return run_id


def coverage_json(cli_lab: CliLab, *args: str) -> dict[str, Any]:
    result = cli_lab.cli("coverage", "--brand", str(BRAND), *args, "--json")
    assert result.exit_code == 0, result.stderr
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def rows_per_day(first: str, last: str) -> Counter[str]:
    rows = expected_rows(BRAND, 3, f"{first}T00:00:00.000Z", f"{last}T23:59:59.999Z", "utc")
    return Counter(row.ts[:10] for row in rows)


def test_a_gap_shows_in_both_outputs_and_run_missing_fills_exactly_it(cli_lab: CliLab) -> None:
    early = export(cli_lab, "2023-06-01", "2023-06-03")
    late = export(cli_lab, "2023-06-06", "2023-06-08")
    doc = coverage_json(cli_lab, *DAYS)
    assert doc["brand"] == BRAND
    assert [d["status"] for d in doc["days"]] == ["present"] * 3 + ["missing"] * 2 + ["present"] * 3
    gap = {"date": "2023-06-04", "status": "missing", "timeBasis": "utc"}
    assert doc["days"][3] == gap
    expected = rows_per_day("2023-06-01", "2023-06-08")
    for day in doc["days"][:3] + doc["days"][5:]:
        assert set(day) == DAY_FIELDS
        assert day["rows"] == expected[day["date"]] and day["locations"] == 3
        assert day["runId"] == (early if day["date"] < "2023-06-04" else late)
        assert day["timeBasis"] == "utc"

    people = cli_lab.cli("coverage", "--brand", str(BRAND), *DAYS)
    assert people.exit_code == 0, people.stderr
    assert "June 2023" in people.stdout and "6 present, 0 partial, 2 missing" in people.stdout
    assert "missing: 2023-06-04..2023-06-05" in people.stdout
    assert "wifi-export run --missing --brand 777" in people.stdout
    assert "note:" not in people.stdout  # no local-time days to mention
    ranges = cli_lab.cli("coverage", "--brand", str(BRAND), *DAYS, "--missing")
    assert ranges.stdout.splitlines() == ["2023-06-04 2023-06-05"]
    # The other basis is another dataset: nothing there yet.
    local = coverage_json(cli_lab, *DAYS, "--basis", "local")
    assert {d["status"] for d in local["days"]} == {"missing"}
    assert {d["timeBasis"] for d in local["days"]} == {"local"}

    started = cli_lab.cli("run", "--brand", str(BRAND), *DAYS, "--missing", "--json")
    assert started.exit_code == 0, started.stderr
    (run,) = json.loads(started.stdout)
    assert (run["startDate"], run["endDate"]) == ("2023-06-04", "2023-06-05")
    cli_lab.finish()
    after = coverage_json(cli_lab, *DAYS)
    assert {d["status"] for d in after["days"]} == {"present"}
    owners = [d["runId"] for d in after["days"]]
    assert owners == [early] * 3 + [run["runId"]] * 2 + [late] * 3
    again = cli_lab.cli("run", "--brand", str(BRAND), *DAYS, "--missing")
    assert again.exit_code == 0 and "nothing is missing" in again.stdout


def test_a_restated_location_shows_in_the_changes_and_identical_numbers_show_none(
    cli_lab: CliLab,
) -> None:
    first = export(cli_lab, "2023-06-01", "2023-06-02")
    (note,) = cli_lab.lab.notifications()
    assert "changes" not in note["body"]  # nothing was there to replace

    cli_lab.lab.api.quirks.restate[LOCATION] = 3
    export(cli_lab, "2023-06-01", "2023-06-02")
    restated = cli_lab.lab.notifications()[-1]["body"]
    buckets = Counter(
        row.ts[:10]
        for row in expected_rows(
            BRAND, 3, "2023-06-01T00:00:00.000Z", "2023-06-02T23:59:59.999Z", "utc"
        )
        if row.location_id == LOCATION and row.values.get("visits")
    )
    assert restated["changes"] == {
        "days": {dt: {"locations": 1, "visits": 3 * n} for dt, n in sorted(buckets.items())}
    }
    manifest = json_codec.loads(
        cli_lab.lab.s3.get_object(
            Bucket=cli_lab.lab.bucket, Key=restated["manifest"].split("/", 3)[3]
        )["Body"].read()
    )
    assert manifest["changes"] == restated["changes"]

    export(cli_lab, "2023-06-01", "2023-06-02")  # the same numbers again
    assert cli_lab.lab.notifications()[-1]["body"]["changes"] == {"days": {}}

    # A selection of the restated location, back to the API's first numbers: only
    # that location, and the visits come back down.
    cli_lab.lab.api.quirks.restate.clear()
    export(cli_lab, "2023-06-01", "2023-06-01", locations=[LOCATION])
    selection = cli_lab.lab.notifications()[-1]["body"]
    assert selection["changes"] == {
        "days": {"2023-06-01": {"locations": 1, "visits": -3 * buckets["2023-06-01"]}}
    }
    assert first < selection["runId"]
    # The calendar says which locations the selection replaced, and who owns the day.
    key = (
        f"{cli_lab.lab.env['STATE_PREFIX']}/lake/brand_id={BRAND}/time_basis=utc/days/2023-06.json"
    )
    calendar = json.loads(
        cli_lab.lab.s3.get_object(Bucket=cli_lab.lab.bucket, Key=key)["Body"].read()
    )
    june_1 = calendar["days"]["2023-06-01"]
    assert (june_1["replaced"], june_1["replacedCount"]) == ([LOCATION], 1)
    assert june_1["runId"] == selection["runId"] and june_1["locations"] == 3
    assert "replaced" not in calendar["days"]["2023-06-02"]


class CountingAws(Aws):
    """The CLI's AWS, counting every S3 request it sends."""

    requests: ClassVar[Counter[str]] = Counter()

    def client(self, service: str) -> Any:
        client = super().client(service)
        if service == "s3" and not getattr(client, "_counted", False):
            client.meta.events.register(
                "before-send.s3.*", lambda request, **_: self.requests.update([request.method])
            )
            client._counted = True
        return client


def test_reading_a_year_of_one_brand_costs_a_dozen_requests(cli_lab: CliLab) -> None:
    from exporter.aws import S3Store  # noqa: PLC0415
    from exporter.lake.commit import record_commit  # noqa: PLC0415
    from exporter.run.counters import Counters  # noqa: PLC0415
    from exporter.run.coverage import WHOLE  # noqa: PLC0415
    from exporter.run.records import RunPlan, StagedObject, StepRecord  # noqa: PLC0415

    store = S3Store(cli_lab.lab.bucket, client=cli_lab.lab.s3)
    state = cli_lab.lab.env["STATE_PREFIX"]
    days = [date(2023, 1, 1) + timedelta(days=n) for n in range(365)]
    for month in range(1, 13):  # one commit a month, every day but the 13th
        mine = [d for d in days if d.month == month and d.day != 13]
        plan = RunPlan(
            f"202401{month:02d}T000000000Z-b{BRAND}-{month:08x}",
            BRAND,
            mine[0],
            mine[-1],
            "utc",
            "on-demand",
            "t",
            windows=(),
        )
        sums = {str(i): [10, 24, (1 << 24) - 1, i] for i in range(1, 121)}
        objects = tuple(StagedObject(d.isoformat(), "k", 2880, 1, sums) for d in mine)
        step = StepRecord(0, 0, "a", None, objects, Counters(), "t")
        record_commit(store, state, plan, [step], WHOLE, committed_at="2024-01-01T00:00:00Z")
    CountingAws.requests.clear()
    result = cli_lab.cli(
        "coverage",
        "--brand",
        str(BRAND),
        "--from",
        "2023-01-01",
        "--to",
        "2023-12-31",
        "--json",
        aws=CountingAws,
    )
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert len(doc["days"]) == 365
    missing = [d["date"] for d in doc["days"] if d["status"] == "missing"]
    assert missing == [f"2023-{m:02d}-13" for m in range(1, 13)]
    assert {d["locations"] for d in doc["days"] if d["status"] != "missing"} == {120}
    # One GET per month, and the December before (the trailing median of early January).
    assert CountingAws.requests == Counter({"GET": 13})


def test_each_time_basis_is_its_own_calendar(cli_lab: CliLab) -> None:
    run_id = export(cli_lab, "2023-06-01", "2023-06-02", timeBasis="local")
    days = ("--from", "2023-06-01", "--to", "2023-06-02")
    local = coverage_json(cli_lab, *days, "--basis", "local")["days"]
    assert [(d["status"], d["timeBasis"], d["runId"]) for d in local] == [
        ("present", "local", run_id)
    ] * 2
    utc = coverage_json(cli_lab, *days)["days"]
    assert [(d["status"], d["timeBasis"]) for d in utc] == [("missing", "utc")] * 2
    # run --missing --local-time sees the local calendar: nothing to do there.
    again = cli_lab.cli("run", "--brand", str(BRAND), *days, "--missing", "--local-time")
    assert again.exit_code == 0 and "nothing is missing" in again.stdout
    # A person looking at the UTC calendar is told the brand has local days too.
    people = cli_lab.cli("coverage", "--brand", str(BRAND), *days)
    assert "note: 2 day(s) of this range are also in the local-time dataset" in people.stdout


def test_flags_are_checked_before_any_aws_call(cli_lab: CliLab) -> None:
    nowhere = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}  # any AWS call would fail
    backwards = cli_lab.cli(
        "coverage", "--brand", "7", "--from", "2023-06-10", "--to", "2023-06-01", environ=nowhere
    )
    assert backwards.exit_code == 3 and "--to 2023-06-01 is before --from" in backwards.stderr
    bad = cli_lab.cli("coverage", "--brand", "7", "--from", "June", "--to", "2023-06-01")
    assert bad.exit_code == 3 and "--from: 'June' is not a date" in bad.stderr
    basis = cli_lab.cli("coverage", "--brand", "7", *DAYS, "--basis", "mars")
    assert basis.exit_code == 2 and "--basis" in basis.stderr
    selection = cli_lab.cli("run", "--brand", "7", *DAYS, "--missing", "--locations", "1")
    assert selection.exit_code == 2 and "--missing re-exports whole days" in selection.stderr


def test_hostile_calendar_records_read_as_missing_days_or_plain_text(cli_lab: CliLab) -> None:
    """Anyone who can write the bucket can write the lake's calendar: a malformed
    record is a missing day (no crash), and every string shown is plain text."""
    from tests.cli.test_plain_text import FORBIDDEN, HOSTILE  # noqa: PLC0415

    lab = cli_lab.lab
    good = {"rows": 24, "locations": 1, "hours": 24, "committedAt": HOSTILE}
    days = {
        "2023-06-01": {**good, "runId": HOSTILE},  # well formed, hostile text
        "2023-06-02": {**good, "runId": "r", "rows": "two"},  # malformed count
        "2023-06-03": ["not", "a", "record"],
        "2023-06-0\u0664": {**good, "runId": "r"},  # not an ASCII date
    }
    key = f"{lab.env['STATE_PREFIX']}/lake/brand_id={BRAND}/time_basis=utc/days/2023-06.json"
    lab.s3.put_object(Bucket=lab.bucket, Key=key, Body=json.dumps({"v": 1, "days": days}))
    shown = cli_lab.cli(
        "coverage", "--brand", str(BRAND), "--from", "2023-06-01", "--to", "2023-06-04"
    )
    assert shown.exit_code == 0, shown.output
    assert not any(bad in shown.output for bad in FORBIDDEN), shown.output
    doc = coverage_json(cli_lab, "--from", "2023-06-01", "--to", "2023-06-04")
    assert [d["status"] for d in doc["days"]] == ["present", "missing", "missing", "missing"]
