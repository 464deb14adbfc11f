"""The in-process side of the chaos campaign (tests/chaos): kills that stay dead,
planted adapter faults, and the campaign row each scenario fills.

A kill raises `Killed` at a chosen adapter call; from then until the invocation ends
every other adapter call dies too (see docs/decisions.md, "The chaos campaign").
"""

from __future__ import annotations

import contextlib
import functools
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from botocore.exceptions import ClientError

from exporter.api_client import AnalytiksClient
from exporter.aws import S3Store, SnsPublisher, SqsQueue
from local.chaos import CampaignRow
from local.harness import FakeContext, Killed

Campaign = list[CampaignRow]
Decide = Callable[[int, tuple[Any, ...]], BaseException | None]
Fingerprint = dict[str, tuple[str, int]]


class Patcher(Protocol):
    """What of `pytest.MonkeyPatch` the harness uses: undone when the test ends."""

    def setattr(self, target: Any, name: str, value: Any) -> None: ...


@dataclass
class Process:
    """The in-process worker: `dead` from a kill until the next invocation starts, and
    the checkpoint it is working on: (window, step, receive count), None for a direct
    invocation."""

    dead: bool = False
    delivery: tuple[int, int, int] | None = None


def delivery_of(event: dict[str, Any]) -> tuple[int, int, int] | None:
    """(window, step, receive count) of a one-record SQS event (a checkpoint message,
    docs/contracts.md)."""
    records = event.get("Records") if isinstance(event, dict) else None
    if not records:
        return None
    try:
        body = json.loads(records[0]["body"])
        count = int(records[0]["attributes"]["ApproximateReceiveCount"])
        return int(body["window"]), int(body["step"]), count
    except (ValueError, KeyError, TypeError):
        return None


PROCESS = Process()
S3_METHODS = ("put", "put_if_absent", "put_if_match", "get", "get_versioned", "exists")
ADAPTER_METHODS: list[tuple[type, str]] = [
    *((S3Store, m) for m in (*S3_METHODS, "list_keys", "copy", "delete") if hasattr(S3Store, m)),
    (SqsQueue, "send"),
    (SnsPublisher, "publish"),
    (AnalytiksClient, "fetch_v3"),
]


def guard_adapters(monkeypatch: Patcher) -> None:
    """After a kill, every adapter call of the same invocation (a `finally`, a sibling
    thread of a copy pool or the page reader) dies as well."""
    PROCESS.dead, PROCESS.delivery = False, None
    for cls, name in ADAPTER_METHODS:
        original = getattr(cls, name)

        @functools.wraps(original)
        def guard(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            if PROCESS.dead:
                raise Killed
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, name, guard)


def inject(
    monkeypatch: Patcher, cls: type, name: str, decide: Decide, *, after: bool = False
) -> dict[str, int]:
    """Wrap `cls.name`: `decide(call number, args)` returns what to raise (before or after).

    Raising `Killed` kills the invocation: every later adapter call in it dies too."""
    original = getattr(cls, name)
    state = {"calls": 0, "raised": 0}

    def fire(exc: BaseException) -> BaseException:
        state["raised"] += 1
        if isinstance(exc, Killed):
            PROCESS.dead = True
        return exc

    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        state["calls"] += 1
        exc = decide(state["calls"], args)
        if exc is not None and not after:
            raise fire(exc)
        try:
            result = original(self, *args, **kwargs)
        except BaseException:
            if exc is not None:  # "after" the call, whether it returned or raised
                raise fire(exc) from None
            raise
        if exc is not None:
            raise fire(exc)
        return result

    monkeypatch.setattr(cls, name, wrapper)
    return state


def nth(n: int, exc: Callable[[], BaseException], where: str = "") -> Decide:
    """Raise on the n-th call whose first argument contains `where`."""
    seen = {"n": 0}

    def decide(_calls: int, args: tuple[Any, ...]) -> BaseException | None:
        if where and not (args and where in str(args[0])):
            return None
        seen["n"] += 1
        return exc() if seen["n"] == n else None

    return decide


def client_error(code: str, operation: str, status: int = 503) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": f"injected {code}"},
            "ResponseMetadata": {"HTTPStatusCode": status},  # type: ignore[typeddict-item]
        },
        operation,
    )


def cpu_wait_ms(native_id: int | None = None) -> float:
    """How long a thread of this process (the calling one by default) has been ready to
    run but waiting for a CPU (Linux schedstat's run delay, in ms); 0.0 where the kernel
    does not tell, or the thread has ended."""
    tid = threading.get_native_id() if native_id is None else native_id
    try:
        with open(f"/proc/self/task/{tid}/schedstat") as stats:
            return int(stats.read().split()[1]) / 1e6
    except (OSError, ValueError, IndexError):
        return 0.0


# The exporter's own threads (exporter/run/parallel.py, pages.py, run/walk.py,
# run/start.py, parquet_table.py): an invocation's work runs on them and on the
# invoking thread.
_WORKER_PREFIXES = ("store", "read-ahead", "gzip", "fan-out", "parquet")


def workers_waits_ms() -> dict[int, float]:
    """`cpu_wait_ms` of each of the exporter's worker threads alive now, by native id."""
    return {
        thread.native_id: cpu_wait_ms(thread.native_id)
        for thread in threading.enumerate()
        if thread.native_id is not None and thread.name.startswith(_WORKER_PREFIXES)
    }


@dataclass
class Probe:
    """Watches every invocation: did it return before its deadline?

    Judged on the time a dedicated CPU would have taken (docs/decisions.md, "Deadlines
    under load"): time the invocation's threads were ready to run but had no CPU is
    not counted against it. The credit is the invoking thread's wait, or, when more
    is on record, the waits of the invocation's threads (it and the exporter's
    workers) summed, but never more than the time the process did not run at all
    (wall time less its CPU time): waits side by side overlap, and what a dedicated
    CPU saves is at most the time none of them ran. Lambda gives a function its vCPU
    share; a loaded test machine does not, and what the campaign checks is the
    exporter's time management.
    """

    invocations: int = 0
    overruns: int = 0
    # Each overrun: which message (run, window, step, delivery) and by how many ms.
    overrun_details: list[str] = field(default_factory=list)
    min_left_ms: int = 10**9
    events: list[dict[str, Any]] = field(default_factory=list)
    # Waits for a CPU credited, summed over the invocations (ms).
    cpu_waited_ms: float = 0.0
    cpu_wait: Callable[[], float] = cpu_wait_ms
    workers_waits: Callable[[], dict[int, float]] = workers_waits_ms
    # The process's CPU time (all its threads), in seconds.
    cpu_time: Callable[[], float] = time.process_time

    def handler(
        self, target: Callable[[dict[str, Any], Any], Any] | None = None
    ) -> Callable[[dict[str, Any], Any], Any]:
        """`target` (the exporter's handler by default) watched."""
        if target is None:
            import app  # noqa: PLC0415

            target = app.handler

        def handle(event: dict[str, Any], context: FakeContext) -> Any:
            self.invocations += 1
            self.events.append(event)
            PROCESS.dead = False  # a new invocation: a fresh (or thawed) worker
            PROCESS.delivery = delivery_of(event)
            own_before, workers_before = self.cpu_wait(), self.workers_waits()
            cpu_before, started = self.cpu_time(), time.monotonic()
            try:
                return target(event, context)
            finally:
                own = self.cpu_wait() - own_before
                # A worker born during the invocation waited from 0; one that ended
                # is not on record (the credit stays on the strict side).
                workers = sum(
                    _since(workers_before.get(tid, 0.0), waited)
                    for tid, waited in self.workers_waits().items()
                )
                off_cpu_ms = (time.monotonic() - started - self.cpu_time() + cpu_before) * 1000
                self._judge(event, context, max(own, min(own + workers, off_cpu_ms)))

        return handle

    def _judge(self, event: dict[str, Any], context: FakeContext, waited_ms: float) -> None:
        self.min_left_ms = min(self.min_left_ms, context.get_remaining_time_in_millis())
        self.cpu_waited_ms += waited_ms
        late_ms = (time.monotonic() - context.deadline) * 1000
        if late_ms - waited_ms > -1:  # less than 1 ms left on a dedicated CPU
            self.overruns += 1
            self.overrun_details.append(
                f"{_what(event)}: {late_ms:.0f} ms late, {waited_ms:.0f} ms of it waiting for a CPU"
            )


def _since(before: float, now: float) -> float:
    """A thread's wait since `before`; from 0 when its native id was reused by a new one."""
    return now - before if now >= before else now


def _what(event: dict[str, Any]) -> str:
    """An invocation in a few words: its messages' window, step and delivery."""
    records = event.get("Records") or []
    if not records:
        return f"direct invocation ({', '.join(sorted(event))})"
    parts = []
    for record in records:
        try:
            body = json.loads(record["body"])
            parts.append(
                f"w{body.get('window')} s{body.get('step')} "
                f"delivery {record['attributes']['ApproximateReceiveCount']}"
            )
        except (ValueError, KeyError, TypeError):
            parts.append("unreadable message")
    return "; ".join(parts)


def fingerprint(s3: Any, bucket: str, prefix: str) -> Fingerprint:
    """Every object under `prefix` with its MD5 ETag and size: equal fingerprints, equal
    bytes."""
    out: Fingerprint = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out.update({o["Key"]: (o["ETag"], o["Size"]) for o in page.get("Contents", [])})
    return out


def queue_depth(sqs: Any, url: str) -> int:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attrs.values())


def fired(row: CampaignRow, count: int, what: str, *, exactly: int | None = None) -> None:
    """Record in the row whether the planted fault happened, and insist that it did."""
    row.fired = f"yes: {count} {what}" if count else f"NO: {what}"
    assert count >= 1, f"the planted fault never fired ({what})"
    if exactly is not None:
        assert count == exactly, f"fired {count} times, planted {exactly} ({what})"


@contextlib.contextmanager
def scenario(
    campaign: Campaign, group: str, case: str, expected: str, where: str = ""
) -> Iterator[CampaignRow]:
    row = CampaignRow(group, case, expected, where=where)
    campaign.append(row)
    started = time.monotonic()
    try:
        yield row
    except AssertionError as exc:
        row.outcome = f"VIOLATION ({row.outcome})"
        row.detail = str(exc).splitlines()[0][:110]
        raise
    finally:
        row.seconds = time.monotonic() - started
