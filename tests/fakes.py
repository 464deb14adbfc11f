"""In-memory adapters for the exporter's ports: fast unit tests of the run protocol."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO


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

    def exists(self, key: str) -> bool:
        return key in self.objects

    def list_keys(self, prefix: str) -> Iterator[str]:
        return iter(sorted(k for k in list(self.objects) if k.startswith(prefix)))

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

    def send(self, bodies: Sequence[str]) -> None:
        self.bodies.extend(bodies)


@dataclass
class MemoryPublisher:
    messages: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    def publish(self, subject: str, message: str, attributes: dict[str, str]) -> None:
        self.messages.append((subject, message, attributes))
