"""The small interfaces the run logic needs; aws.py adapts boto3 to them, tests use fakes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import IO, Protocol


class ObjectStore(Protocol):
    def put(
        self, key: str, body: bytes | IO[bytes], content_type: str = "application/json"
    ) -> None: ...

    def put_if_absent(self, key: str, body: bytes, content_type: str = "application/json") -> bool:
        """Create `key` only if nothing is there (S3 `If-None-Match: *`); False if it existed."""
        ...

    def get(self, key: str) -> bytes | None: ...

    def exists(self, key: str) -> bool: ...

    def list_keys(self, prefix: str) -> Iterator[str]: ...

    def copy(self, source_key: str, target_key: str) -> None: ...

    def delete(self, keys: Sequence[str]) -> None: ...


class Publisher(Protocol):
    def publish(self, subject: str, message: str, attributes: dict[str, str]) -> None: ...


class TaskQueue(Protocol):
    def send(self, bodies: Sequence[str]) -> None:
        """Send each body as one message (batched where the transport allows)."""
        ...
