"""Issue 22 (hardening II), end to end through `app.handler` against moto and a
scripted API on a real loopback socket: values Athena cannot read never reach the
table, checkpoints only from the deployment's queue, no echoed token in any form
(docs/reliability.md, "Hardening II")."""

from __future__ import annotations

import base64
import io
import json
import logging
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from exporter.observability import logger
from local.chaos import Reply, Request, ScriptedApi, find_secrets, record, v3_pages
from local.harness import sqs_event
from tests.integration.conftest import CLIENT_SECRET, Lab
from tests.integration.test_hostile_runs import (
    EVENT,
    everything,
    failed_run,
    scripted,
)

BIGINT = 2**63 - 1


@pytest.fixture
def logs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> Iterator[io.StringIO]:
    """What the function logs, as Lambda would ship it, at DEBUG."""
    stream = io.StringIO()
    monkeypatch.setattr(logger.registered_handler, "stream", stream)
    caplog.set_level(logging.DEBUG)
    level = logger.log_level
    logger.setLevel(logging.DEBUG)
    yield stream
    logger.setLevel(level)


def succeeded(lab: Lab) -> dict[str, Any]:
    notes = lab.notifications()
    assert [n["body"]["status"] for n in notes] == ["succeeded"], notes
    body: dict[str, Any] = notes[0]["body"]
    return body


# -- A. values Athena can read ------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "named"),
    [
        ("2023-06-01T\u0660\u0668:00:00Z", "time bucket key"),  # Arabic-Indic digits
        ("2023-06-01T\uff10\uff18:00:00Z", "time bucket key"),  # fullwidth digits
        ("2023-06-01T08:00:00Z\n", "time bucket key"),  # `$` accepts a trailing newline
    ],
)
def test_a_time_key_outside_ascii_fails_the_run_naming_it(lab: Lab, key: str, named: str) -> None:
    page = {"data": [{**record(1, hours=[8]), "walkBys": {key: 3}}], "cursor": None}
    with ScriptedApi(v3_pages({None: page})) as api:
        scripted(lab, api)
        lab.run(EVENT)
    body, _, _ = failed_run(lab)
    assert named in body["error"], body["error"]


@pytest.mark.parametrize(
    ("location", "metrics"),
    [(BIGINT + 1, {"visits": 1}), (1, {"visits": BIGINT + 1}), (1, {"dwellTime": 2**64 - 1})],
)
def test_a_value_beyond_bigint_fails_the_run_naming_the_field(
    lab: Lab, location: int, metrics: dict[str, int]
) -> None:
    page = {"data": [record(location, hours=[8], metrics=metrics)], "cursor": None}
    with ScriptedApi(v3_pages({None: page})) as api:
        scripted(lab, api)
        lab.run(EVENT)
    body, _, _ = failed_run(lab)
    field = "locationId" if location > BIGINT else next(iter(metrics))
    assert field in body["error"], body["error"]


def test_the_largest_bigint_is_a_row(lab: Lab) -> None:
    page = {"data": [record(BIGINT, hours=[8], metrics={"visits": BIGINT})], "cursor": None}
    with ScriptedApi(v3_pages({None: page})) as api:
        scripted(lab, api)
        lab.run(EVENT)
    succeeded(lab)
    (row,) = lab.rows().values()
    assert (row["location_id"], row["visits"]) == (BIGINT, BIGINT)


def test_a_numeric_reference_number_is_kept_as_a_string(lab: Lab) -> None:
    page = {"data": [{**record(7, hours=[8]), "referenceNumber": 40017}], "cursor": None}
    with ScriptedApi(v3_pages({None: page})) as api:
        scripted(lab, api)
        lab.run(EVENT)
    succeeded(lab)
    (row,) = lab.rows().values()
    assert row["reference_number"] == "40017"


def test_a_fractional_reference_number_fails_the_run_naming_it(lab: Lab) -> None:
    page = {"data": [{**record(7, hours=[8]), "referenceNumber": 1.5}], "cursor": None}
    with ScriptedApi(v3_pages({None: page})) as api:
        scripted(lab, api)
        lab.run(EVENT)
    body, _, _ = failed_run(lab)
    assert "referenceNumber" in body["error"]


# -- B. checkpoints only from the deployment's queue ---------------------------------


def forged(body: dict[str, Any], arn: str, receive_count: int = 5) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": "0b7e5c8a-forged",
                "receiptHandle": "forged",
                "body": json.dumps(body),
                "attributes": {"ApproximateReceiveCount": str(receive_count)},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": "us-east-1",
            }
        ]
    }


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:sqs:us-east-1:123456789012:someone-elses-queue",
        "arn:aws:sqs:eu-west-1:123456789012:wifi-export-test-checkpoints",
        "",
    ],
)
def test_a_record_from_another_queue_cannot_fail_a_run(lab: Lab, arn: str) -> None:
    """With the API briefly failing, a forged record claiming its fifth delivery
    used to fail a healthy run for good."""
    (run,) = lab.invoke(EVENT)["runs"]
    checkpoint = {"v": 2, "runId": run["runId"], "brandId": 1234, "window": 0, "step": 0}
    lab.api.faults.rate_5xx = 1.0
    answer = lab.invoke(forged({**checkpoint, "cursor": None}, arn))
    assert answer == {"batchItemFailures": []}
    assert lab.api.stats.data_calls == 0  # not even a step was tried
    assert lab.notifications() == []
    lab.api.faults.rate_5xx = 0.0
    lab.drain()
    assert succeeded(lab)["runId"] == run["runId"]


def test_a_later_record_of_a_batch_waits_for_redelivery_when_time_is_short(lab: Lab) -> None:
    """With BatchSize above 1, the first record starts whatever the time, a later
    one only above the safety margin: it is left untouched, reported as a batch
    item failure, and its redelivery carries the run through."""
    lab.configure(TIME_SAFETY_MARGIN_MS="60000")
    (first,) = lab.invoke(EVENT)["runs"]
    (second,) = lab.invoke({**EVENT, "brandId": 777})["runs"]
    messages: list[dict[str, Any]] = []
    while len(messages) < 2:
        got = lab.sqs.receive_message(
            QueueUrl=lab.queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]
        )
        messages += got.get("Messages", [])
    arn = lab.sqs.get_queue_attributes(QueueUrl=lab.queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    answer = lab.invoke(sqs_event(messages, arn), budget_ms=30_000)  # under the margin
    assert answer == {"batchItemFailures": [{"itemIdentifier": messages[1]["MessageId"]}]}
    left = json.loads(messages[1]["Body"])["runId"]
    assert left in {first["runId"], second["runId"]}
    state = lab.env["STATE_PREFIX"]
    assert lab.list_keys(f"{state}/runs/{left}/deliveries/") == []  # not even counted
    for message in messages:  # their visibility timeouts, compressed
        lab.sqs.change_message_visibility(
            QueueUrl=lab.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    lab.configure(TIME_SAFETY_MARGIN_MS="2000")
    lab.drain()
    statuses = {n["body"]["runId"]: n["body"]["status"] for n in lab.notifications()}
    assert statuses == {first["runId"]: "succeeded", second["runId"]: "succeeded"}


# -- D. no echoed token in any encoding ----------------------------------------------


def encodings(token: str) -> list[str]:
    """How an API might echo a token: raw, percent-encoded (every byte, or the usual
    way), base64 (standard and URL-safe) of the token and of its header value."""
    header = f"Bearer {token}"
    out = [token, "".join(f"%{b:02X}" for b in token.encode())]
    out += [urllib.parse.quote(header, safe=""), urllib.parse.quote_plus(header)]
    for text in (token, header):
        out += [
            base64.b64encode(text.encode()).decode(),
            base64.urlsafe_b64encode(text.encode()).decode(),
        ]
    return [x[:-2] if x.endswith("==") else x for x in out]  # unpadded forms too


@pytest.mark.parametrize("error", ["invalid_request", "x" * 80, None])
def test_a_4xx_answer_echoing_the_token_encoded_is_not_quoted(
    lab: Lab, logs: io.StringIO, caplog: pytest.LogCaptureFixture, error: str | None
) -> None:
    def echo(request: Request) -> Reply:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        forms = encodings(token)
        answer: dict[str, Any] = {"message": "rejected " + " ".join(forms), "echo": forms}
        if error is not None:
            answer["error"] = error
        return Reply.json(answer, 400)

    with ScriptedApi(echo) as api:
        scripted(lab, api)
        lab.run(EVENT)
        (issued,) = api.tokens
    body, _, _ = failed_run(lab)
    quoted = f": {error}" if error == "invalid_request" else ""
    assert body["error"].endswith(f"the API rejected the request (400){quoted}"), body["error"]
    leaks = find_secrets(everything(lab, logs, caplog), [*encodings(issued), CLIENT_SECRET])
    assert not leaks, leaks


def test_an_error_field_carrying_the_token_is_not_quoted(
    lab: Lab, logs: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    def echo(request: Request) -> Reply:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        return Reply.json({"error": base64.b64encode(token.encode()).decode()[:40]}, 403)

    with ScriptedApi(echo) as api:
        scripted(lab, api)
        lab.run(EVENT)
        (issued,) = api.tokens
    body, _, _ = failed_run(lab)
    assert body["error"].endswith("the API rejected the request (403)"), body["error"]
    encoded = base64.b64encode(issued.encode()).decode()
    leaks = find_secrets(everything(lab, logs, caplog), [encoded[:24], issued])
    assert not leaks, leaks


# -- E. the page cap follows the function's memory ------------------------------------


def test_a_page_over_the_memory_cap_fails_the_run(lab: Lab) -> None:
    """512 MB: three pages of tiny objects at 64 MiB would need about 5 GiB; the cap
    (api_answers.page_limit) keeps the worst case inside the memory."""
    lab.configure(AWS_LAMBDA_FUNCTION_MEMORY_SIZE="512")
    limit = (512 - 160) * 1024 * 1024 // 96  # RESERVED_MIB, PAGE_PEAK_FACTOR: 3.7 MiB
    payload = b'{"data": [], "cursor": null}'
    body = payload + b" " * (limit + 1 - len(payload))  # valid JSON, one byte over
    with ScriptedApi(v3_pages({None: Reply(200, body)})) as api:
        scripted(lab, api)
        lab.run(EVENT)
    note, _, _ = failed_run(lab)
    assert note["error"] == f"v3 page for brand 1234: the answer is larger than {limit:,} bytes"


def test_the_page_cap_by_memory() -> None:
    from exporter.api_answers import (  # noqa: PLC0415
        MAX_PAGE_BYTES,
        PAGE_PEAK_FACTOR,
        RESERVED_MIB,
        page_limit,
    )

    assert page_limit(None) == MAX_PAGE_BYTES  # not in Lambda: the ceiling
    assert page_limit("10240") == MAX_PAGE_BYTES
    for memory in (512, 1769, 3008):
        worst = page_limit(str(memory)) * PAGE_PEAK_FACTOR
        assert worst + RESERVED_MIB * 1024 * 1024 <= memory * 1024 * 1024, memory
    assert page_limit("128") == 1024 * 1024  # never below 1 MiB
