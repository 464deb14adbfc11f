"""Where the deployment is, and the AWS clients to reach it.

`--stack-name NAME` reads the stack's outputs (`BucketName`, `DataPrefix`,
`StatePrefix`, `FunctionName`); without it the function's own variables are
read from the environment (`BUCKET_NAME`, `DATA_PREFIX`, `STATE_PREFIX`, and
`FUNCTION_NAME` for `run`). boto3 itself honours `AWS_ENDPOINT_URL` (and
`AWS_ENDPOINT_URL_<SERVICE>`), so every command works against an emulator.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from exporter.aws import S3Store

DEFAULT_DATA_PREFIX = "wifi/metrics"  # the function's defaults (docs/contracts.md)
DEFAULT_STATE_PREFIX = "wifi/_exports"
STACK_OUTPUTS = ("BucketName", "DataPrefix", "StatePrefix", "FunctionName")


class CliError(Exception):
    """One readable line for stderr, a hint for what to do, and the exit code."""

    def __init__(self, message: str, hint: str | None = None, exit_code: int = 3) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.exit_code = exit_code


@dataclass(frozen=True)
class Deployment:
    bucket: str
    data_prefix: str
    state_prefix: str
    function_name: str | None
    source: str  # where it was found, for messages

    def need_function(self) -> str:
        if not self.function_name:
            raise CliError(
                f"no function to invoke: the deployment from {self.source} names none",
                hint="set FUNCTION_NAME (the exporter function's name or ARN), or use "
                "--stack-name NAME",
            )
        return self.function_name


class Aws:
    """boto3 clients of one session, created on first use."""

    def __init__(self, region: str | None = None, profile: str | None = None) -> None:
        self._region = region
        self._profile = profile
        self._clients: dict[str, Any] = {}

    @functools.cached_property
    def session(self) -> Any:
        import boto3  # noqa: PLC0415 -- keeps `wifi-export --help` fast

        return boto3.session.Session(region_name=self._region, profile_name=self._profile)

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(service)
        return self._clients[service]

    def store(self, deployment: Deployment) -> S3Store:
        """The exporter's own S3 adapter (conditional puts included) on our client."""
        return S3Store(deployment.bucket, client=self.client("s3"))

    def caller(self) -> str:
        """Who is asking (recorded with a cancel request)."""
        try:
            arn: str = self.client("sts").get_caller_identity()["Arn"]
        except Exception:  # an audit nicety, never a reason to refuse a cancel
            import getpass  # noqa: PLC0415

            return f"user:{getpass.getuser()}"
        return arn


def find_deployment(aws: Aws, stack_name: str | None, environ: Mapping[str, str]) -> Deployment:
    if stack_name:
        return _from_stack(aws, stack_name)
    bucket = environ.get("BUCKET_NAME", "").strip()
    if not bucket:
        raise CliError(
            "no deployment found: neither --stack-name nor BUCKET_NAME is given",
            hint="pass --stack-name NAME (the stack `make deploy` created), or set BUCKET_NAME, "
            "DATA_PREFIX, STATE_PREFIX (and FUNCTION_NAME for `run`) as the function has them",
        )
    return Deployment(
        bucket=bucket,
        data_prefix=_prefix(environ.get("DATA_PREFIX"), DEFAULT_DATA_PREFIX),
        state_prefix=_prefix(environ.get("STATE_PREFIX"), DEFAULT_STATE_PREFIX),
        function_name=environ.get("FUNCTION_NAME", "").strip() or None,
        source="the environment (BUCKET_NAME)",
    )


def _prefix(value: str | None, default: str) -> str:
    return (value or "").strip().strip("/") or default


def _from_stack(aws: Aws, stack_name: str) -> Deployment:
    from botocore.exceptions import ClientError  # noqa: PLC0415

    try:
        stacks = aws.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        error = exc.response.get("Error", {})
        if error.get("Code") == "ValidationError" and "does not exist" in error.get("Message", ""):
            raise CliError(
                f"no deployment found: stack {stack_name!r} does not exist in this account "
                "and region",
                hint="check --stack-name, AWS_REGION and AWS_PROFILE (`make deploy` names the "
                "stack in samconfig.toml)",
            ) from None
        raise
    outputs = {o["OutputKey"]: o.get("OutputValue", "") for o in stacks[0].get("Outputs", [])}
    missing = [name for name in STACK_OUTPUTS if not outputs.get(name)]
    if missing:
        raise CliError(
            f"stack {stack_name!r} has no output {', '.join(missing)}: it predates the CLI",
            hint="redeploy it with this version (`make deploy`), or set BUCKET_NAME, "
            "DATA_PREFIX, STATE_PREFIX and FUNCTION_NAME instead of --stack-name",
        )
    return Deployment(
        bucket=outputs["BucketName"],
        data_prefix=outputs["DataPrefix"].strip("/"),
        state_prefix=outputs["StatePrefix"].strip("/"),
        function_name=outputs["FunctionName"],
        source=f"stack {stack_name}",
    )


class Invoker(Protocol):
    """Calls the exporter with an on-demand event and returns its answer (a seam for tests)."""

    def __call__(self, function_name: str, event: dict[str, Any]) -> Any: ...


def lambda_invoker(aws: Aws) -> Invoker:
    """The real thing: a synchronous `lambda:InvokeFunction`."""

    def invoke(function_name: str, event: dict[str, Any]) -> Any:
        answer = aws.client("lambda").invoke(
            FunctionName=function_name,
            InvocationType="RequestResponse",
            Payload=json.dumps(event).encode(),
        )
        payload = answer["Payload"].read()
        try:
            document = json.loads(payload) if payload else None
        except json.JSONDecodeError:
            document = None
        if answer.get("FunctionError"):
            detail = document if isinstance(document, dict) else {}
            kind = detail.get("errorType", answer["FunctionError"])
            message = str(detail.get("errorMessage", payload[:200].decode(errors="replace")))
            raise CliError(
                f"the function failed: {kind}: {message}",
                hint="its logs say more (`make logs`); the run, if one started, is in "
                "`wifi-export runs`",
            )
        return document

    return invoke


InvokerFactory = Callable[[Aws], Invoker]
