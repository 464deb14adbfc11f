"""The `wifi-export` commands (DESIGN §7): run, status, runs, cancel.

Exit codes: 0 done (with `--follow`: the run succeeded); 1 the run failed or was
cancelled (`--follow`), or a cancel was refused; 2 a usage error; 3 anything else
that went wrong (no deployment found, unknown run, AWS errors, the function
refusing the event). Errors are one line plus a hint, on stderr.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

import click
from rich.console import Console

from exporter.redaction import printable
from wifi_export_cli import render
from wifi_export_cli.deployment import (
    Aws,
    CliError,
    Deployment,
    InvokerFactory,
    find_deployment,
    lambda_invoker,
)
from wifi_export_cli.runs import STATUSES, Runs, RunView

P = ParamSpec("P")
R = TypeVar("R")


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Services:
    """What the commands reach the world through; tests replace parts (the seams)."""

    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    aws: Callable[[str | None, str | None], Aws] = Aws
    invoker: InvokerFactory = lambda_invoker
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], datetime] = _utc_now


@dataclass
class Session:
    """One command's view of the deployment."""

    services: Services
    aws: Aws
    deployment: Deployment
    runs: Runs
    json: bool
    console: Console


def _console() -> Console:
    if sys.stdout.isatty():
        return render.PlainConsole()
    # Piped or captured: wide enough that run ids are never cut.
    return render.PlainConsole(width=int(os.environ.get("COLUMNS", "0") or 0) or 160)


def _session(
    stack_name: str | None, region: str | None, profile: str | None, as_json: bool
) -> Session:
    services: Services = click.get_current_context().find_object(Services) or Services()
    aws = services.aws(region, profile)
    deployment = find_deployment(aws, stack_name, services.environ)
    runs = Runs(deployment, aws.store(deployment), services.clock)
    return Session(services, aws, deployment, runs, as_json, _console())


def _fail(message: str, hint: str | None, code: int) -> None:
    # Errors quote S3 and the function's answer: plain text, like everything shown.
    click.echo(f"wifi-export: {printable(message)}", err=True)
    if hint:
        click.echo(f"  hint: {printable(hint)}", err=True)
    raise SystemExit(code)


def handle_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn every expected failure into one line and a hint on stderr, and an exit code."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from botocore.exceptions import (  # noqa: PLC0415
            BotoCoreError,
            ClientError,
            EndpointConnectionError,
            NoCredentialsError,
            NoRegionError,
            ProfileNotFound,
        )

        try:
            return command(*args, **kwargs)
        except CliError as exc:
            _fail(exc.message, exc.hint, exc.exit_code)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code", "?")
            hint = "check the credentials (AWS_PROFILE), AWS_REGION and the deployment"
            if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation"):
                hint = "your credentials lack a permission this command needs (docs/runbook.md)"
            elif code in ("NoSuchBucket",):
                hint = "the bucket does not exist: check BUCKET_NAME or --stack-name"
            elif code in ("ResourceNotFoundException",):
                hint = "check FUNCTION_NAME or --stack-name"
            _fail(f"AWS {exc.operation_name} failed: {code}: {error.get('Message', '')}", hint, 3)
        except NoCredentialsError:
            _fail(
                "no AWS credentials found",
                "set AWS_PROFILE (or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)",
                3,
            )
        except NoRegionError:
            _fail("no AWS region configured", "pass --region or set AWS_REGION", 3)
        except ProfileNotFound as exc:
            _fail(str(exc), "check --profile / AWS_PROFILE (~/.aws/config)", 3)
        except EndpointConnectionError as exc:
            _fail(
                f"cannot reach AWS: {exc}",
                "check the network, AWS_REGION and AWS_ENDPOINT_URL",
                3,
            )
        except BotoCoreError as exc:
            _fail(f"AWS: {exc}", "check the credentials, AWS_REGION and AWS_ENDPOINT_URL", 3)
        except KeyboardInterrupt:
            _fail("interrupted: stopped watching; the run itself goes on", None, 130)
        raise AssertionError("unreachable")  # pragma: no cover

    return wrapper


def deployment_options(command: Callable[P, R]) -> Callable[P, R]:
    for option in reversed(
        (
            click.option(
                "--stack-name",
                metavar="NAME",
                help="Find the deployment from this CloudFormation stack's outputs "
                "(else BUCKET_NAME, DATA_PREFIX, STATE_PREFIX, FUNCTION_NAME).",
            ),
            click.option("--region", metavar="REGION", help="AWS region (else AWS_REGION)."),
            click.option("--profile", metavar="PROFILE", help="AWS profile (else AWS_PROFILE)."),
            click.option(
                "--json", "as_json", is_flag=True, help="Print one JSON document instead."
            ),
        )
    ):
        command = option(command)
    return command


def _print_json(document: Any) -> None:
    click.echo(json.dumps(document, indent=2, default=str))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="wifi-export", prog_name="wifi-export")
def cli() -> None:
    """Start, watch, list and cancel wifi-export runs.

    The deployment comes from --stack-name (its outputs) or from the function's
    variables BUCKET_NAME, DATA_PREFIX, STATE_PREFIX (and FUNCTION_NAME for run);
    AWS_ENDPOINT_URL points it at an emulator. docs/runbook.md has the recipes.
    """


# -- run -----------------------------------------------------------------------------


def _id_list(kind: type) -> Callable[[click.Context, click.Parameter, str | None], Any]:
    def parse(_ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
        if value is None:
            return None
        items = [v.strip() for v in value.split(",") if v.strip()]
        if not items:
            raise click.BadParameter("expected a comma-separated list", param=param)
        try:
            return [kind(v) for v in items]
        except ValueError:
            raise click.BadParameter(f"expected {kind.__name__}s, got {value!r}") from None

    return parse


def on_demand_event(
    brands: tuple[int, ...],
    start: str,
    end: str,
    *,
    local_time: bool = False,
    locations: list[int] | None = None,
    reference_numbers: list[str] | None = None,
    zone: str | None = None,
    zero_fill: bool = False,
    skip_unauthorized: bool = False,
) -> dict[str, Any]:
    """The on-demand event (docs/contracts.md, "Events"; selections: DESIGN §1, §2a)."""
    event: dict[str, Any] = (
        {"brandId": brands[0]} if len(brands) == 1 else {"brandIds": list(brands)}
    )
    event.update({"startDate": start, "endDate": end})
    if local_time:
        event["timeBasis"] = "local"
    if locations is not None:
        event["locations"] = locations
    if reference_numbers is not None:
        event["referenceNumbers"] = reference_numbers
    if zone is not None:
        event["zoneId"] = zone
    if zero_fill:
        event["zeroFill"] = True
    if skip_unauthorized:
        event["skipUnauthorized"] = True
    return event


@cli.command()
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
    "--locations", callback=_id_list(int), metavar="IDS", help="Selection: location ids 1,2,3."
)
@click.option(
    "--reference-numbers",
    callback=_id_list(str),
    metavar="REFS",
    help="Selection: store reference numbers A1,B2.",
)
@click.option("--zone", metavar="ZONE", help="Selection: one zone id.")
@click.option("--zero-fill", is_flag=True, help="With a selection: zeros for empty buckets (v4).")
@click.option(
    "--skip-unauthorized",
    is_flag=True,
    help="With a selection: export the authorized ids, list the refused ones (v2).",
)
@click.option("--local-time", is_flag=True, help="Days in each location's local time.")
@click.option("--follow", is_flag=True, help="Then watch it like `status --follow`.")
@click.option("--interval", type=click.FloatRange(min=0), default=5.0, show_default=True)
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
    follow: bool,
    interval: float,
    stack_name: str | None,
    region: str | None,
    profile: str | None,
    as_json: bool,
) -> None:
    """Start an export of whole days, inclusive (invokes the function on demand)."""
    session = _session(stack_name, region, profile, as_json)
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
    function = session.deployment.need_function()
    answer = session.services.invoker(session.aws)(function, event)
    if isinstance(answer, dict) and answer.get("error"):
        hint = "fix the flag it names (`wifi-export run --help`); nothing was started"
        message = str(answer.get("message", ""))
        if any(f in message for f in ("locations", "referenceNumbers", "zoneId", "zeroFill")):
            hint = "if the deployment does not know selections yet, upgrade it (`make deploy`)"
        raise CliError(f"the function refused the event: {answer['error']}: {message}", hint)
    started = answer.get("runs") if isinstance(answer, dict) else None
    if not isinstance(started, list) or not started:
        raise CliError(f"the function answered without a run: {str(answer)[:200]}")
    views = []
    for plan in started:
        view = session.runs.status(str(plan["runId"]))
        view.windows = plan.get("windows")
        views.append(view)
    if follow:
        _follow_and_exit(session, views, interval, as_list=True)
    if as_json:
        _print_json([v.to_json() for v in views])
        return
    for view in views:
        session.console.print(render.started_line(view))
    ids = " ".join(v.run_id for v in views)
    session.console.print(f"watch it:  wifi-export status {ids} --follow", style="dim")


# -- status ----------------------------------------------------------------------------


@cli.command()
@click.argument("run_ids", metavar="RUN_ID...", nargs=-1, required=True)
@click.option(
    "--follow", is_flag=True, help="Refresh until the run ends (exit 1 unless it succeeded)."
)
@click.option("--interval", type=click.FloatRange(min=0), default=5.0, show_default=True)
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
    session = _session(stack_name, region, profile, as_json)
    views = [session.runs.status(run_id) for run_id in run_ids]
    if follow:
        _follow_and_exit(session, views, interval)
    _show(session, views)


def _show(session: Session, views: list[RunView], *, as_list: bool = False) -> None:
    if session.json:
        one = len(views) == 1 and not as_list
        _print_json(views[0].to_json() if one else [v.to_json() for v in views])
        return
    for n, view in enumerate(views):
        if n:
            session.console.print()
        session.console.print(render.run_panel(view))


def _follow_and_exit(
    session: Session, views: list[RunView], interval: float, *, as_list: bool = False
) -> None:
    final = _follow(session, views, interval)
    _show(session, final, as_list=as_list)
    raise SystemExit(0 if all(v.status == "succeeded" for v in final) else 1)


def _follow(session: Session, views: list[RunView], interval: float) -> list[RunView]:
    current = {v.run_id: v for v in views}
    display: contextlib.AbstractContextManager[Any] = (
        contextlib.nullcontext() if session.json else render.Follower(session.console)
    )
    with display as follower:
        while True:
            for run_id, view in current.items():
                if not view.final:
                    fresh = session.runs.status(run_id)
                    fresh.windows = view.windows
                    current[run_id] = fresh
                if follower is not None:
                    follower.show(current[run_id])
            if all(v.final for v in current.values()):
                break
            session.services.sleep(interval)
    return list(current.values())


# -- runs ------------------------------------------------------------------------------


@cli.command("runs")
@click.option("--brand", type=click.IntRange(min=1), help="Only this brand.")
@click.option("--status", "state", type=click.Choice(STATUSES), help="Only runs in this state.")
@click.option("--last", type=click.IntRange(min=1), default=20, show_default=True)
@deployment_options
@handle_errors
def list_runs(
    *,
    brand: int | None,
    state: str | None,
    last: int,
    stack_name: str | None,
    region: str | None,
    profile: str | None,
    as_json: bool,
) -> None:
    """List recent runs, newest first (from the history index, kept 400 days)."""
    session = _session(stack_name, region, profile, as_json)
    views = session.runs.recent(brand=brand, status=state, last=last)
    if as_json:
        _print_json([v.to_json() for v in views])
        return
    if not views:
        session.console.print("no runs found" + (" for these filters" if brand or state else ""))
        return
    session.console.print(render.runs_table(views, session.runs.skipped))


# -- cancel ----------------------------------------------------------------------------


@cli.command()
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
    session = _session(stack_name, region, profile, as_json)
    outcome = session.runs.cancel(run_id, session.aws.caller())
    if as_json:
        view = session.runs.status(run_id)
        _print_json({**view.to_json(), "cancel": outcome.outcome, "message": outcome.message})
        return
    session.console.print(outcome.message)
    if outcome.outcome != "already-cancelled":
        session.console.print(f"watch it:  wifi-export status {run_id} --follow", style="dim")


def main(argv: list[str] | None = None, services: Services | None = None) -> None:
    """The console script."""
    cli.main(args=argv, prog_name="wifi-export", obj=services or Services())


def commands() -> Iterator[str]:
    """The command names (tests hold them to DESIGN §7)."""
    yield from cli.commands
