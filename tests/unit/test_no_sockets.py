from __future__ import annotations

import socket
import urllib.request

import pytest

from tests.unit.conftest import SocketBlocked


def test_unit_tests_cannot_reach_the_network() -> None:
    with pytest.raises(SocketBlocked):
        socket.create_connection(("127.0.0.1", 9))
    with socket.socket() as sock, pytest.raises(SocketBlocked):
        sock.connect(("127.0.0.1", 9))
    with pytest.raises(SocketBlocked):
        urllib.request.urlopen("http://127.0.0.1:9/")
