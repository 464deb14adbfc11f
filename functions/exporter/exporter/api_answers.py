"""What the analytiks API answers, read and checked before anything trusts it.

Bodies are read raw and bounded (never decompressed), error answers are never
quoted (only an `error` code that cannot carry a token), v3 pages and v2
refusals are checked for the shapes the API document allows (docs/reliability.md,
"Secrets and hostile answers").
"""

from __future__ import annotations

import math
import re
from typing import Any, Final

import urllib3

from exporter import json_codec, redaction
from exporter.errors import MalformedResponse
from exporter.ports import MAX_CURSOR_LENGTH

# The most a response body may be, read raw (never decompressed): a data page
# is a few hundred KB to a few MB (docs/performance.md), a token answer well
# under 1 KB. Larger answers are refused as malformed before they fill memory.
MAX_PAGE_BYTES: Final = 64 * 1024 * 1024
# Below that ceiling, the function's memory decides (`page_limit`): a step holds
# up to three parsed pages (one shaped, one read ahead, one being read), and a
# page of tiny JSON objects takes ~27 times its size once parsed: measured 80
# times a page in all, 96 with a margin (bench/page_memory.py; docs/performance.md,
# "Page cap and memory").
PAGE_PEAK_FACTOR: Final = 96
# What the runtime, the imports and the gzip parts of a step need besides.
RESERVED_MIB: Final = 160
MIN_PAGE_BYTES: Final = 1024 * 1024
MAX_TOKEN_ANSWER_BYTES: Final = 64 * 1024
# An error answer is read (for its `error` code and refused ids) only if it is at
# most this long; a longer one is not read at all.
MAX_ERROR_ANSWER_BYTES: Final = 64 * 1024
# The `error` field quoted from a 4xx answer: an error code, never a sentence.
_ERROR_CODE: Final = re.compile(r"[A-Za-z][A-Za-z0-9 _.:-]{0,63}", re.ASCII)
_TOKEN_RUN: Final = re.compile(r"[^ ]{20}")
_READ_CHUNK: Final = 1024 * 1024

_MAX_REFUSED: Final = 10_000  # a selection names at most 10,000 ids
_MAX_BIGINT: Final = 2**63 - 1


def page_limit(memory_mib: str | None) -> int:
    """The page cap for a function of `memory_mib` (AWS_LAMBDA_FUNCTION_MEMORY_SIZE):
    the worst case of three pages stays within the memory. Outside Lambda (no
    value), the ceiling."""
    if memory_mib is None or not (memory_mib.isascii() and memory_mib.isdigit()):
        return MAX_PAGE_BYTES
    share = (int(memory_mib) - RESERVED_MIB) * 1024 * 1024 // PAGE_PEAK_FACTOR
    return max(MIN_PAGE_BYTES, min(MAX_PAGE_BYTES, share))


def json_or_none(data: bytes) -> Any:
    try:
        return json_codec.loads(data)
    except json_codec.JSONDecodeError:
        return None


def refused_ids(
    payload: Any, requested: tuple[int | str, ...] | None = None
) -> tuple[int | str, ...]:
    """The ids a 401 body or a v2 `failures` object names (`locations`), bounded.

    With `requested` (the batch's ids), only ids the batch asked for are kept: a
    refused id is stored, notified and shown to operators, so the API must not
    be able to put text of its own there. A batch of reference numbers or a zone
    may be refused by location id: then positive bigints are kept too (a number
    carries no text). At most as many ids as were requested.
    """
    ids = payload.get("locations") if isinstance(payload, dict) else None
    if not isinstance(ids, list):
        return ()
    kept = [
        i if isinstance(i, int) else i[:128]
        for i in ids[:_MAX_REFUSED]
        if (isinstance(i, int) and not isinstance(i, bool)) or isinstance(i, str)
    ]
    if requested is not None:
        asked = set(requested)
        by_location = not any(type(i) is int for i in requested)
        kept = [
            i
            for i in dict.fromkeys(kept)
            if i in asked or (by_location and type(i) is int and 0 < i <= _MAX_BIGINT)
        ][: len(asked)]
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


def error_code(data: bytearray | None) -> str | None:
    """The API's `error` field of an error answer, if it is safe to quote, else None.

    The body of a 4xx answer is never quoted: it may echo the request's bearer
    token in a form no redaction recognises (percent-encoded, base64). Only an
    `error` field that reads like an error code is: short, ASCII words, and no
    run of token characters long enough to carry a token however encoded.
    """
    payload = json_or_none(bytes(data)) if data is not None else None
    code = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(code, str) or not _ERROR_CODE.fullmatch(code):
        return None
    if _TOKEN_RUN.search(code) or redaction.redact(code) != code:
        return None
    return code


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
