"""Unit tests run on in-memory ports only: opening a socket here is a test bug."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from exporter.config import Settings


class SocketBlocked(RuntimeError):
    pass


def _refuse(*args: Any, **kwargs: Any) -> Any:
    raise SocketBlocked("unit tests may not open network connections; use tests/fakes.py")


@pytest.fixture(autouse=True)
def no_sockets(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("connect", "connect_ex", "bind"):
        monkeypatch.setattr(socket.socket, name, _refuse)
    monkeypatch.setattr(socket, "create_connection", _refuse)
    monkeypatch.setattr(socket, "getaddrinfo", _refuse)
    yield


@pytest.fixture
def settings() -> Settings:
    return Settings(
        secret_id="s",
        bucket_name="bucket",
        topic_arn="arn:aws:sns:us-east-1:123456789012:t",
        queue_url="https://sqs.us-east-1.amazonaws.com/123456789012/q",
        brand_ids=(1234, 777),
    )
