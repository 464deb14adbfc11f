"""In-memory adapters for the exporter's ports: fast unit tests of the run protocol."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from exporter.config import Settings
from exporter.ports import CallStats, Clock
from exporter.run.context import RunContext


def _etag(body: bytes) -> str:
    return hashlib.md5(body, usedforsecurity=False).hexdigest()


@dataclass
class MemoryStore:
    objects: dict[str, bytes] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def put(
        self, key: str, body: bytes | IO[bytes], content_type: str = "application/json"
    ) -> None:
        data = body if isinstance(body, bytes) else body.read()
        with self._lock:
            self.objects[key] = data

    def put_if_absent(self, key: str, body: bytes, content_type: str = "application/json") -> bool:
        with self._lock:
            if key in self.objects:
                return False
            self.objects[key] = body
            return True

    def get(self, key: str) -> bytes | None:
        return self.objects.get(key)

    def get_versioned(self, key: str) -> tuple[bytes, str] | None:
        with self._lock:
            body = self.objects.get(key)
        return None if body is None else (body, _etag(body))

    def put_if_match(self, key: str, body: bytes, etag: str) -> bool:
        with self._lock:
            current = self.objects.get(key)
            if current is None or _etag(current) != etag:
                return False
            self.objects[key] = body
            return True

    def exists(self, key: str) -> bool:
        return key in self.objects

    def list_keys(self, prefix: str) -> Iterator[str]:
        return iter(sorted(k for k in list(self.objects) if k.startswith(prefix)))

    def list_tagged(self, prefix: str) -> Iterator[tuple[str, str]]:
        with self._lock:
            found = sorted((k, _etag(v)) for k, v in self.objects.items() if k.startswith(prefix))
        return iter(found)

    def copy(self, source_key: str, target_key: str) -> None:
        with self._lock:
            self.objects[target_key] = self.objects[source_key]

    def delete(self, keys: Sequence[str]) -> None:
        with self._lock:
            for key in keys:
                self.objects.pop(key, None)


@dataclass
class MemoryQueue:
    bodies: list[str] = field(default_factory=list)
    # Every message ever sent with its DelaySeconds (tests pop `bodies`; this stays).
    sent: list[tuple[str, int]] = field(default_factory=list)

    def send(self, bodies: Sequence[str], delay_s: int = 0) -> None:
        assert 0 <= delay_s <= 900, delay_s  # SQS's range
        self.bodies.extend(bodies)
        self.sent.extend((body, delay_s) for body in bodies)


@dataclass
class MemoryPublisher:
    messages: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    def publish(self, subject: str, message: str, attributes: dict[str, str]) -> None:
        self.messages.append((subject, message, attributes))


class ScriptedPages:
    """A scripted v3 source: one page per location, cursors "c1", "c2", ...

    Location n reports `visits` = n at 10:00 of the window's first day, keyed in
    the request's basis (`Z` for a UTC request), or always in UTC with `utc_keys`.
    """

    def __init__(
        self, locations: int = 3, repeat_cursor: bool = False, utc_keys: bool = False
    ) -> None:
        self.locations = locations
        self.repeat_cursor = repeat_cursor
        self.utc_keys = utc_keys
        self.stats = CallStats()

    def _key(self, start: str) -> str:
        suffix = "Z" if self.utc_keys or start.endswith("Z") else ""
        return f"{start[:10]}T10:00:00{suffix}"

    def fetch_v3(
        self,
        brand_id: int,
        start: str,
        end: str,
        cursor: str | None,
        remaining_s: Callable[[], float],
    ) -> tuple[list[Any], str | None]:
        self.stats.calls += 1
        n = 0 if cursor is None else int(cursor[1:])
        record = {"locationId": n + 1, "visits": {self._key(start): n + 1}}
        following = None if n + 1 == self.locations else f"c{n + 1}"
        if self.repeat_cursor and n == 1:
            following = "c1"
        return [record], following

    def fetch_batch(
        self,
        variant: str,
        selector: dict[str, Any],
        start: str,
        end: str,
        remaining_s: Callable[[], float],
    ) -> tuple[list[Any], tuple[int | str, ...]]:
        """v1/v2/v4 for `locations` selectors: the same series as v3, ids > `locations` refused."""
        self.stats.calls += 1
        ids = selector["locations"]
        known = [i for i in ids if i <= self.locations]
        refused = tuple(i for i in ids if i > self.locations)
        records = [{"locationId": i, "visits": {self._key(start): i}} for i in known]
        return records, refused


@dataclass
class Memory:
    """A run context on in-memory ports, with the ports at hand for assertions."""

    ctx: RunContext
    store: MemoryStore
    queue: MemoryQueue
    publisher: MemoryPublisher


def memory_context(settings: Settings, pages: Any, clock: Clock) -> Memory:
    store, queue, publisher = MemoryStore(), MemoryQueue(), MemoryPublisher()
    ctx = RunContext(settings, store, queue, publisher, lambda: pages, clock)
    return Memory(ctx, store, queue, publisher)
