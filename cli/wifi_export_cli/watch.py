"""`status`, `runs` and `cancel`, and the follow loop `run --follow` shares."""

from __future__ import annotations

import contextlib
from typing import Any

import click

from exporter.redaction import printable
from exporter.run.records import is_run_id
from wifi_export_cli import render
from wifi_export_cli.deployment import CliError
from wifi_export_cli.errors import handle_errors
from wifi_export_cli.options import deployment_options, interval_option
from wifi_export_cli.runs import STATUSES, RunView
from wifi_export_cli.session import Session, open_session, print_json


def check_run_id(run_id: str) -> None:
    """A malformed run id is a usage error, found before the deployment is looked for."""
    if not is_run_id(run_id):
        raise CliError(
            f"{run_id[:80]!r} is not a run id",
            hint="run ids look like 20230701T033000000Z-b1234-9f2c41d0; "
            "`wifi-export runs` lists them",
            exit_code=2,
        )


@click.command()
@click.argument("run_ids", metavar="RUN_ID...", nargs=-1, required=True)
@click.option(
    "--follow", is_flag=True, help="Refresh until the run ends (exit 1 unless it succeeded)."
)
@interval_option
@deployment_options
@handle_errors
def status(
    *,
    run_ids: tuple[str, ...],
    follow: bool,
    interval: float,
    stack_name: str | None,
    region: str | None,
    profile: str | None,
    as_json: bool,
) -> None:
    """Show how far a run is: windows, rows, rate, ETA, last checkpoint, error."""
    for run_id in run_ids:  # a malformed id is a usage error, whatever the deployment
        check_run_id(run_id)
    session = open_session(stack_name, region, profile, as_json)
    views = [session.runs.status(run_id) for run_id in run_ids]
    if follow:
        follow_and_exit(session, views, interval)
    show(session, views)


def show(session: Session, views: list[RunView], *, as_list: bool = False) -> None:
    if session.json:
        one = len(views) == 1 and not as_list
        print_json(views[0].to_json() if one else [v.to_json() for v in views])
        return
    for n, view in enumerate(views):
        if n:
            session.console.print()
        session.console.print(render.run_panel(view))


def follow_and_exit(
    session: Session, views: list[RunView], interval: float, *, as_list: bool = False
) -> None:
    final = follow(session, views, interval)
    show(session, final, as_list=as_list)
    raise SystemExit(0 if all(v.status == "succeeded" for v in final) else 1)


def follow(session: Session, views: list[RunView], interval: float) -> list[RunView]:
    current = {v.run_id: v for v in views}
    display: contextlib.AbstractContextManager[Any] = (
        contextlib.nullcontext() if session.json else render.Follower(session.console)
    )
    with display as follower:
        while True:
            refresh(session, current)
            if follower is not None:
                for view in current.values():
                    follower.show(view)
            if all(v.final for v in current.values()):
                break
            session.services.sleep(interval)
    return list(current.values())


def refresh(session: Session, current: dict[str, RunView]) -> None:
    """Re-read every run not yet final (the plan's windows, as `run` got them, kept)."""
    for run_id, view in current.items():
        if not view.final:
            fresh = session.runs.status(run_id)
            fresh.windows = view.windows
            current[run_id] = fresh


@click.command("runs")
@click.option("--brand", type=click.IntRange(min=1), help="Only this brand.")
@click.option("--status", "state", type=click.Choice(STATUSES), help="Only runs in this state.")
@click.option("--last", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--ids", is_flag=True, help="Print only the run ids, one a line (for scripts).")
@deployment_options
@handle_errors
def list_runs(
    *,
    brand: int | None,
    state: str | None,
    last: int,
    ids: bool,
    stack_name: str | None,
    region: str | None,
    profile: str | None,
    as_json: bool,
) -> None:
    """List recent runs, newest first (from the history index, kept 400 days)."""
    session = open_session(stack_name, region, profile, as_json)
    views = session.runs.recent(brand=brand, status=state, last=last)
    if as_json:
        print_json([v.to_json() for v in views])
        return
    if ids:
        for view in views:
            click.echo(printable(view.run_id))
        return
    if not views:
        session.console.print("no runs found" + (" for these filters" if brand or state else ""))
        return
    session.console.print(render.runs_table(views, session.console.width, session.runs.skipped))


@click.command()
@click.argument("run_id", metavar="RUN_ID")
@deployment_options
@handle_errors
def cancel(
    *,
    run_id: str,
    stack_name: str | None,
    region: str | None,
    profile: str | None,
    as_json: bool,
) -> None:
    """Stop a run at its next step: nothing is committed, one `cancelled` notification.

    Refused (exit 1) once the run's commit has begun. Cancelling twice is harmless.
    """
    check_run_id(run_id)
    session = open_session(stack_name, region, profile, as_json)
    outcome = session.runs.cancel(run_id, session.aws.caller())
    message = outcome.message
    if outcome.outcome == "already-cancelled":
        # The run ended cancelled; windows still queued are dropped at their next
        # delivery, without exporting anything (docs/architecture.md, "Cancelling").
        message = (
            f"run {run_id} has ended cancelled: nothing was committed and its "
            "notification was sent; nothing more to do"
        )
    elif outcome.outcome == "already-requested":
        message += ": it is still running and stops at its next step"
    if as_json:
        view = session.runs.status(run_id)
        print_json({**view.to_json(), "cancel": outcome.outcome, "message": message})
        return
    session.console.print(message)
    if outcome.outcome != "already-cancelled":
        session.console.print(f"watch it:  wifi-export status {run_id} --follow", style="dim")
