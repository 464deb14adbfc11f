"""The analytiks export API client: OAuth client-credentials token and v3 cursor pages.

One urllib3 pool per process, explicit timeouts, and retries with capped
exponential backoff and full jitter for what the design calls transient
(429 honouring Retry-After, 5xx, resets, timeouts, truncated bodies). Every
wait is bounded by the time the invocation has left, so a retry never runs
past the Lambda deadline.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import urllib3
from urllib3.exceptions import HTTPError, SSLError

from exporter import codec
from exporter.errors import ApiRejected, MalformedResponse, PermanentError, TransientError

MAX_CURSOR_LENGTH: Final = 8_192  # checkpoint messages carry the cursor; SQS caps them at 256 KiB
_TOKEN_REFRESH_MARGIN_S: Final = 300.0


@dataclass(frozen=True, slots=True)
class Credentials:
    client_id: str
    client_secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 6
    base_delay_s: float = 0.5
    max_delay_s: float = 20.0
    max_retry_after_s: float = 120.0
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 60.0


@dataclass(slots=True)
class CallStats:
    """What the API cost: reported in step records, the manifest and the notification."""

    calls: int = 0  # data requests sent, retries included
    retries: int = 0
    token_calls: int = 0  # token endpoint requests sent
    token_fetches: int = 0  # tokens obtained


@dataclass(slots=True)
class _Token:
    value: str = field(repr=False)
    expires_at: float


# Tokens outlive an invocation: a warm container reuses them until shortly
# before expiry instead of asking the token endpoint on every run.
_TOKENS: dict[tuple[str, str], _Token] = {}
_POOL: urllib3.PoolManager | None = None


def shared_pool() -> urllib3.PoolManager:
    global _POOL  # noqa: PLW0603 -- one connection pool per process, reused while warm
    if _POOL is None:
        _POOL = urllib3.PoolManager(maxsize=4, retries=False)
    return _POOL


def forget_tokens() -> None:
    _TOKENS.clear()


class AnalytiksClient:
    def __init__(
        self,
        api_url: str,
        token_url: str,
        audience: str,
        credentials: Callable[[], Credentials],
        *,
        http: urllib3.PoolManager | None = None,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._v3_url = f"{api_url}/wifi/json/v3"
        self._token_url = token_url
        self._audience = audience
        self._credentials_source = credentials
        self._creds: Credentials | None = None
        self._tokens_used: set[str] = set()
        self._http = http or shared_pool()
        self._policy = policy or RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        self._jitter = jitter
        self.stats = CallStats()

    # -- token -------------------------------------------------------------

    def _credentials(self) -> Credentials:
        # Read once per client (one step of a window), not once per page.
        if self._creds is None:
            self._creds = self._credentials_source()
        return self._creds

    def _token(self, remaining_s: Callable[[], float]) -> str:
        creds = self._credentials()
        cache_key = (self._token_url, creds.client_id)
        cached = _TOKENS.get(cache_key)
        if cached and cached.expires_at - _TOKEN_REFRESH_MARGIN_S > self._clock():
            return cached.value
        body = codec.dumps(
            {
                "client_id": creds.client_id,
                "client_secret": creds.client_secret,
                "audience": self._audience,
                "grant_type": "client_credentials",
            }
        )
        payload = self._post(self._token_url, body, {}, remaining_s, what="token request")
        token = payload.get("access_token") if isinstance(payload, dict) else None
        expires_in = payload.get("expires_in", 3600) if isinstance(payload, dict) else None
        if not isinstance(token, str) or not token:
            raise MalformedResponse("token endpoint: no access_token in its answer")
        if isinstance(expires_in, bool) or not isinstance(expires_in, int | float):
            raise MalformedResponse("token endpoint: expires_in is not a number")
        self.stats.token_fetches += 1
        _TOKENS[cache_key] = _Token(token, self._clock() + float(expires_in))
        return token

    def _redact(self, text: str) -> str:
        """Remove our secrets from text the API sent back: an error message may
        echo the request (its bearer token, or the token request's body)."""
        for secret in (self._credentials().client_secret, *self._tokens_used):
            if secret:
                text = text.replace(secret, "[redacted]")
        return text

    def _drop_token(self) -> None:
        creds = self._credentials()
        _TOKENS.pop((self._token_url, creds.client_id), None)

    # -- data --------------------------------------------------------------

    def fetch_v3(
        self,
        brand_id: int,
        start: str,
        end: str,
        cursor: str | None,
        remaining_s: Callable[[], float],
    ) -> tuple[list[Any], str | None]:
        """One v3 page: (records, next cursor or None)."""
        request: dict[str, Any] = {"startDate": start, "endDate": end, "brandId": brand_id}
        if cursor is not None:
            request["cursor"] = cursor
        body = codec.dumps(request)
        refreshed = False
        while True:
            token = self._token(remaining_s)
            self._tokens_used.add(token)
            try:
                payload = self._post(
                    self._v3_url,
                    body,
                    {"Authorization": f"Bearer {token}"},
                    remaining_s,
                    what=f"v3 page for brand {brand_id}",
                )
            except _Unauthorized:
                # An expired or revoked token: fetch a new one once; a second
                # 401 means the brand itself is not ours to read.
                self._drop_token()
                if refreshed:
                    raise ApiRejected(
                        f"API: brand {brand_id} is not authorized for these credentials (401)"
                    ) from None
                refreshed = True
                continue
            return _v3_page(payload)

    # -- transport ---------------------------------------------------------

    def _post(  # noqa: PLR0912 -- one retry state machine reads best in one place
        self,
        url: str,
        body: bytes,
        headers: dict[str, str],
        remaining_s: Callable[[], float],
        *,
        what: str,
    ) -> Any:
        policy = self._policy
        headers = {"Content-Type": "application/json", "Accept": "application/json", **headers}
        last_problem = "no attempt made"
        for attempt in range(policy.max_attempts):
            left = remaining_s()
            if left <= policy.connect_timeout_s:
                break
            wait: float | None = None
            timeout = urllib3.Timeout(
                connect=policy.connect_timeout_s,
                read=max(1.0, min(policy.read_timeout_s, left - policy.connect_timeout_s)),
            )
            if url == self._token_url:
                self.stats.token_calls += 1
            else:
                self.stats.calls += 1
            try:
                response = self._http.request(
                    "POST", url, body=body, headers=headers, timeout=timeout, retries=False
                )
            except SSLError:
                # A certificate that does not verify is not a glitch to retry.
                raise PermanentError(
                    f"{what}: TLS verification of {url.split('/')[2]} failed"
                ) from None
            except HTTPError as exc:
                # Connection refused or reset, timeouts, and bodies shorter than
                # their Content-Length (urllib3 enforces it) all land here.
                last_problem = f"{type(exc).__name__}"
            else:
                status = response.status
                if status == 200:
                    try:
                        return codec.loads(response.data)
                    except codec.JSONDecodeError:
                        raise MalformedResponse(
                            f"{what}: the API answered 200 with invalid JSON"
                        ) from None
                if status == 401:
                    if url == self._token_url:
                        raise PermanentError(
                            "token endpoint: the client credentials were rejected (401)"
                        )
                    raise _Unauthorized
                if status == 429:
                    last_problem = "429 Too Many Requests"
                    wait = _retry_after(response.headers.get("Retry-After"), policy)
                elif status >= 500:
                    last_problem = f"HTTP {status}"
                else:
                    reason = self._redact(_message(response.data))
                    raise ApiRejected(f"{what}: the API rejected the request ({status}): {reason}")
            if attempt + 1 == policy.max_attempts:
                break
            if wait is None:
                wait = self._jitter() * min(policy.max_delay_s, policy.base_delay_s * 2**attempt)
            # Never sleep into the time the invocation needs to flush and hand over.
            if wait + policy.connect_timeout_s >= remaining_s():
                break
            self.stats.retries += 1
            self._sleep(wait)
        raise TransientError(
            f"{what}: gave up after {attempt + 1} attempt(s), last: {last_problem}"
        )


class _Unauthorized(Exception):
    pass


def _retry_after(header: str | None, policy: RetryPolicy) -> float | None:
    if header is None:
        return None
    try:
        return min(max(float(header), 0.0), policy.max_retry_after_s)
    except ValueError:
        return None  # an HTTP-date or garbage: fall back to our own backoff


def _message(data: bytes) -> str:
    try:
        payload = codec.loads(data)
    except codec.JSONDecodeError:
        return data[:200].decode("utf-8", "replace")
    if isinstance(payload, dict):
        text = payload.get("message") or payload.get("error") or payload
        return str(text)[:200]
    return str(payload)[:200]


def _v3_page(payload: Any) -> tuple[list[Any], str | None]:
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
