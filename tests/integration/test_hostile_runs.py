"""Hostile API answers end to end: through `app.handler`, the queue, S3 and SNS
(moto), against a scripted API on a real loopback socket. The run fails once,
with one bounded failure notification, and no secret or token reaches logs,
records, the status object, S3 or SNS (docs/reliability.md, "Secrets and hostile
answers"). The client-level cases are in tests/integration/test_hostile_answers.py."""

from __future__ import annotations

import io
import json
import logging
import zlib
from collections.abc import Iterator
from typing import Any

import pytest

from exporter.api_client import MAX_PAGE_BYTES
from exporter.observability import logger
from exporter.redaction import MAX_ERROR_CHARS
from local.chaos import V3_PATH, Reply, Request, ScriptedApi, find_secrets, record, v3_pages
from tests.integration.conftest import CLIENT_SECRET, Lab

DAY = "2023-06-01"
EVENT = {"brandId": 1234, "startDate": DAY, "endDate": DAY}
SNS_LIMIT = 262_144


@pytest.fixture
def logs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> Iterator[io.StringIO]:
    """What the function logs, as Lambda would ship it (the Powertools handler's
    output), at DEBUG, every library included."""
    stream = io.StringIO()
    monkeypatch.setattr(logger.registered_handler, "stream", stream)
    caplog.set_level(logging.DEBUG)
    level = logger.log_level
    logger.setLevel(logging.DEBUG)
    yield stream
    logger.setLevel(level)


def scripted(lab: Lab, api: ScriptedApi) -> None:
    lab.configure(API_URL=api.url, TOKEN_URL=api.token_url)


def everything(
    lab: Lab, logs: io.StringIO, caplog: pytest.LogCaptureFixture
) -> list[tuple[str, bytes]]:
    """Every place a secret could end up: logs, S3 (all of it), SNS, both queues."""
    blobs = [("log", logs.getvalue().encode()), ("captured log", caplog.text.encode())]
    blobs += [(f"log record {r.name}", r.getMessage().encode()) for r in caplog.records]
    for key in lab.list_keys():
        blobs.append((f"s3://{key}", lab.s3.get_object(Bucket=lab.bucket, Key=key)["Body"].read()))
    blobs += [
        (f"notification {n}", json.dumps(x).encode()) for n, x in enumerate(lab.notifications())
    ]
    for url in (lab.queue_url, lab.dlq_url):
        got = lab.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        blobs += [(f"sqs {url}", m["Body"].encode()) for m in got]
    return blobs


def failed_run(lab: Lab) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The run's one notification, its failure record and its status: all failed."""
    notes = lab.notifications()
    assert [n["body"]["status"] for n in notes] == ["failed"], notes
    body = notes[0]["body"]
    state = f"{lab.env['STATE_PREFIX']}/runs/{body['runId']}/"
    failed = json.loads(
        lab.s3.get_object(Bucket=lab.bucket, Key=state + "failed.json")["Body"].read()
    )
    status = json.loads(
        lab.s3.get_object(Bucket=lab.bucket, Key=state + "status.json")["Body"].read()
    )
    assert status["state"] == "failed"
    assert failed["error"] == status["error"] == body["error"]
    assert lab.list_keys(lab.env["DATA_PREFIX"] + "/") == []  # nothing committed
    return body, failed, status


def forms(secret: str) -> list[str]:
    return [secret, json.dumps(secret)[1:-1], repr(secret)[1:-1], secret[:6]]


def test_a_crlf_token_fails_the_run_and_is_never_sent_logged_or_stored(
    lab: Lab, logs: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    bad = "eyJhbGciOiJSUzI1NiJ9.cGF5bG9hZA\r\nX-Injected: 7d1c9e4a0b"

    def token(_request: Request) -> Reply:
        return Reply.json({"access_token": bad, "expires_in": 3600, "token_type": "Bearer"})

    with ScriptedApi(v3_pages({None: {"data": [record(1)], "cursor": None}}), token=token) as api:
        scripted(lab, api)
        lab.run(EVENT)
    body, _, _ = failed_run(lab)
    assert body["error"].startswith("token endpoint: access_token is not a bearer token")
    assert api.calls[V3_PATH] == 0  # the token was never sent
    leaks = find_secrets(everything(lab, logs, caplog), [*forms(bad), "7d1c9e4a0b", CLIENT_SECRET])
    assert not leaks, leaks
    assert "run failed" in logs.getvalue()  # the logs were really captured


def test_an_echoed_token_straddling_the_quote_cut_leaves_no_prefix(
    lab: Lab, logs: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    def echo(request: Request) -> Reply:
        bearer = request.headers.get("authorization", "")
        # Cut at 200 characters before redaction (as it was), 13 characters of the
        # token would have stayed in the error.
        return Reply.json({"message": "rejected: " + "x" * 170 + bearer + "y" * 500}, 400)

    with ScriptedApi(echo) as api:
        scripted(lab, api)
        lab.run(EVENT)
        (issued,) = api.tokens
    body, _, _ = failed_run(lab)
    assert body["error"].endswith("the API rejected the request (400)")  # the body unquoted
    leaks = find_secrets(everything(lab, logs, caplog), [*forms(issued), CLIENT_SECRET])
    assert not leaks, leaks


def test_an_endless_error_is_bounded_and_the_run_is_still_notified(lab: Lab) -> None:
    """The API's data makes the error text (here: a 400,000-character locationId,
    quoted by the row check). Unbounded it would make the notification larger than
    SNS accepts, and the run would never be notified."""
    page = {"data": [{"locationId": "L" * 400_000, "visits": {}}], "cursor": None}
    with ScriptedApi(v3_pages({None: page})) as api:
        scripted(lab, api)
        lab.run(EVENT)
    body, failed, status = failed_run(lab)
    assert "locationId" in body["error"]
    assert len(body["error"]) <= MAX_ERROR_CHARS
    assert len(json.dumps(body, separators=(",", ":")).encode()) < SNS_LIMIT
    assert len(json.dumps(failed).encode()) < 2 * MAX_ERROR_CHARS
    assert len(json.dumps(status).encode()) < 8 * MAX_ERROR_CHARS


def test_an_oversized_page_fails_the_run(lab: Lab) -> None:
    payload = b'{"data": [], "cursor": null}'
    body = payload + b" " * (MAX_PAGE_BYTES + 1 - len(payload))  # valid JSON, one byte too many
    with ScriptedApi(v3_pages({None: Reply(200, body)})) as api:
        scripted(lab, api)
        lab.run(EVENT)
        assert api.calls[V3_PATH] == 1  # refused at once, not retried
    note, _, _ = failed_run(lab)
    assert note["error"] == "v3 page for brand 1234: the answer is larger than 67,108,864 bytes"


def test_a_gzip_bomb_fails_the_run_without_being_inflated(lab: Lab) -> None:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    member = packer.compress(bytes(64 * 1024 * 1024)) + packer.flush()
    bomb = Reply(200, member * 16, (("Content-Encoding", "gzip"),))  # ~1 MB -> 1 GiB
    with ScriptedApi(v3_pages({None: bomb})) as api:
        scripted(lab, api)
        lab.run(EVENT)
        assert {r.headers.get("accept-encoding") for r in api.requests} == {"identity"}
    note, _, _ = failed_run(lab)
    assert "the answer is compressed (Content-Encoding 'gzip')" in note["error"]
