"""HTTP to the analytiks API: one POST with bounded retries, pacing and bounded reads.

One urllib3 pool per process, explicit timeouts, and retries with capped
exponential backoff and full jitter for what the design calls transient
(429 honouring Retry-After, 5xx, resets, timeouts, truncated bodies). Every
wait is bounded by the time the invocation has left, so a retry never runs
past the Lambda deadline; a 429 slows the container's pacer down
(`exporter.pacing`), a 429 storm is handed to the queue (`Throttled`).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import urllib3
from urllib3.exceptions import HTTPError, SSLError

from exporter import json_codec
from exporter.api_answers import (
    MAX_TOKEN_ANSWER_BYTES,
    error_code,
    header_seconds,
    json_or_none,
    page_limit,
    receive,
)
from exporter.errors import (
    ApiRejected,
    MalformedResponse,
    OutOfTime,
    PermanentError,
    Throttled,
    TransientError,
)
from exporter.pacing import Pacer
from exporter.ports import CallStats


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 6
    base_delay_s: float = 0.5
    max_delay_s: float = 20.0
    max_retry_after_s: float = 120.0
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 60.0
    # 429 storms are waited out through the queue (a delayed checkpoint), not by
    # sleeping in a paid invocation: the `max_throttled_attempts`-th 429 in a row of
    # one request, or a Retry-After above `max_inline_wait_s`, raises Throttled.
    max_throttled_attempts: int = 3
    max_inline_wait_s: float = 10.0


_POOL: urllib3.PoolManager | None = None


def shared_pool() -> urllib3.PoolManager:
    global _POOL  # noqa: PLW0603 -- one connection pool per process, reused while warm
    if _POOL is None:
        _POOL = urllib3.PoolManager(maxsize=4, retries=False)
    return _POOL


class Unauthorized(Exception):
    """A 401 from a data request, with its parsed body (it may name refused ids)."""

    def __init__(self, payload: Any = None) -> None:
        super().__init__("401")
        self.payload = payload


class Transport:
    def __init__(
        self,
        stats: CallStats,
        *,
        http: urllib3.PoolManager | None = None,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        pacer: Pacer | None = None,
    ) -> None:
        self.stats = stats
        self._http = http or shared_pool()
        self._policy = policy or RetryPolicy()
        self._sleep = sleep
        self._jitter = jitter
        # The container's share of API_MAX_RPS (exporter.pacing); None = unlimited.
        self._pacer = pacer
        # The page cap follows the function's memory (api_answers.page_limit).
        self.page_limit = page_limit(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"))

    def post(  # noqa: PLR0912, PLR0915 -- one retry state machine reads best in one place
        self,
        url: str,
        body: bytes,
        headers: dict[str, str],
        remaining_s: Callable[[], float],
        *,
        what: str,
        token_request: bool = False,
    ) -> Any:
        """POST and parse the JSON answer, retrying what is transient (see the module)."""
        policy = self._policy
        # Identity only: a compressed answer would be inflated by urllib3 on the
        # fly, a few KB of gzip becoming GBs in memory. It is refused instead.
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Accept-Encoding": "identity",
            **headers,
        }
        limit = MAX_TOKEN_ANSWER_BYTES if token_request else self.page_limit
        last_problem = "no attempt made"
        throttled, hint = 0, 0.0  # 429 answers in a row to this request; the wait asked
        for attempt in range(policy.max_attempts):
            left = remaining_s()
            pace = self._pacer if not token_request else None
            if pace is not None:
                left -= pace.delay()  # the wait for this invocation's next slot
            if left <= policy.connect_timeout_s:
                if attempt == 0:
                    # Not a failure: the budget ends here (a planned checkpoint).
                    raise OutOfTime(f"{what}: not sent, {max(left, 0.0):.1f} s left is too little")
                break
            if pace is not None:
                pace.acquire()  # every data request takes a slot, retries included
            wait: float | None = None
            status: int | None = None
            timeout = urllib3.Timeout(
                connect=policy.connect_timeout_s,
                read=max(1.0, min(policy.read_timeout_s, left - policy.connect_timeout_s)),
            )
            if token_request:
                self.stats.token_calls += 1
            else:
                self.stats.calls += 1
            sent = time.perf_counter()
            try:
                response = self._http.request(
                    "POST",
                    url,
                    body=body,
                    headers=headers,
                    timeout=timeout,
                    retries=False,
                    preload_content=False,
                    decode_content=False,
                )
            except SSLError:
                # A certificate that does not verify is not a glitch to retry.
                raise PermanentError(
                    f"{what}: TLS verification of {url.split('/')[2]} failed"
                ) from None
            except HTTPError as exc:
                # Connection refused or reset, and timeouts land here.
                last_problem = f"{type(exc).__name__}"
            except ValueError as exc:
                # http.client refuses a header or URL it cannot send with a message
                # quoting it (a bearer token among them): the type only, never the text.
                raise PermanentError(
                    f"{what}: the request could not be sent ({type(exc).__name__})"
                ) from None
            else:
                try:
                    status, data = response.status, receive(response, limit, what)
                except HTTPError as exc:
                    # The body broke off: a reset, a timeout, or fewer bytes than its
                    # Content-Length (urllib3 enforces it).
                    status, data, last_problem = None, None, type(exc).__name__
                if not token_request:
                    self.stats.latencies_ms.append((time.perf_counter() - sent) * 1000)
                if status == 200:
                    try:
                        return json_codec.loads(data or b"")
                    except json_codec.JSONDecodeError:
                        raise MalformedResponse(
                            f"{what}: the API answered 200 with invalid JSON"
                        ) from None
                if status == 401:
                    if token_request:
                        raise PermanentError(
                            "token endpoint: the client credentials were rejected (401)"
                        )
                    raise Unauthorized(json_or_none(bytes(data or b"")))
                if status is None:
                    pass  # retried below
                elif status == 429:
                    last_problem = "429 Too Many Requests"
                    self.stats.throttles += 1
                    throttled += 1
                    asked = header_seconds(response.headers.get("Retry-After"))
                    hint = asked if asked is not None else self._backoff(attempt)
                    if pace is not None:
                        # The container slows down (and holds off for the Retry-After,
                        # as long as an invocation may wait): its other threads and
                        # later steps too, not just this request's retry.
                        pace.throttled(
                            None if asked is None else min(asked, policy.max_inline_wait_s)
                        )
                    if (
                        throttled >= policy.max_throttled_attempts
                        or hint > policy.max_inline_wait_s
                    ):
                        raise throttled_error(what, throttled, hint)
                    wait = _retry_after(response.headers.get("Retry-After"), policy)
                elif status >= 500:
                    last_problem = f"HTTP {status}"
                elif token_request:
                    # Never quoted: the token endpoint may echo the request body,
                    # the client secret in it.
                    raise ApiRejected(
                        f"token endpoint: the token request was rejected ({status}); its "
                        "answer is not quoted (it may echo the client_secret)"
                    )
                else:
                    code = error_code(data)
                    raise ApiRejected(
                        f"{what}: the API rejected the request ({status})"
                        + (f": {code}" if code else "")
                    )
            if status != 429:
                throttled = 0
            if attempt + 1 == policy.max_attempts:
                break
            if wait is None:
                wait = self._jitter() * self._backoff(attempt)
            # Never sleep into the time the invocation needs to flush and hand over.
            if wait + policy.connect_timeout_s >= remaining_s():
                break
            self.stats.retries += 1
            self._sleep(wait)
        if throttled:  # the last answer was a 429: wait it out through the queue
            raise throttled_error(what, throttled, hint)
        raise TransientError(
            f"{what}: gave up after {attempt + 1} attempt(s), last: {last_problem}"
        )

    def _backoff(self, attempt: int) -> float:
        """The capped exponential backoff before retry `attempt + 1` (before jitter)."""
        policy = self._policy
        return min(policy.max_delay_s, policy.base_delay_s * 2.0**attempt)


def throttled_error(what: str, times: int, retry_after_s: float) -> Throttled:
    return Throttled(
        f"{what}: the API answered 429 {times} time(s) in a row "
        f"(Retry-After {retry_after_s:g} s); backing off through the queue",
        retry_after_s,
    )


def _retry_after(header: str | None, policy: RetryPolicy) -> float | None:
    seconds = header_seconds(header)
    if seconds is None:
        return None  # an HTTP-date or garbage: fall back to our own backoff
    return min(seconds, policy.max_retry_after_s)
