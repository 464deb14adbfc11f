"""Secrets and tokens never reach logs (any level), errors, notifications or S3."""

from __future__ import annotations

import gzip
import logging

import pytest

from exporter.observability import logger
from local.chaos import parquet_text
from tests.integration.conftest import CLIENT_SECRET, Lab


def test_nothing_secret_is_logged_stored_or_published(
    lab: Lab,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    request: pytest.FixtureRequest,
) -> None:
    caplog.set_level(logging.DEBUG)  # every library's logger, botocore and urllib3 included
    level = logger.log_level
    logger.setLevel(logging.DEBUG)
    request.addfinalizer(lambda: logger.setLevel(level))
    lab.api.faults.revoke_after = 2  # a second token mid-run
    lab.run({"brandId": 1234, "startDate": "2023-06-08", "endDate": "2023-06-09"})
    lab.api.faults.queue.extend(["400"])  # and a failing run, with its error text
    lab.run({"brandId": 1234, "startDate": "2023-06-10", "endDate": "2023-06-10"})

    tokens = lab.api.issued_tokens()  # every token the fake API issued
    assert len(tokens) >= 2
    secrets = [CLIENT_SECRET, *tokens]
    out, err = capfd.readouterr()
    assert "DEBUG" in caplog.text  # the debug level really was captured
    haystacks = {"stdout": out, "stderr": err, "log records": caplog.text}
    for key in lab.list_keys():
        body = lab.s3.get_object(Bucket=lab.bucket, Key=key)["Body"].read()
        if key.endswith(".parquet"):
            body = parquet_text(body)  # ZSTD pages hide a byte search; its values do not
        haystacks[key] = (gzip.decompress(body) if key.endswith(".gz") else body).decode()
    notes = lab.notifications()
    assert [n["body"]["status"] for n in notes] == ["succeeded", "failed"]
    haystacks["notifications"] = repr(notes)
    for where, text in haystacks.items():
        for secret in secrets:
            assert secret not in text, f"a secret leaked into {where}"
