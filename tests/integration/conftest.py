"""A lab per test: moto (in-process mock_aws), the fake analytiks API over real
HTTP, the deployment's resources, and the Lambda handler invoked the way the
service would invoke it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core.botocore_stubber import BotocoreStubber

from local.fake_analytiks import FakeAnalytiks, expected_rows
from local.harness import DrainReport, FakeContext, drain, export_table
from local.resources import clients, provision, read_notifications

CLIENT_SECRET = "s3cr3t-Sh0uld-N3ver-Leak-7f1d"
REGION = "us-east-1"


@dataclass
class Lab:
    api: FakeAnalytiks
    s3: Any
    sqs: Any
    sns: Any
    bucket: str
    queue_url: str
    dlq_url: str
    topic_arn: str
    inbox_url: str
    monkeypatch: pytest.MonkeyPatch
    tmp: Path
    env: dict[str, str] = field(default_factory=dict)
    _inbox: list[dict[str, Any]] = field(default_factory=list)

    def configure(self, **overrides: str) -> None:
        from exporter import wiring  # noqa: PLC0415

        env = {**self.env, **overrides}
        for name, value in env.items():
            self.monkeypatch.setenv(name, value)
        self.env = env
        wiring.settings.cache_clear()
        wiring.context.cache_clear()

    def cold_start(self) -> None:
        """Forget what a warm container keeps (settings, service, token, secret)."""
        from aws_lambda_powertools.utilities import parameters  # noqa: PLC0415

        from exporter.api_client import forget_tokens  # noqa: PLC0415
        from exporter.aws import forget_credentials  # noqa: PLC0415

        parameters.clear_caches()
        forget_tokens()
        forget_credentials()
        self.configure()

    def invoke(self, event: dict[str, Any], budget_ms: int = 600_000) -> Any:
        import app  # noqa: PLC0415

        return app.handler(event, FakeContext(budget_ms))

    def drain(
        self, budget_ms: int = 600_000, *, crashes: int | None = 0, **kwargs: Any
    ) -> DrainReport:
        """Deliver the queue to the handler until it is empty.

        The harness counts an invocation that raised (or was killed) as a crash and
        carries on; `crashes` is how many this test planted (None: the test counts).
        """
        import app  # noqa: PLC0415

        report = drain(app.handler, self.sqs, self.queue_url, budget_ms=budget_ms, **kwargs)
        if crashes is not None:
            assert report.crashed_invocations == crashes, (
                f"{report.crashed_invocations} invocation(s) crashed, {crashes} planted"
            )
        return report

    def run(self, event: dict[str, Any], budget_ms: int = 600_000, **kwargs: Any) -> Any:
        """Invoke, then let the queue finish the work; returns the invocation's response."""
        response = self.invoke(event, budget_ms)
        self.drain(budget_ms, **kwargs)
        return response

    def table_bytes(self) -> dict[str, bytes]:
        """Every object of the table (under DATA_PREFIX) with its content."""
        return {
            key: self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            for key in self.list_keys(self.env["DATA_PREFIX"] + "/")
        }

    def notifications(self) -> list[dict[str, Any]]:
        """Every SNS notification so far (bodies parsed, attributes flattened)."""
        self._inbox.extend(read_notifications(self.sqs, self.inbox_url))
        return list(self._inbox)

    def list_keys(self, prefix: str = "") -> list[str]:
        out: list[str] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        ):
            out.extend(item["Key"] for item in page.get("Contents", []))
        return out

    def table(self) -> Any:
        """A DuckDB connection with a `metrics` view over the table as it is now."""
        dest = self.tmp / f"table-{len(list(self.tmp.iterdir()))}"
        return export_table(self.s3, self.bucket, self.env["DATA_PREFIX"], dest)

    def rows(self, brand_id: int | None = None) -> dict[tuple[int, str], dict[str, Any]]:
        """Table rows keyed by (location_id, ts); fails on a duplicate key."""
        con = self.table()
        cursor = con.execute(
            "SELECT *, strftime(ts, '%Y-%m-%d %H:%M:%S') AS ts_text FROM metrics "
            "WHERE ? IS NULL OR brand_id = ?",
            [brand_id, brand_id],
        )
        names = [d[0] for d in cursor.description]
        out: dict[tuple[int, str], dict[str, Any]] = {}
        for values in cursor.fetchall():
            row = dict(zip(names, values, strict=True))
            key = (row["location_id"], row["ts_text"])
            assert key not in out, f"duplicate row {key}"
            out[key] = row
        return out


def expected(
    api: FakeAnalytiks,
    brand_id: int,
    first: date,
    last: date,
    basis: str,
    **kwargs: Any,
) -> dict[tuple[int, str], dict[str, int]]:
    suffix = "Z" if basis == "utc" else ""
    count = api.brands[brand_id]
    return {
        (row.location_id, row.ts): row.values
        for row in expected_rows(
            brand_id,
            count,
            f"{first}T00:00:00.000{suffix}",
            f"{last}T23:59:59.999{suffix}",
            **kwargs,
        )
    }


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_SERVICE_NAME": "wifi-export",
        "POWERTOOLS_METRICS_NAMESPACE": "WifiExport",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    # In-process moto is not thread-safe: its S3 backend lists a bucket's key dict
    # while another thread deletes from it (KeyError), which real S3 never does. The
    # exporter's calls side by side (a commit's days) are then served one at a time.
    guard = threading.RLock()
    serve = BotocoreStubber.process_request

    def one_at_a_time(self: BotocoreStubber, request: Any) -> Any:
        with guard:
            return serve(self, request)

    monkeypatch.setattr(BotocoreStubber, "process_request", one_at_a_time)
    with mock_aws():
        yield


@pytest.fixture
def make_lab(
    aws: None,
    make_fake_api: Callable[..., FakeAnalytiks],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Callable[..., Lab]:
    from aws_lambda_powertools.utilities import parameters  # noqa: PLC0415

    from exporter.api_client import forget_tokens  # noqa: PLC0415
    from exporter.aws import forget_credentials  # noqa: PLC0415

    parameters.clear_caches()
    forget_tokens()
    forget_credentials()

    def make(**api_kwargs: Any) -> Lab:
        allowed = api_kwargs.pop("allowed_brands", None)
        api_kwargs.setdefault("clients", {"demo-client": (CLIENT_SECRET, allowed)})
        api = make_fake_api(**api_kwargs)
        s3 = boto3.client("s3", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        sns = boto3.client("sns", region_name=REGION)
        deployment = provision(
            clients(REGION),
            name="wifi-export-test",
            client_id="demo-client",
            client_secret=CLIENT_SECRET,
        )
        lab = Lab(
            api=api,
            s3=s3,
            sqs=sqs,
            sns=sns,
            bucket=deployment.bucket,
            queue_url=deployment.queue_url,
            dlq_url=deployment.dlq_url,
            topic_arn=deployment.topic_arn,
            inbox_url=deployment.inbox_url,
            monkeypatch=monkeypatch,
            tmp=tmp_path,
        )
        lab.configure(
            **deployment.environment(api.url),
            TIME_SAFETY_MARGIN_MS="2000",
            BRAND_IDS="1234",
        )
        return lab

    return make


@pytest.fixture
def lab(make_lab: Callable[..., Lab]) -> Lab:
    return make_lab(brands={1234: 120, 777: 3}, page_size=50)
