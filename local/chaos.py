"""Tools of the fault and bad-input campaign (tests/chaos, `make chaos`).

* `ScriptedApi`: a minimal loopback HTTP server playing the analytiks token
  endpoint and v3 with *scripted* answers, to break the documented contract
  (non-JSON 200s, wrong shapes, bad metric values, looping cursors, hostile
  strings). The fake in `local.fake_analytiks` stays faithful; this one lies.
* `TlsServer`: an HTTPS server on 127.0.0.1 with a freshly generated
  self-signed certificate, counting the requests that got through the handshake.
* `find_secrets`: where any of the given secrets occurs in a set of blobs
  (gzip members are decompressed first).
* `CampaignRow` / `write_report`: the campaign's table, rendered into
  docs/reliability.md between two marker comments.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import io
import ipaddress
import secrets
import ssl
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import orjson

V3_PATH = "/wifi/json/v3"
TOKEN_PATH = "/oauth/token"


@dataclass(frozen=True)
class Request:
    path: str
    headers: Mapping[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return None

    @property
    def cursor(self) -> str | None:
        doc = self.json()
        value = doc.get("cursor") if isinstance(doc, dict) else None
        return value if isinstance(value, str) else None


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def json(cls, payload: Any, status: int = 200) -> Reply:
        return cls(status, orjson.dumps(payload))


Responder = Callable[[Request], Reply]


def v3_pages(pages: Mapping[str | None, Any]) -> Responder:
    """Answer a v3 request by its cursor: `pages[cursor]` is a payload (dumped) or raw bytes."""

    def respond(request: Request) -> Reply:
        answer = pages.get(request.cursor)
        if answer is None:
            return Reply.json({"message": "invalid cursor"}, 400)
        if isinstance(answer, bytes | Reply):
            return answer if isinstance(answer, Reply) else Reply(200, answer)
        return Reply.json(answer)

    return respond


def record(
    location_id: int,
    day: str = "2023-06-01",
    *,
    hours: Iterable[int] = range(24),
    reference: str | None = None,
    zone: str | None = None,
    metrics: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """One v3 location record with hourly UTC buckets of `day`."""
    values = dict(metrics or {"visits": 5, "bounces": 1})
    out: dict[str, Any] = {"locationId": location_id}
    if reference is not None:
        out["referenceNumber"] = reference
    if zone is not None:
        out["zoneId"] = zone
    for name, value in values.items():
        out[name] = {f"{day}T{h:02d}:00:00Z": value for h in hours}
    return out


class ScriptedApi:
    """Token endpoint + v3 on 127.0.0.1, answering from `v3` (and optionally `token`)."""

    def __init__(self, v3: Responder, token: Responder | None = None) -> None:
        self.v3 = v3
        self.token = token
        self.tokens: list[str] = []  # every access token handed out
        self.calls: Counter[str] = Counter()
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(
                    self.path.split("?", 1)[0],
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )
                reply = api.answer(request)
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply.body)))
                for name, value in reply.headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(reply.body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def answer(self, request: Request) -> Reply:
        with self._lock:
            self.calls[request.path] += 1
            self.requests.append(request)
        if request.path == TOKEN_PATH:
            if self.token is not None:
                return self.token(request)
            token = secrets.token_urlsafe(24)
            with self._lock:
                self.tokens.append(token)
            return Reply.json({"access_token": token, "expires_in": 3600, "token_type": "Bearer"})
        if request.path != V3_PATH:
            return Reply.json({"message": "not found"}, 404)
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        if bearer not in self.tokens:
            return Reply.json({"message": "Unauthorized"}, 401)
        return self.v3(request)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def token_url(self) -> str:
        return self.url + TOKEN_PATH

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def self_signed_pem(host: str = "127.0.0.1") -> tuple[bytes, bytes]:
    """(certificate, private key) in PEM for `host`: valid name, untrusted issuer."""
    from cryptography import x509  # noqa: PLC0415 -- a dev dependency, only needed here
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import NameOID  # noqa: PLC0415

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


class TlsServer:
    """HTTPS on 127.0.0.1 with a self-signed certificate; `requests` counts what got through."""

    def __init__(self) -> None:
        self.requests = 0
        self.handshakes_refused = 0  # by the client: the campaign's "fired"
        server_self = self

        class Server(ThreadingHTTPServer):
            def get_request(self) -> tuple[Any, Any]:
                try:
                    return super().get_request()
                except ssl.SSLError:
                    server_self.handshakes_refused += 1
                    raise

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                server_self.requests += 1
                body = orjson.dumps({"access_token": "tls-token", "expires_in": 3600})
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        cert, key = self_signed_pem()
        with tempfile.TemporaryDirectory() as tmp:
            cert_file, key_file = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
            cert_file.write_bytes(cert)
            key_file.write_bytes(key)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert_file, key_file)
        self._server = Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()


def parquet_text(blob: bytes) -> bytes:
    """Every value of a Parquet object as text, one a line: ZSTD pages would hide a
    secret from a byte search."""
    from arro3.io import read_parquet  # noqa: PLC0415 -- only for Parquet objects

    values: list[str] = []
    for batch in read_parquet(io.BytesIO(blob)):
        for name in batch.schema.names:
            values.extend(str(v) for v in batch.column(name).to_pylist() if v is not None)
    return "\n".join(values).encode()


def find_secrets(blobs: Iterable[tuple[str, bytes]], needles: Iterable[str]) -> list[str]:
    """`where: secret…` for each blob containing a needle (gzip bodies are decompressed,
    Parquet objects read)."""
    wanted = [n.encode() for n in needles if n]
    found: list[str] = []
    for where, blob in blobs:
        data = blob
        if blob[:2] == b"\x1f\x8b":
            with contextlib.suppress(OSError, EOFError):
                data = gzip.decompress(blob)
        elif blob[:4] == b"PAR1":
            data = blob + parquet_text(blob)
        for needle in wanted:
            if needle in data:
                found.append(f"{where}: {needle[:6].decode(errors='replace')}…")
    return found


# -- the campaign's report ---------------------------------------------------------------

BEGIN = "<!-- chaos-campaign:begin -->"
END = "<!-- chaos-campaign:end -->"


@dataclass
class CampaignRow:
    """One scenario: the fault (`case`), where it fires, whether it fired (the scenario
    asserts it did), the outcome expected and seen, and what was checked."""

    group: str
    case: str
    expected: str
    where: str = ""
    fired: str = ""
    checked: str = ""
    outcome: str = "?"
    notifications: int = 0
    retries: str = "-"
    api_calls: int = 0
    redeliveries: int = 0
    invocations: int = 0
    seconds: float = 0.0
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def render_table(rows: Iterable[CampaignRow]) -> str:
    head = (
        "| group | fault / input | where it fires | fired | expected | outcome | checked | "
        "notifications | retries | API calls | redeliveries | invocations | seconds | detail |\n"
        "|---|---|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---|\n"
    )
    lines = [
        "| "
        + " | ".join(
            _cell(v)
            for v in (
                r.group,
                r.case,
                r.where or "-",
                r.fired or "-",
                r.expected,
                r.outcome,
                r.checked or "-",
                r.notifications,
                r.retries,
                r.api_calls,
                r.redeliveries,
                r.invocations,
                f"{r.seconds:.1f}",
                r.detail[:110],
            )
        )
        + " |"
        for r in rows
    ]
    return head + "\n".join(lines) + "\n"


def write_report(path: Path, rows: list[CampaignRow], size: str, seconds: float) -> None:
    """Replace the campaign section of `path` (kept between BEGIN/END) with a fresh table."""
    text = path.read_text() if path.exists() else f"# Reliability\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text = text.rstrip() + f"\n\n{BEGIN}\n{END}\n"
    before, rest = text.split(BEGIN, 1)
    _, after = rest.split(END, 1)
    outcomes = Counter(r.outcome.split(" ")[0].rstrip(",") for r in rows)
    summary = ", ".join(f"{n} {k}" for k, n in sorted(outcomes.items()))
    section = (
        f"{BEGIN}\n"
        f"_Generated by `make chaos` (CHAOS_SIZE={size}): {len(rows)} scenarios in "
        f"{seconds:.0f} s; {summary}._\n\n"
        f"{render_table(rows)}"
        f"{END}"
    )
    path.write_text(before + section + after)
