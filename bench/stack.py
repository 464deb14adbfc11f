"""The AWS side both benchmarks run against: moto in its own server process and the
deployment's resources on it, plus the environment the exporter is deployed with."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from typing import Any

from bench.common import PY, REGION, ROOT
from bench.procs import Processes
from local.resources import Deployment, clients, provision

DATA_PREFIX, STATE_PREFIX = "wifi/metrics", "wifi/_exports"


def base_env() -> dict[str, str]:
    """This process's environment with moto's credentials instead of any real ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_SESSION_TOKEN="testing",
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
        PYTHONUNBUFFERED="1",
    )
    return env


@dataclass
class Stack:
    moto: subprocess.Popen[bytes]
    moto_url: str
    base: dict[str, str]  # the environment of every process, AWS_ENDPOINT_URL included
    s3: Any
    sqs: Any
    bucket: str
    queue_url: str
    inbox_url: str
    deployment: Deployment

    def exporter_env(self, api_url: str, **settings: str) -> dict[str, str]:
        """The function's environment as the template sets it, with these settings."""
        return {
            **self.base,
            **self.deployment.environment(api_url, DATA_PREFIX, STATE_PREFIX),
            "TIME_BASIS": "utc",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_NAMESPACE": "WifiExport",
            "POWERTOOLS_SERVICE_NAME": "wifi-export",
            **settings,
        }


def start_stack(
    procs: Processes, base: dict[str, str], bucket: str, client_id: str, client_secret: str
) -> Stack:
    """Start moto, point this process at it and provision the deployment."""
    moto, moto_url = procs.server(
        lambda port: [PY, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=base,
        cwd=ROOT,
        name="moto",
        ready_path="/moto-api/",
    )
    os.environ.update({k: v for k, v in base.items() if k.startswith("AWS_")})
    os.environ["AWS_ENDPOINT_URL"] = moto_url
    make = clients(REGION, moto_url)
    deployment = provision(make, name=bucket, client_id=client_id, client_secret=client_secret)
    return Stack(
        moto=moto,
        moto_url=moto_url,
        base={**base, "AWS_ENDPOINT_URL": moto_url},
        s3=make("s3"),
        sqs=make("sqs"),
        bucket=deployment.bucket,
        queue_url=deployment.queue_url,
        inbox_url=deployment.inbox_url,
        deployment=deployment,
    )
