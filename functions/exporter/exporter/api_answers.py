"""What the analytiks API answers, read and checked before anything trusts it.

Bodies are read raw and bounded (never decompressed), error answers are quoted
only redacted and cut, v3 pages and v2 refusals are checked for the shapes the
API document allows (docs/reliability.md, "Secrets and hostile answers").
"""

from __future__ import annotations

import math
from typing import Any, Final

import urllib3

from exporter import json_codec, redaction
from exporter.errors import MalformedResponse
from exporter.ports import MAX_CURSOR_LENGTH

# The most a response body may be, read raw (never decompressed): a data page
# is a few hundred KB to a few MB (docs/performance.md), a token answer well
# under 1 KB. Larger answers are refused as malformed before they fill memory.
MAX_PAGE_BYTES: Final = 64 * 1024 * 1024
MAX_TOKEN_ANSWER_BYTES: Final = 64 * 1024
# An error answer is quoted (redacted, then cut to `_QUOTE_CHARS`) only if it is
# at most this long; a longer one is not read at all.
MAX_ERROR_ANSWER_BYTES: Final = 64 * 1024
_QUOTE_CHARS: Final = 200
_READ_CHUNK: Final = 1024 * 1024

_MAX_REFUSED: Final = 10_000  # a selection names at most 10,000 ids


def json_or_none(data: bytes) -> Any:
    try:
        return json_codec.loads(data)
    except json_codec.JSONDecodeError:
        return None


def refused_ids(payload: Any) -> tuple[int | str, ...]:
    """The ids a 401 body or a v2 `failures` object names (`locations`), bounded."""
    ids = payload.get("locations") if isinstance(payload, dict) else None
    if not isinstance(ids, list):
        return ()
    kept = [
        i if isinstance(i, int) else i[:128]
        for i in ids[:_MAX_REFUSED]
        if (isinstance(i, int) and not isinstance(i, bool)) or isinstance(i, str)
    ]
    return tuple(kept)


def selector_ids(selector: dict[str, Any]) -> tuple[int | str, ...]:
    for name in ("locations", "referenceNumbers"):
        if isinstance(selector.get(name), list):
            return tuple(selector[name])
    return (selector["zoneId"],) if "zoneId" in selector else ()


def header_seconds(header: str | None) -> float | None:
    """A Retry-After in seconds, uncapped; None for an HTTP-date, garbage or none."""
    if header is None:
        return None
    try:
        value = float(header)
    except ValueError:
        return None
    return max(value, 0.0) if math.isfinite(value) else None


def content_encoding(response: urllib3.BaseHTTPResponse) -> str:
    return (response.headers.get("Content-Encoding") or "identity").strip().lower()


def receive(response: urllib3.BaseHTTPResponse, limit: int, what: str) -> bytearray | None:
    """The body a status needs, raw and bounded; the connection is released after.

    A 200's body must be identity-encoded and at most `limit` bytes, else the
    answer is refused as malformed: nothing is decompressed, and no more than
    `limit` plus one chunk is ever held. Another status's body is kept (None
    otherwise) only if it is identity-encoded and short enough to be quoted.
    Raises urllib3's HTTPError when the body breaks off.
    """
    complete = False
    try:
        encoding = content_encoding(response)
        if response.status == 200:
            if encoding != "identity":
                raise MalformedResponse(
                    f"{what}: the answer is compressed (Content-Encoding {encoding[:32]!r}) "
                    "although identity was asked for; refused, not decompressed"
                )
            body = _read_capped(response, limit)
            if body is None:
                raise MalformedResponse(f"{what}: the answer is larger than {limit:,} bytes")
        else:
            body = None
            if encoding == "identity":
                body = _read_capped(response, MAX_ERROR_ANSWER_BYTES)
        complete = body is not None
        return body
    finally:
        if not complete:
            # Unread bytes stay behind: close rather than drain (a hostile answer
            # may never end); the pool opens a new connection next time.
            response.close()
        response.release_conn()


def _read_capped(response: urllib3.BaseHTTPResponse, limit: int) -> bytearray | None:
    """The whole raw body, or None as soon as it proves longer than `limit`."""
    declared = (response.headers.get("Content-Length") or "").strip()
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    while chunk := response.read(min(_READ_CHUNK, limit + 1 - len(body)), decode_content=False):
        body += chunk
        if len(body) > limit:
            return None
    return body


def reason(data: bytearray | None) -> str:
    """What an error answer says, for an error message: redacted whole, then cut.

    The answer may echo the request (its bearer token). Redaction runs on the
    parsed, unescaped strings before anything is serialized or cut, so neither
    JSON or repr escaping nor a cut through a secret can leave part of it.
    """
    if data is None:
        return f"(answer not quoted: compressed or longer than {MAX_ERROR_ANSWER_BYTES:,} bytes)"
    try:
        payload = json_codec.loads(data)
    except json_codec.JSONDecodeError:
        text = redaction.redact(data.decode("utf-8", "replace"))
    else:
        if isinstance(payload, dict):
            message = payload.get("message") or payload.get("error")
            payload = message if isinstance(message, str) else payload
        payload = redaction.redact_value(payload)
        text = payload if isinstance(payload, str) else json_codec.dumps(payload).decode()
    return redaction.error_text(text, _QUOTE_CHARS)


def v3_page(payload: Any) -> tuple[list[Any], str | None]:
    if not isinstance(payload, dict) or "data" not in payload:
        raise MalformedResponse("v3 answer is not an object with 'data' and 'cursor'")
    data = payload["data"]
    if not isinstance(data, list):
        raise MalformedResponse("v3 'data' is not a list")
    cursor = payload.get("cursor")
    if cursor is not None:
        if not isinstance(cursor, str) or not cursor:
            raise MalformedResponse("v3 'cursor' is neither a string nor null")
        if len(cursor) > MAX_CURSOR_LENGTH:
            raise MalformedResponse(f"v3 'cursor' is longer than {MAX_CURSOR_LENGTH} characters")
    return data, cursor
