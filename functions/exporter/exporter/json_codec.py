"""JSON in and out, behind one small module so the parser can be swapped.

orjson parses the API's pages several times faster than the stdlib json
(docs/performance.md); every JSON the exporter reads or writes goes through here.
"""

from __future__ import annotations

from typing import Any

import orjson

JSONDecodeError = orjson.JSONDecodeError


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    return orjson.loads(data)


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def dumps_pretty(value: Any) -> bytes:
    """Indented, sorted keys: for documents a person reads (plan, status, manifest)."""
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
