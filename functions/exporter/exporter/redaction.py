"""Keeping secrets and hostile text out of everything the exporter writes down.

`redact` knows every secret this process has seen (the client secret, every
access token); the logger and every error bound for a record or a notification
go through it, before truncation (`MAX_ERROR_CHARS`) and serialization. Why:
docs/decisions.md, "Redaction".
"""

from __future__ import annotations

import re
import threading
from typing import Any, Final

from exporter.errors import ExportError

REDACTED: Final = "[redacted]"
# Every error string that reaches a failure record, the status object or a
# notification is at most this long (a cut one ends with a note saying so).
MAX_ERROR_CHARS: Final = 1_000
# Tokens remembered per process; a warm container sees a new one per expiry
# (or per revocation). The oldest are forgotten first; client secrets never are.
_MAX_TOKENS: Final = 512

# Control characters (CR/LF among them) are folded to spaces in error text, so
# an error is one line wherever it is shown.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_ERROR_CODE = re.compile(r"[A-Za-z][A-Za-z0-9.]{0,63}")
# What a terminal would act on rather than show: escape sequences whole (CSI;
# OSC, OSC 8 links among them, DCS, SOS, PM, APC up to their terminator; 7-bit
# and 8-bit introducers), then any control character left, C0 and C1, and the
# bidirectional controls that reorder what is shown.
_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f]).*?(?:\x07|\x1b\\|\x9c|\Z)"
    r"|\x1b[\x20-\x2f]*[\x30-\x7e]?",
    re.DOTALL,
)
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")

_lock = threading.Lock()
_client_secrets: set[str] = set()
_tokens: dict[str, None] = {}  # insertion-ordered: the oldest is evicted first
_pattern: re.Pattern[str] | None = None  # of every known secret; None: build it anew
_empty = True


def remember_client_secret(secret: str) -> None:
    _remember(secret, client_secret=True)


def remember_token(token: str) -> None:
    _remember(token, client_secret=False)


def _remember(secret: str, *, client_secret: bool) -> None:
    global _pattern, _empty
    if not secret:
        return
    with _lock:
        if secret in _client_secrets or secret in _tokens:
            return
        if client_secret:
            _client_secrets.add(secret)
        else:
            _tokens[secret] = None
            while len(_tokens) > _MAX_TOKENS:
                del _tokens[next(iter(_tokens))]
        _pattern, _empty = None, False


def forget() -> None:
    """Forget every remembered secret (a cold start; tests)."""
    global _pattern, _empty
    with _lock:
        _client_secrets.clear()
        _tokens.clear()
        _pattern, _empty = None, True


def _current_pattern() -> re.Pattern[str] | None:
    global _pattern  # noqa: PLW0603
    with _lock:
        if _pattern is None and not _empty:
            # Longest first: a secret that contains another is replaced whole.
            known = sorted({*_client_secrets, *_tokens}, key=len, reverse=True)
            _pattern = re.compile("|".join(re.escape(s) for s in known))
        return _pattern


def redact(text: str) -> str:
    """`text` with every secret this process has seen replaced by `[redacted]`."""
    if _empty or not text:
        return text
    pattern = _current_pattern()
    return pattern.sub(REDACTED, text) if pattern is not None else text


def redact_value(value: Any) -> Any:
    """A copy of a JSON-like value with every string (keys too) redacted.

    Anything that is not a JSON scalar, list or dict becomes its redacted
    `str()`: what a JSON serializer would otherwise turn into text unredacted.
    """
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return {(redact(k) if isinstance(k, str) else k): redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return redact(str(value))


def error_text(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """Error text fit for a record or a notification: redacted whole, then one
    line without escape sequences, then at most `limit` characters."""
    clean = _CONTROL.sub(" ", _ESCAPES.sub("", redact(text)))
    if len(clean) <= limit:
        return clean  # so bounding bounded text changes nothing
    note = f"… [cut, {len(clean):,} characters in all]"
    return clean[: max(limit - len(note), 0)] + note


def printable(text: str) -> str:
    """`text` as plain characters for a terminal or a mail reader: every escape
    sequence and control character removed (docs/reliability.md, "Hardening II")."""
    return _UNPRINTABLE.sub("", _ESCAPES.sub("", text))


def printable_value(value: Any) -> Any:
    """A copy of a JSON-like value with every string (keys too) `printable`."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {
            (printable(k) if isinstance(k, str) else k): printable_value(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [printable_value(v) for v in value]
    return value


def describe(exc: BaseException, limit: int = MAX_ERROR_CHARS) -> str:
    """An exception as error text for records and notifications.

    The exporter's own errors (`ExportError`) carry messages written for a
    reader: their text is kept (redacted, bounded). Any other exception's
    text is withheld: it may quote a request (http.client's ValueError for a
    bad header quotes the header, bearer token and all) or a response. Only
    its type is given, and an AWS error code where the exception has one.
    """
    name = type(exc).__name__
    if isinstance(exc, ExportError):
        return error_text(f"{name}: {exc}", limit)
    code = _aws_error_code(exc)
    return f"{name} ({code})" if code else name


def _aws_error_code(exc: BaseException) -> str | None:
    """botocore's ClientError code (`SlowDown`, `AccessDenied`), if it looks like one."""
    response = getattr(exc, "response", None)
    error = response.get("Error") if isinstance(response, dict) else None
    code = error.get("Code") if isinstance(error, dict) else None
    if isinstance(code, str) and _ERROR_CODE.fullmatch(code):
        return code
    return None
