"""Error text is bounded where it enters records and notifications, and every
notification fits SNS's 256 KiB (docs/reliability.md, "Secrets and hostile answers")."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from exporter import notify, redaction
from exporter.config import Settings
from exporter.errors import MalformedResponse, TransientError
from exporter.events import RunRequest
from exporter.planning import split_windows
from exporter.redaction import MAX_ERROR_CHARS, REDACTED
from exporter.run.context import Invocation
from exporter.run.messages import handle_message
from exporter.run.records import RunPlan
from exporter.run.start import enqueue_windows, plan_runs
from tests.fakes import Memory, ScriptedPages, memory_context

SNS_LIMIT = 262_144  # bytes, message attributes included
TOKEN = "tok_4f9a1c7e2b8d6a3f0e5c9b1d"
NOW = datetime(2023, 7, 1, tzinfo=UTC)
INV = Invocation("message-1", lambda: 600_000)
FIRST, LAST = date(2014, 1, 1), date(2023, 12, 31)
PLAN = RunPlan(
    run_id="20230701T033000000Z-b1234-9f2c41d0",
    brand_id=1234,
    first_day=FIRST,
    last_day=LAST,
    basis="utc",
    trigger="on-demand",
    started_at="2023-07-01T03:30:00Z",
    windows=tuple(split_windows(FIRST, LAST, 5)),
)


@pytest.fixture(autouse=True)
def known_token() -> Iterator[None]:
    redaction.forget()
    redaction.remember_token(TOKEN)
    yield
    redaction.forget()


def decade_manifest() -> dict[str, Any]:
    days = (LAST - FIRST).days + 1
    partitions = [
        {
            "dt": str(FIRST + timedelta(days=n)),
            "rows": 12_345_678,
            "objects": 1_234,
            "bytes": 1_234_567_890,
            "keys": [],
        }
        for n in range(days)
    ]
    return {
        "partitions": partitions,
        "totals": {"rows": 1, "objects": 1, "bytes": 1, "partitions": days},
        "api": {"calls": 1, "retries": 0, "pages": 1},
        "durationSeconds": 1.0,
        "refused": [f"REF-{n:0120d}" for n in range(200)],
    }


def test_a_decade_of_partitions_still_fits_one_sns_message() -> None:
    _, body = notify.success_message(PLAN, decade_manifest(), "s3://b/manifest.json")
    assert len(json.dumps(body["partitions"])) > SNS_LIMIT  # too big as it was
    message = notify.render(body)
    assert len(message.encode()) <= notify.MAX_MESSAGE_BYTES < SNS_LIMIT - 4_096
    sent = json.loads(message)
    assert sent["omitted"] == ["partitions"]
    assert sent["runId"] == PLAN.run_id and sent["status"] == "succeeded"
    assert sent["manifest"] == "s3://b/manifest.json"  # where the partitions are
    assert sent["totals"] == body["totals"] and sent["refused"] == body["refused"]


def test_fields_go_largest_first_and_a_small_body_is_left_whole() -> None:
    body = {"runId": "r", "status": "failed", "error": None, "a": "x" * 600, "b": "y" * 500}
    assert json.loads(notify.render(body)) == body
    sent = json.loads(notify.render(body, limit=700))
    assert sent == {"runId": "r", "status": "failed", "error": None, "b": "y" * 500,
                    "omitted": ["a"]}  # fmt: skip
    assert json.loads(notify.render(body, limit=200))["omitted"] == ["a", "b"]


def test_render_redacts_and_bounds_the_error() -> None:
    _, body = notify.failure_message(PLAN, f"echo {TOKEN} " + "z" * 500_000, 1.0)
    body["refused"] = {"ids": [f"id {TOKEN}"]}
    message = notify.render(body)
    assert TOKEN not in message and TOKEN[:6] not in message
    sent = json.loads(message)
    assert sent["error"].startswith(f"echo {REDACTED} zzz")
    assert len(sent["error"]) == MAX_ERROR_CHARS
    assert sent["refused"] == {"ids": [f"id {REDACTED}"]}
    assert "omitted" not in sent


# -- through the run protocol -------------------------------------------------------------


class FailingPages(ScriptedPages):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def fetch_v3(self, *args: Any, **kwargs: Any) -> tuple[list[Any], str | None]:
        self.stats.calls += 1
        raise self.error


def started(settings: Settings, pages: Any) -> tuple[Memory, str]:
    memory = memory_context(settings, pages, lambda: NOW)
    request = RunRequest("on-demand", (5,), date(2023, 6, 1), date(2023, 6, 1), "utc", NOW, "r")
    (plan,) = plan_runs(memory.ctx, request)
    enqueue_windows(memory.ctx, plan)
    return memory, plan.run_id


@pytest.mark.parametrize("receive_count", [1, 5])
def test_an_endless_error_is_bounded_in_record_status_and_notification(
    settings: Settings, receive_count: int
) -> None:
    """A permanent error quoting 1 MB of API data (and a token), or a transient one
    on the last delivery: the run is failed and notified, with a bounded error."""
    huge = f"metric {'m' * 1_000_000!r} echoes {TOKEN}"
    error: Exception = MalformedResponse(huge)
    if receive_count == 5:
        error = KeyError(huge)  # not ours: its text is withheld altogether
    memory, run_id = started(settings, FailingPages(error))
    body = memory.queue.bodies.pop(0)
    for earlier in range(1, receive_count):  # the run counts deliveries itself
        with pytest.raises(TransientError):
            handle_message(memory.ctx, body, earlier, INV)
    handle_message(memory.ctx, body, receive_count, INV)
    ((subject, message, _),) = memory.publisher.messages
    assert len(subject) <= 100 and len(message.encode()) < SNS_LIMIT
    prefix = f"wifi/_exports/runs/{run_id}/"
    failed = json.loads(memory.store.objects[prefix + "failed.json"])["error"]
    status = json.loads(memory.store.objects[prefix + "status.json"])["error"]
    sent = json.loads(message)["error"]
    assert failed == status == sent
    assert len(sent) <= MAX_ERROR_CHARS
    if receive_count == 5:
        assert sent == "gave up after 5 deliveries: KeyError"
    else:
        assert sent.startswith("MalformedResponse: metric 'mmm") or sent.startswith("metric 'mmm")
        assert sent.endswith(" characters in all]") and len(sent) == MAX_ERROR_CHARS
    for blob in [message, *(b.decode() for b in memory.store.objects.values())]:
        assert TOKEN not in blob and "m" * 2_000 not in blob
