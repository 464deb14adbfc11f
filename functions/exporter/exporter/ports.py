"""The ports the run protocol talks through; adapters implement them, tests use fakes.

The protocol (`exporter.run`) imports this module and never an adapter:
`aws.py` adapts boto3 (store, queue, publisher, secret), `api_client.py` the
analytiks HTTP API, and `tests/fakes.py` holds in-memory versions of each.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any, Final, Protocol

# Checkpoint messages carry the cursor and SQS caps a message at 256 KiB; an API
# cursor longer than this is treated as malformed (docs/contracts.md, "Checkpoints").
MAX_CURSOR_LENGTH: Final = 8_192

Clock = Callable[[], datetime]
"""Aware UTC datetimes; injected so tests can move time (leases, durations)."""

RemainingMs = Callable[[], int]
"""Milliseconds the current invocation has left (Lambda's context)."""


@dataclass(frozen=True, slots=True)
class Credentials:
    client_id: str
    client_secret: str = field(repr=False)


@dataclass(slots=True)
class CallStats:
    """What the API cost: reported in step records, the manifest and the notification."""

    calls: int = 0  # data requests sent, retries included
    retries: int = 0
    token_calls: int = 0  # token endpoint requests sent
    token_fetches: int = 0  # tokens obtained
    throttles: int = 0  # 429 answers (data and token requests)
    latencies_ms: list[float] = field(default_factory=list)  # per data request sent


class PageSource(Protocol):
    """The analytiks export API as the protocol sees it: v3 pages, and v1/v2/v4 batches."""

    stats: CallStats

    def fetch_v3(
        self,
        brand_id: int,
        start: str,
        end: str,
        cursor: str | None,
        remaining_s: Callable[[], float],
    ) -> tuple[list[Any], str | None]:
        """(records, next cursor or None); raises TransientError / PermanentError."""
        ...

    def fetch_batch(
        self,
        variant: str,
        selector: dict[str, Any],
        start: str,
        end: str,
        remaining_s: Callable[[], float],
    ) -> tuple[list[Any], tuple[int | str, ...]]:
        """One v1 / v2 / v4 request: (records, ids the API refused).

        v1 and v4 raise ApiRejected naming the refused ids; v2 returns them
        (all of a batch refused is an empty list of records, not an error).
        """
        ...


class ObjectStore(Protocol):
    def put(
        self, key: str, body: bytes | IO[bytes], content_type: str = "application/json"
    ) -> None: ...

    def put_if_absent(self, key: str, body: bytes, content_type: str = "application/json") -> bool:
        """Create `key` only if nothing is there (S3 `If-None-Match: *`); False if it existed."""
        ...

    def get(self, key: str) -> bytes | None: ...

    def get_versioned(self, key: str) -> tuple[bytes, str] | None:
        """The object and its version tag (S3 ETag), or None if absent."""
        ...

    def put_if_match(self, key: str, body: bytes, etag: str) -> bool:
        """Overwrite `key` only if it is still at version `etag` (S3 `If-Match`); False if not."""
        ...

    def exists(self, key: str) -> bool: ...

    def list_keys(self, prefix: str) -> Iterator[str]: ...

    def list_tagged(self, prefix: str) -> Iterator[tuple[str, str]]:
        """(key, version tag) of every object under `prefix`: what changed since a read."""
        ...

    def copy(self, source_key: str, target_key: str) -> None: ...

    def delete(self, keys: Sequence[str]) -> None: ...


class Publisher(Protocol):
    def publish(self, subject: str, message: str, attributes: dict[str, str]) -> None: ...


# SQS's longest DelaySeconds: a checkpoint can be held back at most this long.
MAX_QUEUE_DELAY_S: Final = 900


class TaskQueue(Protocol):
    def send(self, bodies: Sequence[str], delay_s: int = 0) -> None:
        """Send each body as one message (batched where the transport allows).

        `delay_s` (0..MAX_QUEUE_DELAY_S) keeps the messages invisible that long
        (SQS DelaySeconds): a throttled window backs off through the queue.
        """
        ...
