"""The CLI against the integration lab: moto (in-process), the fake analytiks API, and a
stand-in for the Lambda service (`local.lambda_service`).

What is real here: every S3, CloudFormation and STS call the CLI makes (moto), and
`run`'s `lambda.invoke` (boto3, signed, over HTTP to the stand-in's Invoke API,
which calls `app.handler` in this process). What is played: the Lambda service
itself (the stand-in), and its SQS event source mapping, one delivery at a time
(`CliLab.step`), which is also what a `--follow` loop's "sleep" does here, so a
followed run really progresses between two refreshes.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from click.testing import CliRunner, Result

from exporter.api_client import RetryPolicy
from local.lambda_service import LambdaService
from tests.integration.conftest import Lab, aws, make_lab
from wifi_export_cli.main import Services, cli

__all__ = ["aws", "cli_lab", "make_lab"]

FUNCTION = "wifi-export-test-exporter"
MARGIN_MS = 6_000
# One page per queue invocation, whatever the machine's load. A request goes out only
# with more than the client's connect timeout left, and a follow-on page only with that
# much left above the margin (run.walk), which a budget under MARGIN_MS + the connect
# timeout never has. The step's start, the token request and the first page share the
# rest, about 6 s: the demo's MARGIN_MS + 40 left them 1 s, which a CPU hog took (the
# token request "not sent", the step failed, a `step` delivered no page).
CONNECT_MS = int(RetryPolicy().connect_timeout_s * 1000)
HOP = MARGIN_MS + CONNECT_MS - 1
BIG = 600_000


@dataclass
class CliLab:
    lab: Lab
    service: LambdaService
    monkeypatch: pytest.MonkeyPatch
    log: io.StringIO  # what the function printed: its JSON logs and EMF metrics
    sleeps: list[float] = field(default_factory=list)

    def cli(
        self,
        *args: str,
        sleep: Callable[[float], None] | None = None,
        environ: dict[str, str] | None = None,
        **services: Any,
    ) -> Result:
        """`wifi-export ARGS` in-process; `--follow` loops deliver one message per tick."""
        env = dict(os.environ) if environ is None else environ
        obj = Services(environ=env, sleep=sleep or self.tick, **services)
        return CliRunner().invoke(cli, list(args), obj=obj, catch_exceptions=False)

    def tick(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.service.deliver_one()

    def step(self, count: int = 1) -> None:
        """Deliver `count` checkpoints; each must finish its step (one page each)."""
        for _ in range(count):
            done = self.service.deliver_one()
            assert done is not None, "the queue is empty"
            assert done, f"a step failed: {self.last_complaint()}"

    def last_complaint(self) -> str:
        """The function's last warning or error log line (why a delivery failed)."""
        lines = self.log.getvalue().splitlines()
        return next(
            (x for x in reversed(lines) if '"level":"WARNING"' in x or '"level":"ERROR"' in x),
            "none logged",
        )

    def start(self, event: dict[str, Any], budget_ms: int = BIG) -> str:
        """Start a run the way `wifi-export run` does (through the function)."""
        return str(self.lab.invoke(event, budget_ms)["runs"][0]["runId"])

    def finish(self) -> None:
        """Deliver until the queue is empty (the run ends)."""
        for _ in range(2_000):
            if self.service.deliver_one() is None:
                return
        raise AssertionError("the queue never emptied")

    def statuses(self) -> list[str]:
        return [n["body"]["status"] for n in self.lab.notifications()]


@pytest.fixture(autouse=True)
def terminal_width_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's width is its own choice when piped (160 columns), not the runner's:
    pytest-xdist's workers export COLUMNS=80, and so may a developer's shell. A test
    of the narrow layout sets COLUMNS itself."""
    monkeypatch.delenv("COLUMNS", raising=False)


@pytest.fixture
def cli_lab(make_lab: Callable[..., Lab], monkeypatch: pytest.MonkeyPatch) -> Iterator[CliLab]:
    import app  # noqa: PLC0415 -- after the lab configured the environment

    lab = make_lab(brands={1234: 120, 777: 3}, page_size=50)
    lab.configure(TIME_SAFETY_MARGIN_MS=str(MARGIN_MS), FUNCTION_NAME=FUNCTION)
    log = io.StringIO()
    service = LambdaService(
        app.handler,
        FUNCTION,
        invoke_budget_ms=BIG,
        queue_budget_ms=HOP,
        sqs=lab.sqs,
        queue_url=lab.queue_url,
        log=log,
    ).start(poll=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", service.url)
    try:
        yield CliLab(lab, service, monkeypatch, log)
    finally:
        service.stop()
