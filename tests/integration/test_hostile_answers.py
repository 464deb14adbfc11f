"""The API client against hostile answers, over real loopback sockets: bad tokens,
echoes of secrets, oversized and compressed bodies (docs/reliability.md, "Secrets
and hostile answers"). The same cases end to end through the handler are in
tests/integration/test_hostile_runs.py."""

from __future__ import annotations

import json
import threading
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

import pytest

from exporter import redaction
from exporter.api_client import (
    MAX_PAGE_BYTES,
    MAX_TOKEN_ANSWER_BYTES,
    AnalytiksClient,
    RetryPolicy,
    forget_tokens,
)
from exporter.errors import ApiRejected, MalformedResponse, PermanentError
from exporter.ports import Credentials
from local.chaos import TOKEN_PATH, V3_PATH, Reply, Request, ScriptedApi, v3_pages

START, END = "2023-06-08T00:00:00.000Z", "2023-06-08T23:59:59.999Z"
GOOD_PAGE: dict[str, Any] = {"data": [], "cursor": None}
MIB = 1024 * 1024
# A client secret with characters JSON and repr escape, and a non-ASCII one.
ODD_SECRET = 'cl1ent"se\\cret\n-\u00e9-\u2028-Z9'


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    forget_tokens()
    yield
    forget_tokens()


def client(api: Any, secret: str = "demo-secret-value") -> AnalytiksClient:
    return AnalytiksClient(
        api.url,
        api.token_url,
        "https://gql.analytiks.ai",
        lambda: Credentials("demo-client", secret),
        policy=RetryPolicy(max_attempts=2, base_delay_s=0.0),
        sleep=lambda _s: None,
        jitter=lambda: 0.0,
    )


def plenty() -> float:
    return 600.0


def fetch(c: AnalytiksClient) -> tuple[list[Any], str | None]:
    return c.fetch_v3(1234, START, END, None, plenty)


def forms(secret: str) -> list[str]:
    """A secret as a search finds it: raw, JSON-escaped, repr-escaped, and its start."""
    return [
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1],
        secret[:6],
    ]


def token(answer: dict[str, Any]) -> Callable[[Request], Reply]:
    return lambda _request: Reply.json({"expires_in": 3600, "token_type": "Bearer", **answer})


# -- tokens ----------------------------------------------------------------------------

CRLF_TOKEN = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LXBheWxvYWQ\r\nX-Injected: yes-6f1e0c2b9a"


@pytest.mark.parametrize(
    "bad",
    [CRLF_TOKEN, "abc def-6f1e0c2b9a", "tok\x00en-6f1e0c2b9a", "t\u00f6ken-6f1e0c2b9a", "a=b"],
)
def test_a_token_outside_rfc_6750_is_refused_unused_and_unquoted(bad: str) -> None:
    with (
        ScriptedApi(v3_pages({None: GOOD_PAGE}), token=token({"access_token": bad})) as api,
        pytest.raises(MalformedResponse) as error,
    ):
        fetch(client(api))
    assert "access_token is not a bearer token" in str(error.value)
    assert api.calls[V3_PATH] == 0  # never sent
    for form in [*forms(bad), "6f1e0c2b9a"]:
        assert form not in str(error.value)


def test_a_b64token_with_padding_is_accepted() -> None:
    good = "AZaz09-._~+/abc=="
    with ScriptedApi(v3_pages({None: GOOD_PAGE}), token=token({"access_token": good})) as api:
        api.tokens.append(good)  # the scripted v3 accepts it
        assert fetch(client(api)) == ([], None)
        assert api.requests[-1].headers["authorization"] == f"Bearer {good}"


def test_a_header_http_client_refuses_becomes_a_type_only_error() -> None:
    """Belt and braces behind the token check: http.client's ValueError quotes the
    header, bearer token and all; what the client raises names the type only."""
    with ScriptedApi(v3_pages({None: GOOD_PAGE})) as api:
        c = client(api)
        with pytest.raises(PermanentError) as error:
            c._transport.post(
                api.url + V3_PATH,
                b"{}",
                {"Authorization": f"Bearer {CRLF_TOKEN}"},
                plenty,
                what="v3 page for brand 1234",
            )
    assert str(error.value) == "v3 page for brand 1234: the request could not be sent (ValueError)"
    assert api.calls[V3_PATH] == 0


# -- echoes ------------------------------------------------------------------------------


def echo_of(api: ScriptedApi, shape: Callable[[str], Any], status: int = 400) -> None:
    """v3 answers `status` with a JSON body that echoes the bearer token it was sent."""

    def respond(request: Request) -> Reply:
        bearer = request.headers["authorization"].removeprefix("Bearer ")
        return Reply.json(shape(bearer), status)

    api.v3 = respond


@pytest.mark.parametrize(
    ("status", "shape"),
    [
        (400, lambda t: {"message": "x" * 150 + t + " was rejected" + "y" * 300}),
        (400, lambda t: {"detail": {"request": {"body": ODD_SECRET, "auth": t}}}),
        (400, lambda t: {"error": "bad_request", "message": f"Bearer {t}"}),
        (403, lambda t: {"error": t}),
        (403, lambda t: {"error": f"denied {t[:12]} {t[12:]}"}),
        (404, lambda t: f"denied: Bearer {t}"),
    ],
)
def test_no_4xx_body_is_quoted(status: int, shape: Callable[[str], Any]) -> None:
    """A 4xx body may echo the token in any encoding: only its status is quoted (and
    an `error` code, see below)."""
    with ScriptedApi(v3_pages({})) as api:
        echo_of(api, shape, status)
        with pytest.raises(ApiRejected) as error:
            fetch(client(api, secret=ODD_SECRET))
        (issued,) = api.tokens
    text = str(error.value)
    assert text in {
        f"v3 page for brand 1234: the API rejected the request ({status})",
        f"v3 page for brand 1234: the API rejected the request ({status}): bad_request",
    }
    for form in forms(ODD_SECRET) + forms(issued):
        assert form not in text


@pytest.mark.parametrize("code", ["invalid_request", "InvalidDateRange", "brand.unknown"])
def test_a_short_error_code_is_quoted(code: str) -> None:
    with ScriptedApi(v3_pages({})) as api:
        echo_of(api, lambda _t: {"error": code, "message": "the rest is not quoted"})
        with pytest.raises(ApiRejected) as error:
            fetch(client(api))
    assert str(error.value) == f"v3 page for brand 1234: the API rejected the request (400): {code}"


def test_token_endpoint_answers_are_never_quoted() -> None:
    def echo(request: Request) -> Reply:
        return Reply.json({"message": f"invalid request {request.body.decode()}"}, 400)

    with ScriptedApi(v3_pages({}), token=echo) as api, pytest.raises(ApiRejected) as error:
        fetch(client(api, secret=ODD_SECRET))
    text = str(error.value)
    assert text.startswith("token endpoint: the token request was rejected (400)")
    assert "invalid request" not in text
    for form in forms(ODD_SECRET):
        assert form not in text


# -- size ----------------------------------------------------------------------------------


def test_a_page_over_the_limit_is_refused() -> None:
    body = b"[" + b" " * MAX_PAGE_BYTES + b"]"
    with (
        ScriptedApi(v3_pages({None: Reply(200, body)})) as api,
        pytest.raises(MalformedResponse, match=r"larger than 67,108,864 bytes"),
    ):
        fetch(client(api))


def test_a_page_at_the_limit_is_read() -> None:
    payload = b'{"data": [], "cursor": null}'
    body = payload + b" " * (MAX_PAGE_BYTES - len(payload))
    with ScriptedApi(v3_pages({None: Reply(200, body)})) as api:
        assert fetch(client(api)) == ([], None)


def test_a_token_answer_over_its_limit_is_refused() -> None:
    padded = Reply(
        200, json.dumps({"access_token": "abc", "pad": "x" * MAX_TOKEN_ANSWER_BYTES}).encode()
    )
    with (
        ScriptedApi(v3_pages({None: GOOD_PAGE}), token=lambda _r: padded) as api,
        pytest.raises(MalformedResponse, match=r"^token request: .*larger than 65,536 bytes"),
    ):
        fetch(client(api))


class EndlessApi:
    """Token endpoint, and a v3 that streams a chunked body without end: no
    Content-Length to refuse up front. Counts what it managed to send."""

    def __init__(self) -> None:
        self.sent = 0
        self.done = threading.Event()
        chunk = b"0" * MIB
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path == TOKEN_PATH:
                    body = json.dumps({"access_token": "endless-token", "expires_in": 60})
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body.encode())
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    while api.sent < 4 * MAX_PAGE_BYTES:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        api.sent += len(chunk)
                except OSError:
                    pass  # the client hung up
                finally:
                    api.done.set()
                    self.close_connection = True

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    url = property(lambda self: f"http://127.0.0.1:{self._server.server_address[1]}")
    token_url = property(lambda self: self.url + TOKEN_PATH)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def test_an_endless_page_is_cut_off_at_the_limit() -> None:
    with EndlessApi() as api:
        c = client(api)
        tracemalloc.start()
        try:
            with pytest.raises(MalformedResponse, match="larger than 67,108,864 bytes"):
                fetch(c)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert api.done.wait(10)
    # The client hung up right after the limit (plus what the socket buffers held) ...
    assert MAX_PAGE_BYTES <= api.sent < MAX_PAGE_BYTES + 32 * MIB
    # ... and never held much more than the limit.
    assert peak < MAX_PAGE_BYTES + 16 * MIB


# -- compression ---------------------------------------------------------------------------


def gzip_bomb() -> bytes:
    """About 1 MB of gzip that inflates to 1 GiB: 16 members of 64 MiB of zeros each."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    member = packer.compress(bytes(64 * MIB)) + packer.flush()
    return member * 16


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("gzip", gzip_bomb),
        ("br", lambda: b"\x1b\xff\xff\xff\x0f\x00" * 100_000),
        ("deflate", lambda: zlib.compress(b'{"data": [], "cursor": null}')),
        ("zstd", lambda: b"(\xb5/\xfd" + bytes(1000)),
        ("gzip, identity", gzip_bomb),
        ("GZIP", gzip_bomb),
    ],
)
def test_a_compressed_answer_is_refused_without_inflating_it(
    encoding: str, body: Callable[[], bytes]
) -> None:
    reply = Reply(200, body(), (("Content-Encoding", encoding),))
    with ScriptedApi(v3_pages({None: reply})) as api:
        c = client(api)
        tracemalloc.start()
        try:
            with pytest.raises(MalformedResponse, match=r"compressed .*refused, not decompressed"):
                fetch(c)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 4 * MIB  # nothing was inflated (nor even read)
        # Asked for identity, every time; and the pool still works after the refusal.
        assert {r.headers.get("accept-encoding") for r in api.requests} == {"identity"}
        api.v3 = v3_pages({None: GOOD_PAGE})
        assert fetch(c) == ([], None)


def test_a_compressed_error_answer_is_not_quoted() -> None:
    bomb = Reply(400, gzip_bomb(), (("Content-Encoding", "gzip"),))
    with (
        ScriptedApi(v3_pages({None: bomb})) as api,
        pytest.raises(ApiRejected, match=r"the API rejected the request \(400\)$"),
    ):
        fetch(client(api))


def test_tokens_the_client_sees_are_known_to_the_redaction() -> None:
    with ScriptedApi(v3_pages({None: GOOD_PAGE})) as api:
        fetch(client(api, secret=ODD_SECRET))
        (issued,) = api.tokens
    assert redaction.redact(f"{issued} {ODD_SECRET}") == "[redacted] [redacted]"
