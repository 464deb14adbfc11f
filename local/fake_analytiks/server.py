"""The fake analytiks token + WiFi JSON export API over real HTTP (stdlib only + orjson).

See the package docstring for the public API and ``data.py`` for the data model.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import random
import secrets
import socket
import struct
import sys
import threading
import time
import zlib
from collections import Counter, OrderedDict, deque
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final, Self

import orjson

from local.fake_analytiks.data import (
    MAX_RANGE,
    Basis,
    all_metrics,
    brand_of,
    grid_minutes,
    local_buckets,
    location_ids,
    location_of_reference,
    location_record,
    offset_text,
    parse_api_date,
    reference_number,
    time_key,
    utc_offset_minutes,
    zone_id,
)

AUDIENCE: Final = "https://gql.analytiks.ai"
DATA_PATHS: Final = {f"/wifi/json/v{i}": f"v{i}" for i in range(1, 5)}
TOKEN_PATHS: Final = ("/oauth/token", "/")
MAX_LOCATIONS: Final = 50
UNAUTHORIZED: Final = "You are not authorized to query these locations"
FAULT_KINDS: Final = frozenset({"reset", "truncate", "slow", "ok"})
CACHE_BYTES: Final = 512 * 1024 * 1024

_V13_KEYS: Final = frozenset(
    {"startDate", "endDate", "locations", "brandId", "referenceNumbers", "zoneId"}
)
_V3_KEYS: Final = frozenset({"startDate", "endDate", "brandId", "cursor"})


def _deque(items: Iterable[str]) -> deque[str]:
    return items if isinstance(items, deque) else deque(items)


@dataclass
class Faults:
    """Fault injection knobs; mutable while the server runs.

    ``queue`` / ``token_queue``: each data (v1-v4) / token request pops the next
    entry and suffers it instead of being served: ``"429"``, ``"500"``, ``"502"``,
    ``"503"`` (any 3-digit status works), ``"reset"`` (abrupt close, RST),
    ``"truncate"`` (full Content-Length, half the body, close) or ``"slow"``
    (sleep ``slow_seconds`` first, then answer normally); ``"ok"`` is served
    normally and not counted as a fault: it aims a later entry at a later request.
    ``rate_*`` draw from the server's seeded RNG (one draw per data request).
    ``retry_after`` is the ``Retry-After`` header of 429s (None = no header).
    ``latency``: every data response takes at least this long (the server's own
    work counts towards it, as an API's would). ``revoke_after``: after that
    many successful data calls with one token, the token is revoked (401).
    ``rate_limit``: at most that many data requests per second (a token bucket
    holding ``rate_limit_burst`` requests, one second's worth by default); above
    it a request is answered 429 at once, with ``retry_after``. Off (None) by default.
    """

    queue: deque[str] = field(default_factory=deque)
    token_queue: deque[str] = field(default_factory=deque)
    rate_429: float = 0.0
    rate_5xx: float = 0.0
    rate_reset: float = 0.0
    rate_truncate: float = 0.0
    retry_after: float | None = 1
    latency: float = 0.0
    slow_seconds: float = 5.0
    revoke_after: int | None = None
    rate_limit: float | None = None
    rate_limit_burst: float | None = None

    def __post_init__(self) -> None:
        self.queue = _deque(self.queue)
        self.token_queue = _deque(self.token_queue)


@dataclass
class Quirks:
    """Ways the fake departs from the happy reading of its document; all off by
    default and mutable while it runs (pages are cached per setting).

    ``utc_keys_for_local``: local-time requests get the same buckets keyed in UTC
    (``...T08:00:00Z``), as "Again, all dates are UTC" would have it.
    ``local_keys_for_utc``: UTC requests get the same buckets keyed by each
    location's wall-clock time without a suffix (``...T10:00:00``).
    ``offset_keys``: local-time requests get wall-clock keys with the location's
    UTC offset at that instant (``2023-10-29T02:00:00+02:00``); ignored while
    ``utc_keys_for_local`` is on.
    ``zones``: location id -> IANA time zone with daylight saving time (say
    ``Europe/Berlin``); such a location's local day can have 23 or 25 buckets,
    and without ``offset_keys`` the autumn night's two 02:00 buckets share one
    key (the later one wins, as a JSON object keeps one value per key).
    ``record_fields``: unknown non-metric fields added to every record (v1-v4),
    ``{location_id}`` in a string value replaced by the record's location id.
    ``zero_values``: v1-v3 records carry zero values too, as v4 does.
    ``restate``: location id -> visits added to each of its non-zero visits
    buckets: the API restating a location's numbers (a rerun's `changes`).
    """

    utc_keys_for_local: bool = False
    local_keys_for_utc: bool = False
    offset_keys: bool = False
    zones: dict[int, str] = field(default_factory=dict)
    record_fields: dict[str, object] = field(default_factory=dict)
    zero_values: bool = False
    restate: dict[int, int] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """Part of every page's cache key: a change of quirks renders pages anew."""
        return repr(
            (
                self.utc_keys_for_local,
                self.local_keys_for_utc,
                self.offset_keys,
                sorted(self.zones.items()),
                sorted(self.record_fields.items()),
                self.zero_values,
                sorted(self.restate.items()),
            )
        )

    def reshapes(self, location_id: int, basis: Basis) -> bool:
        """Whether a location's time keys differ from the plain ones of the basis."""
        if basis == "utc":
            return self.local_keys_for_utc
        return self.utc_keys_for_local or self.offset_keys or location_id in self.zones


@dataclass
class Stats:
    """Counters of a server (``FakeAnalytiks.stats`` returns a consistent copy)."""

    calls: Counter[str] = field(default_factory=Counter)  # path -> requests
    responses: Counter[int] = field(default_factory=Counter)  # status -> responses sent
    path_responses: Counter[tuple[str, int]] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)  # data faults: kind ("429", ...) -> n
    token_faults: Counter[str] = field(default_factory=Counter)  # token endpoint faults
    tokens_issued: int = 0
    pages_served: int = 0  # successful v3 responses
    bytes_served: int = 0  # response body bytes written
    cache_hits: int = 0
    cache_misses: int = 0

    @property
    def data_calls(self) -> int:
        return sum(n for path, n in self.calls.items() if path in DATA_PATHS)

    def copy(self) -> Stats:
        return Stats(
            Counter(self.calls),
            Counter(self.responses),
            Counter(self.path_responses),
            Counter(self.faults),
            Counter(self.token_faults),
            self.tokens_issued,
            self.pages_served,
            self.bytes_served,
            self.cache_hits,
            self.cache_misses,
        )


@dataclass
class _Token:
    client_id: str
    expires: float
    revoked: bool = False
    successes: int = 0


class _Reply(Exception):
    """Raised by request processing to answer with an error status."""

    def __init__(
        self, status: int, payload: Mapping[str, object], headers: Sequence[tuple[str, str]] = ()
    ):
        super().__init__(status)
        self.status = status
        self.payload = payload
        self.headers = headers


def _bad(message: str) -> _Reply:
    return _Reply(400, {"message": message})


_Item = tuple[int, str | None, str | None]  # (location id, reference number, zone id)


@dataclass(frozen=True)
class _Query:
    start: datetime
    end: datetime
    basis: Basis


class FakeAnalytiks:
    """A local analytiks API: token endpoint + WiFi JSON export v1-v4 on 127.0.0.1.

    ``brands`` maps brand id -> number of locations; ``clients`` maps client id
    -> (secret, allowed brand ids or None for all). Use ``start()``/``stop()`` or
    ``with FakeAnalytiks(...) as api:``.
    """

    def __init__(
        self,
        brands: Mapping[int, int] | None = None,
        clients: Mapping[str, tuple[str, Collection[int] | None]] | None = None,
        *,
        page_size: int = 50,
        bucket_minutes: int = 60,
        extra_metrics: Sequence[str] = (),
        token_ttl: int = 86400,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: Faults | None = None,
        quirks: Quirks | None = None,
        cache_bytes: int = CACHE_BYTES,
        compress_cache: bool = False,
    ) -> None:
        if bucket_minutes <= 0 or 60 % bucket_minutes:
            raise ValueError("bucket_minutes must divide 60 (e.g. 60 or 15)")
        if page_size < 1:
            raise ValueError("page_size must be >= 1")
        self.brands: dict[int, int] = dict({1234: 120, 777: 3} if brands is None else brands)
        self.clients: dict[str, tuple[str, frozenset[int] | None]] = {
            cid: (secret, None if allowed is None else frozenset(allowed))
            for cid, (secret, allowed) in (
                {"demo-client": ("demo-secret", None)} if clients is None else clients
            ).items()
        }
        self.page_size = page_size
        self.bucket_minutes = bucket_minutes
        self.extra_metrics = tuple(extra_metrics)
        self.metrics = all_metrics(self.extra_metrics)
        self.token_ttl = token_ttl
        self.seed = seed
        self.host = host
        self.port = port
        self.faults = faults if faults is not None else Faults()
        self.quirks = quirks if quirks is not None else Quirks()
        self._rng = random.Random(seed)
        self._key = secrets.token_bytes(32)  # signs cursors: foreign cursors fail
        self._lock = threading.Lock()
        self._stats = Stats()
        self._tokens: dict[str, _Token] = {}
        self._zones: dict[str, int] | None = None
        self._cache: OrderedDict[tuple[object, ...], bytes] = OrderedDict()
        self._cache_bytes = 0
        # Rendered pages kept (zlib level 1 when compressed: a few times more pages
        # in the same memory, for the scale benchmark's thousands of distinct pages).
        self._cache_limit = cache_bytes
        self._compress_cache = compress_cache
        # Arrival times (time.time()) of data requests, and the rate limiter's bucket.
        self._arrivals: list[float] = []
        self._bucket: tuple[float, float] | None = None  # (tokens, at monotonic)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Self:
        if self._server is not None:
            return self
        server = _Server((self.host, self.port), _Handler)
        server.api = self
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name=f"fake-analytiks-{self.port}",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def token_url(self) -> str:
        return self.url + "/oauth/token"

    @property
    def stats(self) -> Stats:
        with self._lock:
            return self._stats.copy()

    def reset_stats(self) -> None:
        with self._lock:
            self._stats = Stats()
            self._arrivals = []

    def warm_v3(self, brand: int, start: str, end: str) -> int:
        """Render and cache every v3 page of one query in this process (no HTTP, no
        latency), so a benchmark measures the exporter, not the fake's rendering.
        Returns the pages; the counters are left as they were."""
        query = self._parse_dates({"startDate": start, "endDate": end})
        before = self.stats
        cursor, pages = None, 0
        while True:
            body = {"brandId": brand} if cursor is None else {"brandId": brand, "cursor": cursor}
            cursor = orjson.loads(self._v3(body, query, None))["cursor"]
            pages += 1
            if cursor is None:
                with self._lock:
                    self._stats = before
                return pages

    def arrivals(self) -> list[float]:
        """When each data request (v1-v4) arrived, ``time.time()``, in arrival order."""
        with self._lock:
            return list(self._arrivals)

    def _over_rate_limit(self) -> bool:
        """Take a token from the rate limiter's bucket; True if there was none."""
        limit = self.faults.rate_limit
        if limit is None or limit <= 0:
            return False
        burst = self.faults.rate_limit_burst or max(1.0, limit)
        now = time.monotonic()
        with self._lock:
            tokens, at = self._bucket if self._bucket is not None else (burst, now)
            tokens = min(burst, tokens + (now - at) * limit)
            if tokens < 1.0:
                self._bucket = (tokens, now)
                return True
            self._bucket = (tokens - 1.0, now)
            return False

    def reseed(self, seed: int) -> None:
        """Restart the fault RNG: the ``rate_*`` draws from now on repeat for a given seed."""
        with self._lock:
            self.seed = seed
            self._rng = random.Random(seed)

    def revoke_tokens(self) -> None:
        """Every token issued so far gets 401 from now on."""
        with self._lock:
            for token in self._tokens.values():
                token.revoked = True

    def issue_token(self, client_id: str = "demo-client") -> str:
        """A valid token for a configured client, without an HTTP call (test helper)."""
        if client_id not in self.clients:
            raise KeyError(client_id)
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = _Token(client_id, time.monotonic() + self.token_ttl)
            self._stats.tokens_issued += 1
        return token

    # ------------------------------------------------------------------ bookkeeping

    def _count(self, **kw: int) -> None:
        with self._lock:
            for name, n in kw.items():
                setattr(self._stats, name, getattr(self._stats, name) + n)

    def _count_call(self, path: str) -> None:
        with self._lock:
            self._stats.calls[path] += 1
            if path in DATA_PATHS:
                self._arrivals.append(time.time())

    def _count_response(self, path: str, status: int, nbytes: int) -> None:
        with self._lock:
            self._stats.responses[status] += 1
            self._stats.path_responses[path, status] += 1
            self._stats.bytes_served += nbytes

    def _count_fault(self, kind: str, data: bool) -> None:
        with self._lock:
            (self._stats.faults if data else self._stats.token_faults)[kind] += 1

    def _next_fault(self, data: bool) -> str | None:
        """The fault this request suffers (queue first, then the seeded rates)."""
        f = self.faults
        with self._lock:
            queue = f.queue if data else f.token_queue
            if queue:  # a plain list assigned at run time works too
                return str(queue.popleft() if isinstance(queue, deque) else queue.pop(0))
            if not data:
                return None
            r = self._rng.random()
            for kind, rate in (
                ("429", f.rate_429),
                ("5xx", f.rate_5xx),
                ("reset", f.rate_reset),
                ("truncate", f.rate_truncate),
            ):
                if r < rate:
                    return self._rng.choice(("500", "502", "503")) if kind == "5xx" else kind
                r -= rate
        return None

    # ------------------------------------------------------------------ token endpoint

    def _token_response(self, content: bytes) -> tuple[int, bytes]:  # noqa: PLR0911
        def error(status: int, code: str, message: str) -> tuple[int, bytes]:
            return status, orjson.dumps({"error": code, "message": message})

        try:
            body = orjson.loads(content)
        except orjson.JSONDecodeError:
            return error(400, "invalid_request", "the request body must be JSON")
        if not isinstance(body, dict):
            return error(400, "invalid_request", "the request body must be a JSON object")
        for name in ("client_id", "client_secret", "audience", "grant_type"):
            if not isinstance(body.get(name), str) or not body[name]:
                return error(400, "invalid_request", f"missing or invalid field: {name}")
        if body["grant_type"] != "client_credentials":
            return error(400, "unsupported_grant_type", "grant_type must be client_credentials")
        if body["audience"] != AUDIENCE:
            return error(400, "invalid_request", f"audience must be {AUDIENCE}")
        client = self.clients.get(body["client_id"])
        if client is None or not hmac.compare_digest(client[0], body["client_secret"]):
            return error(401, "access_denied", "Unauthorized: wrong client_id or client_secret")
        token = self.issue_token(body["client_id"])
        payload = {"access_token": token, "expires_in": self.token_ttl, "token_type": "Bearer"}
        return 200, orjson.dumps(payload)

    # ------------------------------------------------------------------ data endpoints

    def _authenticate(self, header: str | None) -> tuple[str, _Token]:
        def deny(message: str) -> _Reply:
            return _Reply(
                401, {"message": message}, [("WWW-Authenticate", 'Bearer error="invalid_token"')]
            )

        if not header:
            raise deny("Unauthorized: missing Authorization header")
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise deny("Unauthorized: Authorization must be 'Bearer <token>'")
        raw = value.strip()
        with self._lock:
            token = self._tokens.get(raw)
            if token is None:
                raise deny("Unauthorized: unknown token")
            if token.revoked:
                raise deny("Unauthorized: token revoked")
            if time.monotonic() >= token.expires:
                raise deny("Unauthorized: token expired")
        return raw, token

    def _token_succeeded(self, token: _Token) -> None:
        with self._lock:
            token.successes += 1
            limit = self.faults.revoke_after
            if limit is not None and token.successes >= limit:
                token.revoked = True

    def _data_response(self, variant: str, headers: Mapping[str, str], content: bytes) -> bytes:
        """The 200 body of a data request, or raises _Reply."""
        _, token = self._authenticate(headers.get("authorization"))
        ctype = (headers.get("content-type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise _bad("Content-Type must be application/json")
        try:
            body = orjson.loads(content)
        except orjson.JSONDecodeError:
            raise _bad("the request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise _bad("the request body must be a JSON object")
        allowed_keys = _V3_KEYS if variant == "v3" else _V13_KEYS
        unknown = sorted(set(body) - allowed_keys)
        if unknown:
            raise _bad(
                f"unknown field(s): {', '.join(unknown)}"
                f" (allowed: {', '.join(sorted(allowed_keys))})"
            )
        query = self._parse_dates(body)
        allowed = self.clients[token.client_id][1]
        if variant == "v3":
            result = self._v3(body, query, allowed)
        else:
            result = self._batch(variant, body, query, allowed)
        self._token_succeeded(token)
        return result

    @staticmethod
    def _parse_dates(body: Mapping[str, Any]) -> _Query:
        parsed: list[tuple[datetime, Basis]] = []
        for name in ("startDate", "endDate"):
            value = body.get(name)
            if value is None:
                raise _bad(f"{name} is required")
            if not isinstance(value, str):
                raise _bad(f"{name} must be an ISO 8601 date-time string")
            try:
                parsed.append(parse_api_date(value))
            except ValueError as exc:
                raise _bad(f"{name}: {exc}") from None
        (start, start_basis), (end, end_basis) = parsed
        if start_basis != end_basis:
            raise _bad(
                "startDate and endDate must use the same format"
                " (both UTC with a final Z, or both local time without Z)"
            )
        if end < start:
            raise _bad("endDate must not be before startDate")
        if end - start > MAX_RANGE:
            raise _bad(
                "a maximum of 5 days can be requested at once (endDate - startDate > 5 days)"
            )
        return _Query(start, end, start_basis)

    def _known(self, location_id: int) -> bool:
        count = self.brands.get(brand_of(location_id))
        return count is not None and 1 <= location_id % 100_000 <= count

    def _zone_map(self) -> dict[str, int]:
        if self._zones is None:
            self._zones = {
                zone_id(loc): loc
                for brand, n in self.brands.items()
                for loc in location_ids(brand, n)
            }
        return self._zones

    def _batch(
        self, variant: str, body: Mapping[str, Any], query: _Query, allowed: frozenset[int] | None
    ) -> bytes:
        items, failures = self._resolve(body, allowed)
        if variant in ("v1", "v4") and failures:
            raise _Reply(401, {"message": UNAUTHORIZED, "locations": failures})
        if variant == "v2" and not items:
            raise _Reply(401, {"message": UNAUTHORIZED, "locations": failures})
        key = (variant, tuple(items), tuple(failures), query, self.quirks.fingerprint())
        return self._cached(key, lambda: self._render_batch(variant, items, failures, query))

    def _resolve(  # noqa: PLR0912 - one branch per request mode
        self, body: Mapping[str, Any], allowed: frozenset[int] | None
    ) -> tuple[list[_Item], list[int | str]]:
        """Requested (location, reference, zone) items that are allowed, and the rejected ids."""
        modes = [
            name
            for name, present in (
                ("locations", "locations" in body),
                ("brandId+referenceNumbers", "brandId" in body or "referenceNumbers" in body),
                ("zoneId", "zoneId" in body),
            )
            if present
        ]
        if len(modes) != 1:
            raise _bad("send exactly one of: locations, brandId+referenceNumbers, zoneId")
        items: list[_Item] = []
        failures: list[int | str] = []

        def ok(loc: int) -> bool:
            return self._known(loc) and (allowed is None or brand_of(loc) in allowed)

        if modes[0] == "locations":
            locs = self._check_list(body["locations"], "locations", int)
            for loc in dict.fromkeys(locs):
                (items.append((loc, None, None)) if ok(loc) else failures.append(loc))
        elif modes[0] == "zoneId":
            zone = body["zoneId"]
            if not isinstance(zone, str) or not zone:
                raise _bad("zoneId must be a non-empty string")
            loc = self._zone_map().get(zone.lower())
            if loc is not None and ok(loc):
                items.append((loc, None, zone))
            else:
                failures.append(zone if loc is None else loc)
        else:
            brand = body.get("brandId")
            if not _is_int(brand):
                raise _bad("brandId must be an integer (required with referenceNumbers)")
            if "referenceNumbers" not in body:
                raise _bad("referenceNumbers is required with brandId")
            refs = self._check_list(body["referenceNumbers"], "referenceNumbers", str)
            for ref in dict.fromkeys(refs):
                ref_loc = location_of_reference(ref)
                if ref_loc is not None and brand_of(ref_loc) == brand and ok(ref_loc):
                    items.append((ref_loc, ref, None))
                else:
                    failures.append(ref if ref_loc is None else ref_loc)
        return items, failures

    @staticmethod
    def _check_list(value: object, name: str, kind: type) -> list[Any]:
        what = "integers" if kind is int else "strings"
        if not isinstance(value, list):
            raise _bad(f"{name} must be a list of {what}")
        if not 1 <= len(value) <= MAX_LOCATIONS:
            raise _bad(f"{name} must contain 1 to {MAX_LOCATIONS} items (got {len(value)})")
        if not all((_is_int(v) if kind is int else isinstance(v, str)) for v in value):
            raise _bad(f"{name} must be a list of {what}")
        return value

    def _records(
        self, items: Iterable[_Item], query: _Query, zero_fill: bool
    ) -> list[dict[str, object]]:
        walls = grid_minutes(query.start, query.end, self.bucket_minutes)
        keys = [time_key(m, query.basis) for m in walls]
        quirks = self.quirks
        records: list[dict[str, object]] = []
        for loc, ref, zone in items:
            utc: list[int] | None = None
            loc_keys = keys
            if quirks.reshapes(loc, query.basis):
                utc, loc_keys = self._quirk_keys(loc, query, walls)
            record = location_record(
                loc,
                self.metrics,
                walls,
                loc_keys,
                query.basis,
                zero_fill=zero_fill or quirks.zero_values,
                reference=ref,
                zone=zone,
                utc_minutes=utc,
            )
            visits = record.get("visits")
            if loc in quirks.restate and isinstance(visits, dict):
                record["visits"] = {
                    k: v + quirks.restate[loc] if v else v for k, v in visits.items()
                }
            for name, value in quirks.record_fields.items():
                if isinstance(value, str):
                    record[name] = value.replace("{location_id}", str(loc))
                else:
                    record[name] = value
            records.append(record)
        return records

    def _quirk_keys(
        self, location_id: int, query: _Query, walls: Sequence[int]
    ) -> tuple[list[int], list[str]]:
        """A location's UTC bucket starts and their time keys under the quirks."""
        quirks = self.quirks
        tz = quirks.zones.get(location_id)
        if query.basis == "utc":  # local_keys_for_utc
            keys = [time_key(u + utc_offset_minutes(location_id, u, tz), "local") for u in walls]
            return list(walls), keys
        buckets = local_buckets(location_id, query.start, query.end, self.bucket_minutes, tz)
        if quirks.utc_keys_for_local:
            keys = [time_key(u, "utc") for u, _, _ in buckets]
        elif quirks.offset_keys:
            keys = [time_key(w, "local") + offset_text(off) for _, w, off in buckets]
        else:
            keys = [time_key(w, "local") for _, w, _ in buckets]
        return [u for u, _, _ in buckets], keys

    def _render_batch(
        self,
        variant: str,
        items: list[_Item],
        failures: list[int | str],
        query: _Query,
    ) -> bytes:
        records = self._records(items, query, zero_fill=variant == "v4")
        if variant != "v2":
            return orjson.dumps(records)
        fail: dict[str, object] = (
            {"description": UNAUTHORIZED, "locations": failures} if failures else {}
        )
        return orjson.dumps({"successes": records, "failures": fail})

    # v3 ---------------------------------------------------------------------------

    def _query_digest(self, brand: int, query: _Query) -> str:
        text = f"{brand}|{query.start.isoformat()}|{query.end.isoformat()}|{query.basis}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def _make_cursor(self, offset: int, digest: str) -> str:
        payload = orjson.dumps({"o": offset, "q": digest})
        sig = hmac.new(self._key, payload, hashlib.sha256).digest()[:16]
        return _b64(payload) + "." + _b64(sig)

    def _read_cursor(self, cursor: str, digest: str, count: int) -> int:
        try:
            p64, s64 = cursor.split(".")
            payload, sig = _unb64(p64), _unb64(s64)
        except ValueError:
            raise _bad("invalid cursor: malformed") from None
        expected = hmac.new(self._key, payload, hashlib.sha256).digest()[:16]
        if not hmac.compare_digest(sig, expected):
            raise _bad("invalid cursor: bad signature (not issued by this server)")
        data = orjson.loads(payload)
        if data["q"] != digest:
            raise _bad("invalid cursor: it belongs to another query (brandId/startDate/endDate)")
        offset = int(data["o"])
        if not 0 <= offset < max(count, 1):
            raise _bad("invalid cursor: out of range")
        return offset

    def _v3(self, body: Mapping[str, Any], query: _Query, allowed: frozenset[int] | None) -> bytes:
        if "brandId" not in body or not _is_int(body["brandId"]):
            raise _bad("brandId must be an integer")
        brand: int = body["brandId"]
        cursor = body.get("cursor")
        if cursor is not None and not isinstance(cursor, str):
            raise _bad("cursor must be a string or null")
        count = self.brands.get(brand)
        if count is None or (allowed is not None and brand not in allowed):
            raise _Reply(401, {"message": f"You are not authorized to query brand {brand}"})
        digest = self._query_digest(brand, query)
        offset = 0 if not cursor else self._read_cursor(cursor, digest, count)
        end = min(offset + self.page_size, count)
        next_cursor = self._make_cursor(end, digest) if end < count else None
        first = brand * 100_000
        items = [
            (loc, reference_number(loc), None) for loc in range(first + offset + 1, first + end + 1)
        ]

        def render() -> bytes:
            return orjson.dumps({"cursor": next_cursor, "data": self._records(items, query, False)})

        result = self._cached(("v3", brand, query, offset, self.quirks.fingerprint()), render)
        self._count(pages_served=1)
        return result

    # cache --------------------------------------------------------------------------

    def _cached(self, key: tuple[object, ...], render: Any) -> bytes:
        with self._lock:
            body = self._cache.get(key)
            if body is not None:
                self._cache.move_to_end(key)
                self._stats.cache_hits += 1
        if body is not None:
            return zlib.decompress(body) if self._compress_cache else body
        with self._lock:
            self._stats.cache_misses += 1
        body = render()
        assert isinstance(body, bytes)
        kept = zlib.compress(body, 1) if self._compress_cache else body
        with self._lock:
            if key not in self._cache:
                self._cache[key] = kept
                self._cache_bytes += len(kept)
                while self._cache_bytes > self._cache_limit and len(self._cache) > 1:
                    _, old = self._cache.popitem(last=False)
                    self._cache_bytes -= len(old)
        return body


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    if not text:
        raise ValueError("empty")
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


# ---------------------------------------------------------------------- HTTP plumbing


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    api: FakeAnalytiks

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
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
    server: _Server

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
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Injected fault"
        lines = [
            f"HTTP/1.1 {status} {phrase}",
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
        self.server.api._count_response(path, status, len(sent))
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

    def _status_fault(self, path: str, kind: str) -> None:
        status = int(kind)
        headers: list[tuple[str, str]] = []
        retry_after = self.server.api.faults.retry_after
        if status == 429 and retry_after is not None:
            headers.append(("Retry-After", _seconds(retry_after)))
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Injected fault"
        self._send_json(path, status, {"message": phrase}, headers)

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

    def do_POST(self) -> None:  # noqa: PLR0911, PLR0912
        api = self.server.api
        arrived = time.monotonic()
        path = self.path.split("?", 1)[0]
        api._count_call(path)
        content = self._read_body()
        if content is None:
            self._send_json(path, 411, {"message": "Content-Length is required"})
            return
        variant = DATA_PATHS.get(path)
        if variant is None and path not in TOKEN_PATHS:
            self._send_json(path, 404, {"message": f"Not found: {path}"})
            return

        if variant is not None and api._over_rate_limit():
            # Over the rate limit: refused at once, before any work (or latency).
            api._count_fault("rate-limit", data=True)
            self._status_fault(path, "429")
            return
        fault = api._next_fault(data=variant is not None)
        if fault == "ok":
            fault = None
        if variant is not None and api.faults.latency > 0 and fault is not None:
            _sleep_until(arrived + api.faults.latency)
        truncate = False
        if fault is not None:
            api._count_fault(fault, data=variant is not None)
            if fault == "reset":
                self._reset()
                return
            if fault == "slow":
                time.sleep(api.faults.slow_seconds)
            elif fault == "truncate":
                truncate = True
            elif len(fault) == 3 and fault.isdigit():
                self._status_fault(path, fault)
                return
            else:
                self._send_json(path, 500, {"message": f"unknown injected fault {fault!r}"})
                return

        if variant is None:
            status, body = api._token_response(content)
            self._send(path, status, body, truncate=truncate)
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            body = api._data_response(variant, headers, content)
        except _Reply as reply:
            _sleep_until(arrived + api.faults.latency)
            self._send_json(path, reply.status, reply.payload, reply.headers)
            return
        # The latency is the whole answer's: rendering the page is part of it.
        _sleep_until(arrived + api.faults.latency)
        self._send(path, 200, body, truncate=truncate)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        self.server.api._count_call(path)
        if path in ("/health", "/"):
            self._send_json(path, 200, {"status": "ok"})
        elif path in DATA_PATHS or path in TOKEN_PATHS:
            self._send_json(
                path, 405, {"message": "Method Not Allowed: use POST"}, [("Allow", "POST")]
            )
        else:
            self._send_json(path, 404, {"message": f"Not found: {path}"})


def _sleep_until(moment: float) -> None:
    left = moment - time.monotonic()
    if left > 0:
        time.sleep(left)


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
