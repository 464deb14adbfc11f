"""HTTP plumbing: routes each request, suffers its injected fault, writes the answer.

What to answer is the server's business (``FakeAnalytiks.token_answer`` and
``data_answer``); this module only speaks HTTP, including its broken forms.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import sys
import threading
import time
from collections.abc import Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import orjson

from local.fake_analytiks.protocol import DATA_PATHS, TOKEN_PATHS, Reply

if TYPE_CHECKING:
    from local.fake_analytiks.server import FakeAnalytiks


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], api: FakeAnalytiks) -> None:
        super().__init__(address, _Handler)
        self.api = api
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()

    def track(self, sock: socket.socket, add: bool) -> None:
        with self._conns_lock:
            (self._conns.add if add else self._conns.discard)(sock)

    def close_connections(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for sock in conns:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # clients hanging up, resets: not our problem
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "analytiks-fake/1.0"
    timeout = 120  # idle keep-alive connections
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        self.server.track(self.connection, False)
        with contextlib.suppress(OSError):
            super().finish()

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- responses

    def _send(
        self,
        path: str,
        status: int,
        body: bytes,
        headers: Sequence[tuple[str, str]] = (),
        truncate: bool = False,
    ) -> None:
        lines = [
            f"HTTP/1.1 {status} {_phrase(status)}",
            f"Server: {self.server_version}",
            f"Date: {self.date_time_string()}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            *(f"{name}: {value}" for name, value in headers),
        ]
        if truncate or self.close_connection:
            lines.append("Connection: close")
            self.close_connection = True
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        sent = body[: len(body) // 2] if truncate else body
        # count first: a client may look at the stats as soon as it has the response
        self.server.api.record_response(path, status, len(sent))
        if len(sent) <= 65536:  # one write (one segment) for small responses
            self.wfile.write(head + sent)
        else:
            self.wfile.write(head)
            self.wfile.write(sent)
        if truncate:
            self.close_connection = True
            self.wfile.flush()

    def _send_json(
        self, path: str, status: int, payload: object, headers: Sequence[tuple[str, str]] = ()
    ) -> None:
        self._send(path, status, orjson.dumps(payload), headers)

    def _reset(self) -> None:
        """Close abruptly: SO_LINGER 0 makes close() send RST, no response at all."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        finally:
            self.rfile.close()  # the makefile() reader holds a reference to the socket
            self.connection.close()

    def _status_fault(self, path: str, status: int) -> None:
        headers: list[tuple[str, str]] = []
        retry_after = self.server.api.faults.retry_after
        if status == 429 and retry_after is not None:
            headers.append(("Retry-After", _seconds(retry_after)))
        self._send_json(path, status, {"message": _phrase(status)}, headers)

    def _read_body(self) -> bytes | None:
        length = self.headers.get("Content-Length")
        if length is None:
            if self.headers.get("Transfer-Encoding"):
                self.close_connection = True
            return None
        try:
            n = int(length)
        except ValueError:
            n = -1
        if n < 0:
            self.close_connection = True
            return None
        return self.rfile.read(n)

    # -- dispatch

    def do_POST(self) -> None:
        api = self.server.api
        arrived = time.monotonic()
        path = self.path.split("?", 1)[0]
        api.record_call(path)
        content = self._read_body()
        if content is None:
            self._send_json(path, 411, {"message": "Content-Length is required"})
            return
        variant = DATA_PATHS.get(path)
        if variant is None and path not in TOKEN_PATHS:
            self._send_json(path, 404, {"message": f"Not found: {path}"})
            return
        if variant is not None and api.over_rate_limit():
            # Over the rate limit: refused at once, before any work (or latency).
            self._status_fault(path, 429)
            return
        fault = api.next_fault(data=variant is not None)
        if variant is not None and fault is not None:
            _sleep_until(arrived + api.faults.latency)
        truncate = fault == "truncate"
        if fault is not None and self._suffer(path, fault):
            return
        if variant is None:
            status, body = api.token_answer(content)
            self._send(path, status, body, truncate=truncate)
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            body = api.data_answer(variant, headers, content)
        except Reply as reply:
            _sleep_until(arrived + api.faults.latency)
            self._send_json(path, reply.status, reply.payload, reply.headers)
            return
        # The latency is the whole answer's: rendering the page is part of it.
        _sleep_until(arrived + api.faults.latency)
        self._send(path, 200, body, truncate=truncate)

    def _suffer(self, path: str, fault: str) -> bool:
        """Act out an injected fault; True if it was the whole answer."""
        if fault == "reset":
            self._reset()
            return True
        if fault == "slow":
            time.sleep(self.server.api.faults.slow_seconds)
            return False
        if fault == "truncate":
            return False
        if len(fault) == 3 and fault.isdigit():
            self._status_fault(path, int(fault))
        else:
            self._send_json(path, 500, {"message": f"unknown injected fault {fault!r}"})
        return True

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        self.server.api.record_call(path)
        if path in ("/health", "/"):
            self._send_json(path, 200, {"status": "ok"})
        elif path in DATA_PATHS or path in TOKEN_PATHS:
            self._send_json(
                path, 405, {"message": "Method Not Allowed: use POST"}, [("Allow", "POST")]
            )
        else:
            self._send_json(path, 404, {"message": f"Not found: {path}"})


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Injected fault"


def _sleep_until(moment: float) -> None:
    left = moment - time.monotonic()
    if left > 0:
        time.sleep(left)


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
