"""`make sandbox`: the local stack, up in the foreground until Ctrl-C, for the `wifi-export` CLI.

The moto server and the fake analytiks API as processes, the deployment's
resources in moto, and the Lambda stand-in (`local.lambda_service`: the Invoke
API and the queue's poller, running the real handler in this process). It prints
the `export ...` lines a second shell needs and writes them to `.sandbox.env`
(removed on exit); after `set -a; . ./.sandbox.env; set +a` every `wifi-export`
command of the README works against brands 1234 and 777 of the fake API.
`local_stack` is the same stack for `make demo` and the tests.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "functions" / "exporter"))
# Powertools warns when an invocation added no metric (a message that found its run
# already finished): noise for a person watching.
warnings.filterwarnings("ignore", message="No application metrics to publish")

from local import services  # noqa: E402
from local.lambda_service import LambdaService  # noqa: E402
from local.resources import Deployment, clients, provision  # noqa: E402

BRAND, OTHER_BRAND = 1234, 777
BRANDS = f"{BRAND}:120,{OTHER_BRAND}:8"  # brand:locations of the fake API
PAGE_SIZE = 30
REGION = "us-east-1"
DATA_PREFIX, STATE_PREFIX = "wifi/metrics", "wifi/_exports"
MARGIN_MS = 6_000
# One page of the fake API, then the budget is below the safety margin: the
# invocation flushes what it has and hands over to the next one through SQS
# (every window takes several checkpoints: progress a person can watch).
SMALL_BUDGET_MS = MARGIN_MS + 40
ENV_FILE = ROOT / ".sandbox.env"


@dataclass
class Stack:
    moto_url: str
    api_url: str
    deployment: Deployment
    lambda_service: LambdaService
    function_name: str

    def cli_environment(self) -> dict[str, str]:
        """What a shell running `wifi-export` needs: where AWS (moto) and Lambda (the
        stand-in) are, dummy credentials, and the function's own variables."""
        return {
            "AWS_ENDPOINT_URL": self.moto_url,
            "AWS_ENDPOINT_URL_LAMBDA": self.lambda_service.url,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "sandbox",
            "AWS_SECRET_ACCESS_KEY": "sandbox",
            "BUCKET_NAME": self.deployment.bucket,
            "DATA_PREFIX": DATA_PREFIX,
            "STATE_PREFIX": STATE_PREFIX,
            "FUNCTION_NAME": self.function_name,
        }

    def export_lines(self) -> list[str]:
        lines = ["unset AWS_PROFILE AWS_SESSION_TOKEN"]  # a real profile would win otherwise
        lines += [f"export {k}={shlex.quote(v)}" for k, v in self.cli_environment().items()]
        return lines


@contextlib.contextmanager
def local_stack(
    name: str = "wifi-export-sandbox", *, log: IO[str], budget_ms: int = SMALL_BUDGET_MS
) -> Iterator[Stack]:
    """The whole local stack; the exporter runs in this process (its log goes to `log`)."""
    with (
        services.moto_server() as endpoint,
        services.fake_api("--brands", BRANDS, "--page-size", str(PAGE_SIZE)) as api,
    ):
        os.environ.update(
            {
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_DEFAULT_REGION": REGION,
                "AWS_REGION": REGION,
                "AWS_ACCESS_KEY_ID": "sandbox",
                "AWS_SECRET_ACCESS_KEY": "sandbox",
                "POWERTOOLS_TRACE_DISABLED": "true",
                "POWERTOOLS_SERVICE_NAME": "wifi-export",
                "POWERTOOLS_METRICS_NAMESPACE": "WifiExport",
                "POWERTOOLS_LOG_LEVEL": "INFO",
            }
        )
        os.environ.pop("AWS_PROFILE", None)
        deployment = provision(
            clients(REGION), name=name, client_id="demo-client", client_secret="demo-secret"
        )
        os.environ.update(
            deployment.environment(api, DATA_PREFIX, STATE_PREFIX),
            BRAND_IDS=f"{BRAND},{OTHER_BRAND}",
            TIME_SAFETY_MARGIN_MS=str(MARGIN_MS),
        )
        import boto3  # noqa: PLC0415

        import app  # noqa: PLC0415 -- after the environment is configured

        function = f"{name}-exporter"
        lambda_service = LambdaService(
            app.handler,
            function,
            invoke_budget_ms=budget_ms,
            queue_budget_ms=budget_ms,
            sqs=boto3.client("sqs", region_name=REGION),
            queue_url=deployment.queue_url,
            log=log,
        )
        with lambda_service:
            yield Stack(endpoint, api, deployment, lambda_service, function)


def _stop_on_sigterm() -> threading.Event:
    """Ctrl-C raises KeyboardInterrupt; SIGTERM (a test, a process manager) does the same."""
    stop = threading.Event()

    def handle(_signum: int, _frame: FrameType | None) -> Any:
        stop.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handle)
    return stop


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--env-file", type=Path, default=ENV_FILE, help="default: .sandbox.env")
    args = parser.parse_args(argv)
    stop = _stop_on_sigterm()
    # One log per sandbox: two sandboxes (or a test's) never truncate each other's.
    log_path = Path(tempfile.gettempdir()) / f"wifi-export-sandbox-{os.getpid()}.log"
    env_file: Path = args.env_file
    try:
        with log_path.open("w") as log, local_stack(log=log) as stack:
            lines = stack.export_lines()
            env_file.write_text("\n".join(lines) + "\n")
            print(f"moto server      {stack.moto_url}")
            print(f"fake analytiks   {stack.api_url} (brands {BRAND} and {OTHER_BRAND})")
            print(f"Lambda stand-in  {stack.lambda_service.url} ({stack.function_name})")
            print(f"function log     {log_path}")
            print()
            print(f"In another shell (also written to {env_file.name}):")
            print()
            for line in lines:
                print(f"  {line}")
            print()
            print(f"  or:  set -a; . ./{env_file.name}; set +a; . .venv/bin/activate")
            print(f"  then: wifi-export run --brand {BRAND} --from 2023-06-01 --to 2023-06-12")
            print()
            print("The sandbox stays up until Ctrl-C.", flush=True)
            while not stop.wait(3600):
                pass
    except KeyboardInterrupt:
        pass
    finally:
        env_file.unlink(missing_ok=True)
    print("sandbox stopped: moto server, fake API and Lambda stand-in are gone", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
