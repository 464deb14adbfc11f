"""Pytest fixtures for the local fake analytiks API (loaded by tests/conftest.py).

* ``fake_api``: a started ``FakeAnalytiks`` with brands {1234: 120, 777: 3},
  page size 50 and the client demo-client/demo-secret (all brands); stopped after
  the test.
* ``make_fake_api(**kwargs)``: a factory starting one with custom knobs (same
  defaults, overridable); every server it made is stopped at teardown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from local.fake_analytiks import FakeAnalytiks

FAKE_API_DEFAULTS: dict[str, Any] = {
    "brands": {1234: 120, 777: 3},
    "clients": {"demo-client": ("demo-secret", None)},
    "page_size": 50,
}


@pytest.fixture
def make_fake_api() -> Iterator[Callable[..., FakeAnalytiks]]:
    started: list[FakeAnalytiks] = []

    def make(**kwargs: Any) -> FakeAnalytiks:
        api = FakeAnalytiks(**{**FAKE_API_DEFAULTS, **kwargs})
        api.start()
        started.append(api)
        return api

    yield make
    for api in started:
        api.stop()


@pytest.fixture
def fake_api(make_fake_api: Callable[..., FakeAnalytiks]) -> FakeAnalytiks:
    return make_fake_api()
