"""What a command reaches the world through (the seams tests replace), and its session."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import click
from rich.console import Console

from wifi_export_cli import render
from wifi_export_cli.deployment import (
    Aws,
    Deployment,
    InvokerFactory,
    find_deployment,
    lambda_invoker,
)
from wifi_export_cli.runs import Runs


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


def services() -> Services:
    found: Services | None = click.get_current_context().find_object(Services)
    return found or Services()


def region_of(region: str | None, environ: Mapping[str, str]) -> str | None:
    """--region, else AWS_REGION (what Lambda and the AWS docs use), else boto3's own
    chain (AWS_DEFAULT_REGION, the profile): boto3 alone ignores AWS_REGION."""
    return region or environ.get("AWS_REGION", "").strip() or None


def console() -> Console:
    if sys.stdout.isatty():
        return render.PlainConsole()
    # Piped or captured: wide enough that run ids are never cut.
    return render.PlainConsole(width=int(os.environ.get("COLUMNS", "0") or 0) or 160)


def open_session(
    stack_name: str | None, region: str | None, profile: str | None, as_json: bool
) -> Session:
    seams = services()
    aws = seams.aws(region_of(region, seams.environ), profile)
    deployment = find_deployment(aws, stack_name, seams.environ)
    runs = Runs(deployment, aws.store(deployment), seams.clock)
    return Session(seams, aws, deployment, runs, as_json, console())


def print_json(document: Any) -> None:
    click.echo(json.dumps(document, indent=2, default=str))
