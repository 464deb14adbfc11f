"""`wifi-export run`: check the flags, invoke the function, wait for the API's first answer."""

from __future__ import annotations

from typing import Any

import click

from wifi_export_cli import coverage as coverage_cli
from wifi_export_cli import render
from wifi_export_cli.deployment import CliError
from wifi_export_cli.errors import handle_errors
from wifi_export_cli.event import check_flags, on_demand_event, refusal
from wifi_export_cli.options import deployment_options, id_list, interval_option
from wifi_export_cli.runs import RunView
from wifi_export_cli.session import Session, open_session, print_json, services
from wifi_export_cli.watch import follow_and_exit, refresh

# Without --follow, `run` waits this long at most for each run's first API answer
# (a page, or a refusal such as an unknown brand), polling at most this often.
FIRST_ANSWER_WAIT_S = 120.0
FIRST_ANSWER_POLL_S = 1.0
FIRST_ANSWER_MIN_POLL_S = 0.2  # `--interval 0` must not spin on S3 for two minutes


@click.command()
@click.option(
    "--brand",
    "brands",
    type=click.IntRange(min=1),
    multiple=True,
    required=True,
    help="Brand id (repeat for several brands, one run each).",
)
@click.option("--from", "start", required=True, metavar="DATE", help="First day, YYYY-MM-DD.")
@click.option("--to", "end", required=True, metavar="DATE", help="Last day (inclusive).")
@click.option(
    "--locations", callback=id_list(int), metavar="IDS", help="Selection: location ids 1,2,3."
)
@click.option(
    "--reference-numbers",
    callback=id_list(str),
    metavar="REFS",
    help="Selection: store reference numbers A1,B2.",
)
@click.option("--zone", metavar="ZONE", help="Selection: one zone id (a UUID).")
@click.option("--zero-fill", is_flag=True, help="With a selection: zeros for empty buckets (v4).")
@click.option(
    "--skip-unauthorized",
    is_flag=True,
    help="With a selection: export the authorized ids, list the refused ones (v2).",
)
@click.option("--local-time", is_flag=True, help="Days in each location's local time.")
@click.option(
    "--missing", is_flag=True, help="Only the days `coverage` calls missing: a run per gap."
)
@click.option("--follow", is_flag=True, help="Then watch it like `status --follow`.")
@click.option(
    "--no-wait",
    is_flag=True,
    help="Return with the plan, before the API's first answer (a refused brand "
    "then shows only in `status`).",
)
@interval_option
@deployment_options
@handle_errors
def run(
    *,
    brands: tuple[int, ...],
    start: str,
    end: str,
    locations: list[int] | None,
    reference_numbers: list[str] | None,
    zone: str | None,
    zero_fill: bool,
    skip_unauthorized: bool,
    local_time: bool,
    missing: bool,
    follow: bool,
    no_wait: bool,
    interval: float,
    stack_name: str | None,
    region: str | None,
    profile: str | None,
    as_json: bool,
) -> None:
    """Start an export of whole days, inclusive (invokes the function on demand).

    Without --follow it waits for each run's first answer from the API and exits
    1 if a run failed there (an unknown brand, refused ids).
    """
    event = on_demand_event(
        brands,
        start,
        end,
        local_time=local_time,
        locations=locations,
        reference_numbers=reference_numbers,
        zone=zone,
        zero_fill=zero_fill,
        skip_unauthorized=skip_unauthorized,
    )
    check_flags(event, services().clock())
    if missing and (locations or reference_numbers or zone):
        raise click.UsageError("--missing re-exports whole days: it takes no selection")
    days = coverage_cli.check_range(start, end) if missing else None
    session = open_session(stack_name, region, profile, as_json)
    events = [event]
    if days is not None:  # --missing: one run per gap of the lake's coverage
        store = session.aws.store(session.deployment)
        events = coverage_cli.missing_events(
            store, session.deployment, brands, days, local_time=local_time
        )
        if not events:
            session.console.print("nothing is missing in that range: no run started")
            return
    views = [view for e in events for view in _start(session, e)]
    if follow:
        follow_and_exit(session, views, interval, as_list=True)
    if not no_wait:
        poll_s = min(max(interval, FIRST_ANSWER_MIN_POLL_S), FIRST_ANSWER_POLL_S)
        views = _first_answers(session, views, poll_s)
    failed = [v for v in views if v.final and v.status != "succeeded"]
    if as_json:
        print_json([v.to_json() for v in views])
    else:
        _print_started(session, views)
    if failed:
        raise SystemExit(1)


def _start(session: Session, event: dict[str, Any]) -> list[RunView]:
    function = session.deployment.need_function()
    answer = session.services.invoker(session.aws)(function, event)
    if isinstance(answer, dict) and answer.get("error") == "InvalidEvent":
        raise refusal(answer)
    if isinstance(answer, dict) and answer.get("error"):
        raise CliError(
            f"the function refused the event: {answer['error']}: {answer.get('message')}"
        )
    started = answer.get("runs") if isinstance(answer, dict) else None
    if not isinstance(started, list) or not started:
        raise CliError(f"the function answered without a run: {str(answer)[:200]}")
    views = []
    for plan in started:
        view = session.runs.status(str(plan["runId"]))
        view.windows = plan.get("windows")
        views.append(view)
    return views


def _answered(view: RunView) -> bool:
    return view.final or bool(view.pages or view.windows_done or view.last_checkpoint)


def _first_answers(session: Session, views: list[RunView], poll_s: float) -> list[RunView]:
    """Refresh until every run has had an answer from the API (or the wait is over)."""
    current = {v.run_id: v for v in views}
    waited = 0.0
    while not all(_answered(v) for v in current.values()) and waited < FIRST_ANSWER_WAIT_S:
        session.services.sleep(poll_s)
        waited += poll_s
        refresh(session, current)
    return list(current.values())


def _print_started(session: Session, views: list[RunView]) -> None:
    for view in views:
        session.console.print(render.started_line(view))
        if view.final:
            error = f": {view.error}" if view.error else ""
            session.console.print(f"  it has {view.status}{error}", markup=False, highlight=False)
    ids = " ".join(v.run_id for v in views)
    session.console.print(f"watch it:  wifi-export status {ids} --follow", style="dim")
