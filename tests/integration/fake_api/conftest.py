"""Fixtures of the fake API tests: a client of the default server, one of a limited client."""

from __future__ import annotations

import pytest

from local.fake_analytiks import FakeAnalytiks
from tests.integration.fake_api.wire import Client, Make

LIMITED = {"demo-client": ("demo-secret", None), "limited": ("pw", [777])}


@pytest.fixture
def client(fake_api: FakeAnalytiks) -> Client:
    return Client(fake_api)


@pytest.fixture
def limited(make_fake_api: Make) -> Client:
    return Client(make_fake_api(clients=LIMITED), "limited", "pw")
