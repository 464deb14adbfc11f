"""Every expected failure as one line and a hint on stderr, and an exit code.

The hint is chosen by the error's type (and, for AWS, its error code), never by
reading the message: exit 2 a flag the exporter would refuse, 3 anything else
(docs/contracts.md, "Operations CLI").
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import click

from exporter.redaction import printable
from wifi_export_cli.deployment import CliError
from wifi_export_cli.event import DeploymentTooOld, EventRefused, FlagError

P = ParamSpec("P")
R = TypeVar("R")

FLAG_HINT = "fix {flags} (`wifi-export run --help`); nothing was started"
UPGRADE_HINT = "the deployment predates {flags}: upgrade it (`make deploy`), or run without {flags}"
_CLIENT_HINTS = {
    "AccessDenied": "your credentials lack a permission this command needs (docs/runbook.md)",
    "AccessDeniedException": "your credentials lack a permission this command needs "
    "(docs/runbook.md)",
    "UnauthorizedOperation": "your credentials lack a permission this command needs "
    "(docs/runbook.md)",
    "NoSuchBucket": "the bucket does not exist: check BUCKET_NAME or --stack-name",
    "ResourceNotFoundException": "check FUNCTION_NAME or --stack-name",
}


def fail(message: str, hint: str | None, code: int) -> None:
    # Errors quote S3 and the function's answer: plain text, like everything shown.
    click.echo(f"wifi-export: {printable(message)}", err=True)
    if hint:
        click.echo(f"  hint: {printable(hint)}", err=True)
    raise SystemExit(code)


def _flags(flags: tuple[str, ...]) -> str:
    return " / ".join(flags) if flags else "the flag it names"


def handle_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn every expected failure into one line and a hint on stderr, and an exit code."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from botocore.exceptions import (  # noqa: PLC0415 -- keeps `--help` fast
            BotoCoreError,
            ClientError,
            EndpointConnectionError,
            NoCredentialsError,
            NoRegionError,
            ProfileNotFound,
        )

        try:
            return command(*args, **kwargs)
        except FlagError as exc:
            fail(exc.message, FLAG_HINT.format(flags=_flags(exc.flags)), 2)
        except DeploymentTooOld as exc:
            fail(
                f"the deployment does not know {_flags(exc.flags)}",
                UPGRADE_HINT.format(flags=_flags(exc.flags)),
                3,
            )
        except EventRefused as exc:
            fail(
                f"the function refused the event: {exc.message}",
                FLAG_HINT.format(flags=_flags(exc.flags)) + " (a limit of this deployment)",
                3,
            )
        except CliError as exc:
            fail(exc.message, exc.hint, exc.exit_code)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code", "?")
            hint = _CLIENT_HINTS.get(
                code, "check the credentials (AWS_PROFILE), AWS_REGION and the deployment"
            )
            fail(f"AWS {exc.operation_name} failed: {code}: {error.get('Message', '')}", hint, 3)
        except NoCredentialsError:
            fail(
                "no AWS credentials found",
                "set AWS_PROFILE (or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)",
                3,
            )
        except NoRegionError:
            fail("no AWS region configured", "pass --region or set AWS_REGION", 3)
        except ProfileNotFound as exc:
            fail(str(exc), "check --profile / AWS_PROFILE (~/.aws/config)", 3)
        except EndpointConnectionError as exc:
            fail(
                f"cannot reach AWS: {exc}",
                "check the network, AWS_REGION and AWS_ENDPOINT_URL",
                3,
            )
        except BotoCoreError as exc:
            fail(f"AWS: {exc}", "check the credentials, AWS_REGION and AWS_ENDPOINT_URL", 3)
        except KeyboardInterrupt:
            fail("interrupted: stopped watching; the run itself goes on", None, 130)
        raise AssertionError("unreachable")  # pragma: no cover

    return wrapper
