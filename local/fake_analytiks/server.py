"""The fake analytiks token + WiFi JSON export API over real HTTP (stdlib only + orjson).

See the package docstring for the public API and ``data.py`` for the data model.
What changes together lives together: ``protocol`` (request rules), ``tokens``,
``pages`` (v3), ``batch`` (v1/v2/v4), ``records`` and its quirks, ``faults``
(injection and the rate limiter), ``meter`` (counters), ``cache`` and ``handler``
(HTTP). This class wires them and is the surface the handler and the tests use.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping, Sequence
from types import TracebackType
from typing import Self

import orjson

from exporter.variants import VARIANTS
from local.fake_analytiks.batch import Batches
from local.fake_analytiks.cache import CACHE_BYTES, PageCache
from local.fake_analytiks.data import all_metrics
from local.fake_analytiks.faults import FaultDice, Faults, RateLimiter
from local.fake_analytiks.handler import Server
from local.fake_analytiks.meter import Meter, Stats
from local.fake_analytiks.pages import Pages
from local.fake_analytiks.protocol import parse_body, parse_dates
from local.fake_analytiks.records import Quirks
from local.fake_analytiks.tokens import TokenBook, token_answer


class FakeAnalytiks:
    """A local analytiks API: token endpoint + WiFi JSON export v1-v4 on 127.0.0.1.

    ``brands`` maps brand id -> number of locations; ``clients`` maps client id
    -> (secret, allowed brand ids or None for all). Use ``start()``/``stop()`` or
    ``with FakeAnalytiks(...) as api:``. Settings and ``faults``/``quirks`` are
    read anew on every request, so a test may change them while it runs.
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
        self._meter = Meter()
        self._dice = FaultDice(seed)
        self._limiter = RateLimiter()
        self._tokens = TokenBook()
        cache = PageCache(self._meter, cache_bytes, compress_cache)
        self._pages = Pages(cache)
        self._batches = Batches(cache)
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Self:
        if self._server is not None:
            return self
        server = Server((self.host, self.port), self)
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

    # ------------------------------------------------------------------ for tests

    @property
    def stats(self) -> Stats:
        return self._meter.snapshot()

    def reset_stats(self) -> None:
        self._meter.reset()

    def arrivals(self) -> list[float]:
        """When each data request (v1-v4) arrived, ``time.time()``, in arrival order."""
        return self._meter.arrivals()

    def warm_v3(self, brand: int, start: str, end: str) -> int:
        """Render and cache every v3 page of one query in this process (no HTTP, no
        latency), so a benchmark measures the exporter, not the fake's rendering.
        Returns the pages; the counters are left as they were."""
        query = parse_dates({"startDate": start, "endDate": end})
        before = self.stats
        cursor, pages = None, 0
        while True:
            body = {"brandId": brand} if cursor is None else {"brandId": brand, "cursor": cursor}
            cursor = _cursor_of(self._pages.answer(self, body, query, None))
            pages += 1
            if cursor is None:
                self._meter.restore(before)
                return pages

    def reseed(self, seed: int) -> None:
        """Restart the fault RNG: the ``rate_*`` draws from now on repeat for a given seed."""
        self.seed = seed
        self._dice.reseed(seed)

    def revoke_tokens(self) -> None:
        """Every token issued so far gets 401 from now on."""
        self._tokens.revoke_all()

    def issue_token(self, client_id: str = "demo-client") -> str:
        """A valid token for a configured client, without an HTTP call (test helper)."""
        if client_id not in self.clients:
            raise KeyError(client_id)
        token = self._tokens.issue(client_id, self.token_ttl)
        self._meter.add(tokens_issued=1)
        return token

    def issued_tokens(self) -> list[str]:
        """Every token issued so far (a test looks for them where they must not be)."""
        return self._tokens.issued()

    # ------------------------------------------------------------------ for the handler

    def record_call(self, path: str) -> None:
        self._meter.call(path)

    def record_response(self, path: str, status: int, nbytes: int) -> None:
        self._meter.response(path, status, nbytes)

    def over_rate_limit(self) -> bool:
        """Whether a data request is refused by the rate limiter (counted as a fault)."""
        if not self._limiter.over(self.faults):
            return False
        self._meter.fault("rate-limit", data=True)
        return True

    def next_fault(self, data: bool) -> str | None:
        """The fault this request suffers, counted; None to serve it normally."""
        fault = self._dice.draw(self.faults, data)
        if fault is None or fault == "ok":
            return None
        self._meter.fault(fault, data)
        return fault

    def token_answer(self, content: bytes) -> tuple[int, bytes]:
        return token_answer(content, self.clients, self.issue_token, self.token_ttl)

    def data_answer(self, variant: str, headers: Mapping[str, str], content: bytes) -> bytes:
        """The 200 body of a data request, or raises ``protocol.Reply``."""
        token = self._tokens.authenticate(headers.get("authorization"))
        body = parse_body(variant, headers, content)
        query = parse_dates(body)
        allowed = self.clients[token.client_id][1]
        if not VARIANTS[variant].selector:
            result = self._pages.answer(self, body, query, allowed)
            self._meter.add(pages_served=1)
        else:
            result = self._batches.answer(self, variant, body, query, allowed)
        self._tokens.succeeded(token, self.faults.revoke_after)
        return result


def _cursor_of(page: bytes) -> str | None:
    cursor = orjson.loads(page)["cursor"]
    return cursor if isinstance(cursor, str) else None
