"""The `wifi-export` commands (docs/contracts.md, "Operations CLI"): run, status, runs,
cancel, query, coverage.

Exit codes: 0 done (with `--follow`: the run succeeded); 1 the run failed or was
cancelled (`--follow`, or `run` seeing the API refuse it), or a cancel was refused;
2 a usage error (a flag the exporter would refuse among them, found before any
deployment is looked for); 3 anything else that went wrong (no deployment found,
unknown run, AWS errors, the deployment refusing the event). Errors are one line
plus a hint, on stderr.
"""

from __future__ import annotations

from collections.abc import Iterator

import click

from wifi_export_cli.coverage import coverage
from wifi_export_cli.event import on_demand_event
from wifi_export_cli.query import query
from wifi_export_cli.run_command import run
from wifi_export_cli.session import Services
from wifi_export_cli.watch import cancel, list_runs, status

__all__ = ["Services", "cli", "commands", "main", "on_demand_event"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="wifi-export", prog_name="wifi-export")
def cli() -> None:
    """Start, watch, list and cancel wifi-export runs; query what they exported and see
    which days the lake holds.

    The deployment comes from --stack-name (its outputs) or from the function's
    variables BUCKET_NAME, DATA_PREFIX, STATE_PREFIX (and FUNCTION_NAME for run);
    AWS_ENDPOINT_URL points it at an emulator (`make sandbox` prints the lines).
    docs/runbook.md has the recipes.
    """


for _command in (run, status, list_runs, cancel, query, coverage):
    cli.add_command(_command)


def main(argv: list[str] | None = None, services: Services | None = None) -> None:
    """The console script."""
    cli.main(args=argv, prog_name="wifi-export", obj=services or Services())


def commands() -> Iterator[str]:
    """The command names (tests hold them to the contract)."""
    yield from cli.commands
