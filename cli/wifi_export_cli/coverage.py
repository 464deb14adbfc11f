"""`wifi-export coverage`: which days of a brand the lake holds, and `run --missing`.

Reads the lake coverage the exporter keeps at commit (exporter.lake.records):
one small object per brand, time basis and month, so a year is a dozen GETs
and no listing of the table.
"""

from __future__ import annotations

import calendar
import json
from datetime import date, timedelta
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from exporter.lake import records as lake
from exporter.ports import ObjectStore
from exporter.redaction import printable
from wifi_export_cli import render
from wifi_export_cli.deployment import CliError, Deployment
from wifi_export_cli.errors import handle_errors
from wifi_export_cli.options import deployment_options
from wifi_export_cli.session import open_session

STYLES = {"present": "green", "partial": "yellow", "missing": "red"}
MARKS = {"present": "✓", "partial": "◐", "missing": "✗"}


def parse_day(value: str, flag: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CliError(f"{flag}: {value!r} is not a date (YYYY-MM-DD)") from None


def check_range(start: str, end: str) -> tuple[date, date]:
    first, last = parse_day(start, "--from"), parse_day(end, "--to")
    if last < first:
        raise CliError(f"--to {end} is before --from {start}")
    if (last - first).days > 3660:
        raise CliError("--from..--to spans more than ten years", hint="ask for less at once")
    return first, last


def coverage_days(
    store: ObjectStore, deployment: Deployment, brand: int, basis: str, days: tuple[date, date]
) -> list[dict[str, Any]]:
    """The days of the range in the `coverage --json` shape (docs/contracts.md, "Operations CLI").

    The trailing month before `--from` is read too: a day is partial when it has
    fewer stores than the brand's usual (its trailing median).
    """
    first, last = days
    since = first - timedelta(days=lake.TRAILING_DAYS)
    records = lake.read_days(store, deployment.state_prefix, brand, basis, (since, last))
    return lake.statuses(records, basis, first, last)


def document(brand: int, days: list[dict[str, Any]]) -> dict[str, Any]:
    return {"brand": brand, "days": days}


def calendar_view(console: Console, brand: int, basis: str, days: list[dict[str, Any]]) -> None:
    """One month grid a month: a cell is the day, its mark and its stores."""
    by_month: dict[str, list[dict[str, Any]]] = {}
    for day in days:
        by_month.setdefault(day["date"][:7], []).append(day)
    for month, entries in by_month.items():
        year, number = int(month[:4]), int(month[5:])
        table = Table(
            title=f"brand {brand} · {calendar.month_name[number]} {year} · {basis}",
            title_justify="left",
            show_lines=False,
        )
        for name in ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"):
            table.add_column(name, justify="right", no_wrap=True)
        known = {int(d["date"][8:]): d for d in entries}
        for week in calendar.Calendar().monthdayscalendar(year, number):
            table.add_row(*(_cell(known.get(n)) if n else render.text("") for n in week))
        console.print(table)
        rows = sum(d.get("rows", 0) for d in entries)
        counts = {s: sum(d["status"] == s for d in entries) for s in STYLES}
        console.print(
            f"  {counts['present']} present, {counts['partial']} partial, "
            f"{counts['missing']} missing · {rows:,} rows",
            style="dim",
        )
    gaps = lake.missing_ranges(days)
    if gaps:
        console.print("missing: " + ", ".join(_range_text(r) for r in gaps), style="red")
        first, last = days[0]["date"], days[-1]["date"]
        local = " --local-time" if basis == "local" else ""
        console.print(
            f"fill them:  wifi-export run --missing --brand {brand} --from {first} --to {last}"
            f"{local}",
            style="dim",
        )
    partial = [d for d in days if d["status"] == "partial"]
    for day in partial[:31]:
        console.print(
            f"partial {day['date']}: {day['locations']} stores, {day['rows']:,} rows "
            f"(run {day['runId']})",
            style="yellow",
        )


def _cell(day: dict[str, Any] | None) -> Text:
    if day is None:
        return render.text("")
    status = day["status"]
    stores = f" {day['locations']}" if "locations" in day else ""
    return render.text(f"{int(day['date'][8:]):2d} {MARKS[status]}{stores}", STYLES[status])


def _range_text(gap: tuple[str, str]) -> str:
    return gap[0] if gap[0] == gap[1] else f"{gap[0]}..{gap[1]}"


def missing_events(
    store: ObjectStore,
    deployment: Deployment,
    brands: tuple[int, ...],
    days: tuple[date, date],
    *,
    local_time: bool,
) -> list[dict[str, Any]]:
    """`run --missing`: one on-demand event per brand and missing range (a run is one
    range of whole days; ranges of one brand are independent runs)."""
    basis = "local" if local_time else "utc"
    events: list[dict[str, Any]] = []
    for brand in brands:
        for first, last in lake.missing_ranges(
            coverage_days(store, deployment, brand, basis, days)
        ):
            event: dict[str, Any] = {"brandId": brand, "startDate": first, "endDate": last}
            if local_time:
                event["timeBasis"] = "local"
            events.append(event)
    return events


@click.command()
@click.option("--brand", type=click.IntRange(min=1), required=True, help="Brand id.")
@click.option("--from", "start", required=True, metavar="DATE", help="First day, YYYY-MM-DD.")
@click.option("--to", "end", required=True, metavar="DATE", help="Last day (inclusive).")
@click.option(
    "--basis",
    type=click.Choice(["utc", "local"]),
    default="utc",
    show_default=True,
    help="Which dataset: days in UTC, or in each location's local time.",
)
@click.option("--missing", is_flag=True, help="Print only the ranges to re-export.")
@deployment_options
@handle_errors
def coverage(
    *,
    brand: int,
    start: str,
    end: str,
    basis: str,
    missing: bool,
    stack_name: str | None,
    region: str | None,
    profile: str | None,
    as_json: bool,
) -> None:
    """Which days of a brand the lake holds: present, partial (fewer hours or stores
    than usual) or missing, with rows, stores and the run that wrote each day."""
    days = check_range(start, end)  # flags first, then AWS
    s = open_session(stack_name, region, profile, as_json)
    store = s.aws.store(s.deployment)
    found = coverage_days(store, s.deployment, brand, basis, days)
    if missing:
        gaps = lake.missing_ranges(found)
        if as_json:
            ranges = [{"from": a, "to": b} for a, b in gaps]
            click.echo(json.dumps({"brand": brand, "timeBasis": basis, "missing": ranges}))
        else:
            for gap in gaps:
                click.echo(printable(f"{gap[0]} {gap[1]}"))
        return
    if as_json:
        click.echo(json.dumps(document(brand, found), indent=2))
        return
    calendar_view(s.console, brand, basis, found)
    other = "local" if basis == "utc" else "utc"
    theirs = coverage_days(store, s.deployment, brand, other, days)
    held = sum(d["status"] != "missing" for d in theirs)
    if held:
        # The "one brand mixing local and UTC days": two datasets.
        s.console.print(
            f"note: {held} day(s) of this range are also in the {other}-time dataset "
            f"(--basis {other}); a query must choose one basis (time_basis)",
            style="yellow",
        )
