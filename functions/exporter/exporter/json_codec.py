"""JSON in and out, behind one small module so the parser can be swapped.

orjson parses the API's pages several times faster than the stdlib json
(docs/performance.md); every JSON the exporter reads or writes goes through here.
A large document of which only a few members matter is split with msgspec into
its members' undecoded text (`loads_members`), so the rest is neither parsed
nor rebuilt (exporter/lake/records.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
import orjson

JSONDecodeError = orjson.JSONDecodeError
# A member's text as it was read: written back verbatim by `dumps_members`.
Raw = msgspec.Raw
_MEMBERS = msgspec.json.Decoder(dict[str, msgspec.Raw])


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    return orjson.loads(data)


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def loads_members(data: bytes | bytearray | memoryview | str) -> dict[str, Raw]:
    """A JSON object's members, each value left as its text (scanned, not decoded)."""
    try:
        return _MEMBERS.decode(data)
    except msgspec.MsgspecError as exc:  # not JSON, or not an object
        raise JSONDecodeError(str(exc), "", 0) from None


def loads_raw(raw: Raw) -> Any:
    """One member `loads_members` left as text, decoded."""
    return orjson.loads(memoryview(raw))


def dumps_members(members: Mapping[str, Any]) -> bytes:
    """An object of members that are values or `Raw` text (written as it was read)."""
    return msgspec.json.encode(members)


def dumps_pretty(value: Any) -> bytes:
    """Indented, sorted keys: for documents a person reads (plan, status, manifest)."""
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
