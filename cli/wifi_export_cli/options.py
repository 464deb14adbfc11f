"""Options several commands share, declared once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import click

P = ParamSpec("P")
R = TypeVar("R")


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


interval_option = click.option(
    "--interval",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    help="Seconds between two refreshes.",
)


def id_list(kind: type) -> Callable[[click.Context, click.Parameter, str | None], Any]:
    """A comma-separated list of `kind`s; the error names the flag."""

    def parse(_ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
        if value is None:
            return None
        items = [v.strip() for v in value.split(",") if v.strip()]
        if not items:
            raise click.BadParameter("expected a comma-separated list", param=param)
        try:
            return [kind(v) for v in items]
        except ValueError:
            raise click.BadParameter(
                f"expected {kind.__name__}s, got {value!r}", param=param
            ) from None

    return parse
